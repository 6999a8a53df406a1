"""The coaching bot's turns: who is talking, where to reach them later, and the chat relay.

Contract (tests/teams/test_bot.py, tests/teams/test_endpoint.py):
- every installation, conversation update and message stores the sender's conversation reference (with
  the Teams tenant id beside it) once the sender is known to be an active user of the tenant the Teams
  tenant maps to; anyone else is answered politely that they have no access (on messages and installs),
  and the attempt is logged with the Teams tenant and object ids;
- a message is relayed to the tenant's chatbot (``chat.ask``, off the event loop) while a typing
  indicator is shown; the answer (text and/or Adaptive Card) is posted in the conversation;
- when the chatbot has not answered within ``TEAMS_CHAT_INLINE_SECONDS``, the turn is recorded and handed
  to the ``teams-turns`` queue, whose worker posts the answer proactively; errors and timeouts give the
  user a friendly message and are logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from typing import Any

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.core.cloud_adapter_base import CloudAdapterBase
from botbuilder.core.teams import TeamsActivityHandler, TeamsInfo
from botbuilder.core.teams.teams_activity_extensions import teams_get_channel_data
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount

from shared import config
from shared.teams import chat, people

log = logging.getLogger(__name__)

_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")

NO_ACCESS = ("Hi! I can't find you among the people who have access to Coach in your organization, so I can't "
             "help here yet. If you think you should have access, please contact {contact}.")
WELCOME = ("Hi {name}! I'm your coach. Ask me anything about your goals, a conversation you're preparing, or "
           "your learning.")
CHAT_FAILED = ("Sorry, I can't answer right now: the coaching service isn't responding. Please try again in a "
               "few minutes.")
CHAT_NOT_SET_UP = "Sorry, coaching chat isn't set up for your organization yet. Please let your admin know."
EMPTY_MESSAGE = "Send me a message in words and I'll do my best to help."


class TeamsAdapter(CloudAdapterBase):
    """botbuilder's CloudAdapterBase over our authentication: no web framework needed inside a Function."""

    async def on_error(self, context: TurnContext, error: Exception) -> None:
        log.error("teams: turn failed: %s: %s", type(error).__name__, error, exc_info=error)
        try:
            await context.send_activity(CHAT_FAILED)
        except Exception as send_error:  # the connector itself may be what failed
            log.warning("teams: could not tell the user about the failure: %s", type(send_error).__name__)

    def __init__(self, bot_framework_authentication: Any) -> None:
        super().__init__(bot_framework_authentication)
        self.on_turn_error = self.on_error


def teams_tenant_id(activity: Activity) -> str | None:
    """The Teams tenant of an activity: channelData.tenant.id (``conversation.tenant_id`` is not filled,
    the schema maps the key ``tenantID``)."""
    channel_data = teams_get_channel_data(activity)
    tenant = channel_data.tenant.id if channel_data and channel_data.tenant else None
    if tenant is None and activity.conversation is not None:
        tenant = (activity.conversation.additional_properties or {}).get("tenantId")
    return tenant.lower() if isinstance(tenant, str) and _GUID.fullmatch(tenant) else None


def _object_id(account: ChannelAccount | None) -> str | None:
    value = account.aad_object_id if account is not None else None
    return value.lower() if isinstance(value, str) and _GUID.fullmatch(value) else None


def turn_id(activity: Activity) -> str:
    """A turn's id: activity ids are unique within a conversation only."""
    raw = f"{activity.conversation.id if activity.conversation else ''}|{activity.id or ''}"
    return hashlib.sha256(raw.encode()).hexdigest()


def stored_reference(activity: Activity, teams_tenant: str, aad_object_id: str) -> people.StoredReference:
    reference = TurnContext.get_conversation_reference(activity)
    return people.StoredReference(
        teams_tenant_id=teams_tenant, aad_object_id=aad_object_id,
        teams_user_id=activity.from_property.id if activity.from_property else aad_object_id,
        conversation_id=activity.conversation.id, service_url=activity.service_url,
        reference=reference.serialize())


