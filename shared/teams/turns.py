"""Chat turns too slow for the Bot Framework's 15 seconds: handed to ``teams-turns``, answered proactively.

Contract (tests/teams/test_turns.py):
- ``hand_over`` records the turn (``queued``) and puts the request on the queue; a turn already recorded is
  not queued twice; when the queue cannot be reached the record is removed again and the error raised;
- the worker asks the chatbot again with the same ``turn_id`` (an instance answers a repeated turn id with
  its first answer) and ``TEAMS_CHAT_TIMEOUT_SECONDS`` to answer, posts the answer in the user's stored
  conversation and records the turn ``answered`` right after Teams accepted it; a chatbot error or timeout
  posts a friendly message and records ``failed``;
- a redelivered message whose turn is answered or failed sends nothing; one whose user has no stored
  conversation is dropped with a log line; a malformed message raises (the host retries it, then poisons it).
  Crash window: a worker that dies after Teams accepted the answer and before the record commits answers
  once more on redelivery.
"""

from __future__ import annotations

import asyncio
import json
import logging

from shared import config, db, queues
from shared.teams import chat

log = logging.getLogger(__name__)


async def hand_over(request: chat.ChatRequest) -> bool:
    """Record and queue a turn; False when it was already handed over (a redelivered Teams message)."""
    async with db.async_transaction(tenant_id=request.tenant_id) as conn:
        cursor = await conn.execute(
            "INSERT INTO teams_turns (tenant_id, turn_id, user_id) VALUES (%s, %s, %s)"
            " ON CONFLICT (tenant_id, turn_id) DO NOTHING RETURNING 1",
            [request.tenant_id, request.turn_id, request.user_id])
        created = await cursor.fetchone() is not None
    if created:
        try:
            await asyncio.to_thread(queues.send_json, config.queues().teams_turns, request.as_message())
        except Exception:
            # Not queued: forget the turn, so that Teams' retry of this message hands it over again.
            async with db.async_transaction(tenant_id=request.tenant_id) as conn:
                await conn.execute("DELETE FROM teams_turns WHERE tenant_id = %s AND turn_id = %s",
                                   [request.tenant_id, request.turn_id])
            raise
    return created


async def _reference_and_status(request: chat.ChatRequest) -> tuple[dict | None, str | None]:
    async with db.async_transaction(tenant_id=request.tenant_id) as conn:
        cursor = await conn.execute(
            "SELECT (SELECT status FROM teams_turns WHERE tenant_id = %s AND turn_id = %s),"
            " (SELECT reference FROM teams_conversations WHERE tenant_id = %s AND user_id = %s)",
            [request.tenant_id, request.turn_id, request.tenant_id, request.user_id])
        status, reference = await cursor.fetchone()
    return reference, status


async def _finish(request: chat.ChatRequest, status: str, detail: str | None) -> None:
    async with db.async_transaction(tenant_id=request.tenant_id) as conn:
        await conn.execute("UPDATE teams_turns SET status = %s, detail = %s, finished_at = now()"
                           " WHERE tenant_id = %s AND turn_id = %s", [status, detail, request.tenant_id,
                                                                       request.turn_id])


def parse_message(body: str) -> chat.ChatRequest:
    message = json.loads(body)
    required = ("turn_id", "tenant_id", "tenant_slug", "user_id", "conversation_id", "text")
    if not isinstance(message, dict) or not all(isinstance(message.get(name), str) for name in required):
        raise ValueError(f"a teams-turns message is a JSON object with {', '.join(required)}")
    return chat.ChatRequest.from_message(message)


async def answer_message(body: str) -> str:
    """Answer one queued turn; returns what happened (answered, failed, skipped)."""
    from botbuilder.core import MessageFactory
    from botbuilder.schema import Activity, ActivityTypes

    from shared.teams.bot import CHAT_FAILED, CHAT_NOT_SET_UP, answer_activity
    from shared.teams.runtime import send_proactive

    request = parse_message(body)
    reference, status = await _reference_and_status(request)
    if status != "queued":
        log.info("teams-turns: turn %s is %s: nothing to send", request.turn_id[:12], status or "unknown")
        return "skipped"
    if reference is None:
        log.warning("teams-turns: user %s has no stored conversation: the answer cannot be delivered", request.user_id)
        await _finish(request, "failed", "no stored conversation")
        return "failed"
    await send_proactive(reference, Activity(type=ActivityTypes.typing))
    timeout = config.teams().chat_timeout_seconds
    try:
        answer = await asyncio.to_thread(chat.ask, request, timeout=timeout)
    except chat.ChatUnavailable as error:
        log.error("teams-turns: chatbot of tenant %s: %s", request.tenant_slug, error)
        text = CHAT_NOT_SET_UP if isinstance(error, chat.ChatNotConfigured) else CHAT_FAILED
        await send_proactive(reference, MessageFactory.text(text))
        await _finish(request, "failed", str(error)[:500])
        return "failed"
    await send_proactive(reference, answer_activity(answer))
    await _finish(request, "answered", None)
    return "answered"
