"""The process's adapter and bot, built on first use, and proactive sends through them.

Contract (tests/teams/test_alerts.py, tests/teams/test_turns.py): ``send_proactive(reference, activity)``
posts one activity into a stored conversation and returns Teams' activity id; ``open_conversation`` creates
the 1:1 conversation of a user who has the app installed (always with the tenant id, or Teams answers
"Could not parse tenant id") and returns its serialized reference. Both raise ``SendFailed`` carrying the
connector's status and Retry-After when Teams refuses.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ChannelAccount, ConversationParameters, ConversationReference
from botframework.connector.models import ErrorResponseException

from shared.teams import auth
from shared.teams.bot import CoachBot, TeamsAdapter

TEAMS_CHANNEL = "msteams"


@dataclass
class _Runtime:
    identity: auth.BotIdentity
    adapter: TeamsAdapter
    bot: CoachBot


_lock = threading.Lock()
_runtime: _Runtime | None = None


def runtime() -> _Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            identity = auth.identity()
            _runtime = _Runtime(identity, TeamsAdapter(identity.authentication), CoachBot())
        return _runtime


def reset() -> None:
    global _runtime
    with _lock:
        _runtime = None
    auth.reset()


class SendFailed(Exception):
    def __init__(self, status: int | None, message: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _failure(error: Exception) -> SendFailed:
    if isinstance(error, ErrorResponseException) and error.response is not None:
        response = error.response
        return SendFailed(response.status_code, f"Teams answered {response.status_code}: {str(error)[:200]}",
                          response.headers.get("Retry-After"))
    return SendFailed(None, f"{type(error).__name__}: {str(error)[:200]}")


async def send_proactive(reference: dict[str, Any], activity: Activity) -> str | None:
    current = runtime()
    sent: list[str | None] = []
    failed: list[Exception] = []

    async def deliver(context: TurnContext) -> None:
        # Caught here: the adapter would hand an error in the pipeline to on_turn_error and swallow it.
        try:
            response = await context.send_activity(activity)
        except Exception as error:
            failed.append(error)
            return
        sent.append(response.id if response else None)

    try:
        await current.adapter.continue_conversation(
            ConversationReference().deserialize(reference), deliver, bot_app_id=current.identity.settings.app_id)
    except Exception as error:
        raise _failure(error) from None
    if failed:
        raise _failure(failed[0])
    return sent[0] if sent else None


async def open_conversation(service_url: str, teams_tenant_id: str, aad_object_id: str) -> dict[str, Any]:
    current = runtime()
    app_id = current.identity.settings.app_id
    parameters = ConversationParameters(
        is_group=False, bot=ChannelAccount(id=f"28:{app_id}"), members=[ChannelAccount(id=aad_object_id)],
        tenant_id=teams_tenant_id, channel_data={"tenant": {"id": teams_tenant_id}})
    references: list[dict[str, Any]] = []

    async def capture(context: TurnContext) -> None:
        reference = TurnContext.get_conversation_reference(context.activity)
        references.append(reference.serialize())

    try:
        await current.adapter.create_conversation(app_id, capture, parameters, TEAMS_CHANNEL, service_url)
    except Exception as error:
        raise _failure(error) from None
    return references[0]