def answer_activity(answer: chat.ChatAnswer) -> Activity:
    if answer.card is not None:
        activity = MessageFactory.attachment(CardFactory.adaptive_card(answer.card))
        activity.text = answer.text
        return activity
    return MessageFactory.text(answer.text or "")


class CoachBot(TeamsActivityHandler):
    async def _identify(self, context: TurnContext, *, refuse: bool) -> people.Member | None:
        activity = context.activity
        teams_tenant = teams_tenant_id(activity)
        aad = _object_id(activity.from_property)
        lookup = await people.lookup_by_object_id(teams_tenant, aad) if teams_tenant else people.Lookup(None, None)
        member = lookup.member
        if member is None and lookup.tenant is not None and lookup.tenant.active and activity.from_property:
            email = await self._member_email(context)
            if email:
                member = await people.member_by_email(lookup.tenant, email)
        if member is None:
            reason = ("unknown Teams tenant" if lookup.tenant is None else "tenant suspended"
                      if not lookup.tenant.active else "not a provisioned, active user")
            log.warning("teams: no access for object id %s in Teams tenant %s (%s, %s)", aad, teams_tenant, reason,
                        activity.type)
            if refuse:
                contact = (lookup.tenant.support_contact if lookup.tenant else None) or "your IT team"
                await context.send_activity(NO_ACCESS.format(contact=contact))
            return None
        if teams_tenant and aad and activity.conversation:
            await people.remember_conversation(member, stored_reference(activity, teams_tenant, aad))
        return member

    @staticmethod
    async def _member_email(context: TurnContext) -> str | None:
        try:
            account = await TeamsInfo.get_member(context, context.activity.from_property.id)
        except Exception as error:  # the lookup is a best effort: without it the user is unknown
            log.warning("teams: member lookup failed: %s", type(error).__name__)
            return None
        return getattr(account, "email", None) or getattr(account, "user_principal_name", None)

    async def on_installation_update_add(self, context: TurnContext) -> None:
        member = await self._identify(context, refuse=True)
        if member is not None:
            await context.send_activity(WELCOME.format(name=(member.display_name or "there").split(" ")[0]))

    async def on_installation_update_remove(self, context: TurnContext) -> None:
        teams_tenant, aad = teams_tenant_id(context.activity), _object_id(context.activity.from_property)
        if teams_tenant and aad:
            lookup = await people.lookup_by_object_id(teams_tenant, aad)
            if lookup.tenant is not None:
                await people.forget_installation(lookup.tenant, aad)

    async def on_conversation_update_activity(self, context: TurnContext) -> None:
        await self._identify(context, refuse=False)

    async def on_message_activity(self, context: TurnContext) -> None:
        member = await self._identify(context, refuse=True)
        if member is None:
            return
        activity = context.activity
        text = (TurnContext.remove_recipient_mention(activity) if activity.entities else activity.text) or ""
        if not text.strip():
            await context.send_activity(EMPTY_MESSAGE)
            return
        request = chat.ChatRequest(
            turn_id=turn_id(activity), tenant_id=member.tenant.id, tenant_slug=member.tenant.slug,
            user_id=member.user_id, email=member.email, display_name=member.display_name,
            conversation_id=activity.conversation.id, text=text.strip(), locale=activity.locale)
        await relay(context, request)


async def relay(context: TurnContext, request: chat.ChatRequest) -> None:
    """Ask the chatbot with a typing indicator; past the inline budget, hand the turn to the queue."""
    budget = config.teams().chat_inline_seconds
    asking = asyncio.create_task(asyncio.to_thread(chat.ask, request, timeout=budget))
    await context.send_activity(Activity(type=ActivityTypes.typing))
    try:
        answer = await asking
    except chat.ChatTimeout:
        from shared.teams import turns

        await turns.hand_over(request)
        log.info("teams: turn %s handed to the queue after %g s", request.turn_id[:12], budget)
        return
    except chat.ChatUnavailable as error:
        log.error("teams: chatbot of tenant %s: %s", request.tenant_slug, error)
        await context.send_activity(CHAT_NOT_SET_UP if isinstance(error, chat.ChatNotConfigured) else CHAT_FAILED)
        return
    await context.send_activity(answer_activity(answer))
