"""The ``teams-alerts`` worker: one batch of an alert's recipients per message, each sent once.

Contract (tests/teams/test_delivery.py):
- a message is ``{"tenant_id", "alert_id", "batch"}``, or a continuation ``{"tenant_id", "alert_id",
  "enqueue_from"}`` that queues the next unfinished batches (alerts.ENQUEUE_CHUNK at a time);
- the worker claims the batch's ``pending`` rows (and ``sending`` rows whose claim expired: a worker that
  died) with one conditional update, so two workers never send to the same recipient at once; rows another
  worker still holds make the message come back after the claim ends;
- each recipient gets an Adaptive Card through their stored conversation or, without one (or when Teams
  answers 404 for it), a 1:1 conversation opened with their Entra object id and the tenant id (the app must
  be installed for them); the status is
  recorded ``sent`` (with Teams' activity id) right after Teams accepted the send, so a redelivered batch
  sends nothing twice. The crash window that remains: a worker that dies after Teams accepted a send and
  before its record commits sends that one message again once the claim expires;
- recipients Teams cannot reach (app not installed or uninstalled, user unknown to Teams, no Teams identity)
  are recorded ``unreachable`` with the reason; other refusals ``failed``;
- sends are paced across every instance: each send reserves the next slot of the tenant's pacing row
  (one conditional update: slots ``1/TEAMS_SENDS_PER_SECOND`` apart, never in the past; 0 turns pacing
  off) and waits for it, so a late sender cannot burst to catch up;
- 429, 412, 502 and 504 (and connection failures) are retried with exponential backoff and full jitter,
  honouring Retry-After; when a recipient's retries run out, the batch's remaining claims are released and
  the message comes back later; after ``MAX_ATTEMPTS`` claims a recipient is recorded ``failed``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from dataclasses import dataclass
from typing import Any

from shared import config, db, queues
from shared.http import parse_retry_after
from shared.teams import alerts, people

log = logging.getLogger(__name__)

RETRYABLE = frozenset({412, 429, 502, 504})
UNREACHABLE = frozenset({403, 404})
SEND_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
CLAIM_SECONDS = 300
MAX_ATTEMPTS = 8  # claims of one recipient before it is recorded failed
SEND_CONCURRENCY = 4


class BatchDeferred(Exception):
    """Teams kept refusing: the batch's remaining recipients wait for a later delivery of the message."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.0f} s")
        self.delay = delay


@dataclass
class BatchResult:
    claimed: int = 0
    sent: int = 0
    unreachable: int = 0
    failed: int = 0
    deferred: int = 0
    requeued: bool = False


@dataclass(frozen=True)
class _Alert:
    title: str
    text: str
    url: str | None
    card: dict[str, Any] | None


def alert_card(alert: _Alert) -> dict[str, Any]:
    if alert.card is not None:
        return alert.card
    card: dict[str, Any] = {
        "type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "version": "1.5",
        "body": [{"type": "TextBlock", "text": alert.title, "weight": "Bolder", "size": "Medium", "wrap": True},
                 {"type": "TextBlock", "text": alert.text, "wrap": True}],
    }
    if alert.url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": alert.url}]
    return card


# --- claims and records ---------------------------------------------------------------------------------------


async def _claim(tenant_id: str, alert_id: str, batch: int) -> tuple[list[str], float | None, _Alert | None]:
    """Claim the batch's sendable rows; returns them, the seconds until other workers' claims end, the alert."""
    async with db.async_transaction(tenant_id=tenant_id) as conn:
        cursor = await conn.execute(
            "UPDATE teams_alert_deliveries SET status = 'sending', attempts = attempts + 1, updated_at = now(),"
            " claimed_until = now() + make_interval(secs => %s) WHERE tenant_id = %s AND alert_id = %s AND batch = %s"
            " AND (status = 'pending' OR (status = 'sending' AND claimed_until < now())) RETURNING user_id::text",
            [CLAIM_SECONDS, tenant_id, alert_id, batch])
        claimed = [row[0] for row in await cursor.fetchall()]
        cursor = await conn.execute(
            "SELECT extract(epoch FROM max(claimed_until) - now()) FROM teams_alert_deliveries WHERE tenant_id = %s"
            " AND alert_id = %s AND batch = %s AND status = 'sending' AND NOT (user_id = ANY(%s::uuid[]))",
            [tenant_id, alert_id, batch, claimed])
        held = (await cursor.fetchone())[0]
        cursor = await conn.execute("SELECT title, text, url, card FROM teams_alerts WHERE tenant_id = %s"
                                    " AND alert_id = %s", [tenant_id, alert_id])
        row = await cursor.fetchone()
    return claimed, float(held) if held is not None else None, _Alert(*row) if row else None


async def _record(tenant_id: str, alert_id: str, user_id: str, status: str, *, activity_id: str | None = None,
                  detail: str | None = None) -> None:
    async with db.async_transaction(tenant_id=tenant_id) as conn:
        await conn.execute(
            "UPDATE teams_alert_deliveries SET status = %s, activity_id = %s, detail = %s, claimed_until = NULL,"
            " updated_at = now() WHERE tenant_id = %s AND alert_id = %s AND user_id = %s",
            [status, activity_id, detail, tenant_id, alert_id, user_id])


async def _release(tenant_id: str, alert_id: str, user_ids: list[str]) -> None:
    """Give unsent claims back (or fail those that were claimed too often)."""
    if not user_ids:
        return
    async with db.async_transaction(tenant_id=tenant_id) as conn:
        await conn.execute(
            "UPDATE teams_alert_deliveries SET claimed_until = NULL, updated_at = now(),"
            " status = CASE WHEN attempts >= %s THEN 'failed' ELSE 'pending' END,"
            " detail = CASE WHEN attempts >= %s THEN 'Teams kept refusing the send (rate limit or outage)' END"
            " WHERE tenant_id = %s AND alert_id = %s AND user_id = ANY(%s::uuid[]) AND status = 'sending'",
            [MAX_ATTEMPTS, MAX_ATTEMPTS, tenant_id, alert_id, user_ids])


# --- pacing -----------------------------------------------------------------------------------------------------


async def reserve_slots(tenant_id: str, count: int, per_second: float) -> float:
    """Reserve ``count`` send slots of the tenant; returns the seconds from now until the first one."""
    span = count / per_second
    async with db.async_transaction(tenant_id=tenant_id) as conn:
        cursor = await conn.execute(
            "INSERT INTO teams_send_pacing AS p (tenant_id, next_slot) VALUES (%(t)s, clock_timestamp()"
            " + make_interval(secs => %(span)s)) ON CONFLICT (tenant_id) DO UPDATE SET next_slot ="
            " greatest(p.next_slot, clock_timestamp()) + make_interval(secs => %(span)s)"
            " RETURNING extract(epoch FROM p.next_slot - clock_timestamp()) - %(span)s",
            {"t": tenant_id, "span": span})
        return max(0.0, float((await cursor.fetchone())[0]))


# --- sending ----------------------------------------------------------------------------------------------------


def _backoff(attempt: int, retry_after: str | None) -> float:
    wait = parse_retry_after(retry_after)
    if wait is not None:
        return wait
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)))


async def _with_retries(send: Any) -> Any:
    from shared.teams.runtime import SendFailed

    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            return await send()
        except SendFailed as failure:
            if failure.status == 401:  # the connector refused our token: no recipient can be reached now
                log.error("teams-alerts: the Bot connector refused the bot's token: %s", failure)
                raise BatchDeferred(60.0) from None
            if failure.status is not None and failure.status not in RETRYABLE:
                raise
            wait = _backoff(attempt, failure.retry_after)
            if attempt == SEND_ATTEMPTS:
                raise BatchDeferred(max(wait, 5.0)) from None
            log.info("teams-alerts: %s; retrying in %.1f s", failure, wait)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


async def _send_one(tenant_id: str, reach: people.Reachability | None, activity: Any,
                    service_url: str) -> tuple[str, str | None, str | None]:
    """Send to one recipient; returns (status, activity id, detail)."""
    from shared.teams.runtime import SendFailed, open_conversation, send_proactive

    if reach is None:
        return "unreachable", None, "not an active user any more"
    if reach.reference is not None and not reach.installed:
        return "unreachable", None, "the user uninstalled the app"
    can_open = bool(reach.aad_object_id and reach.teams_tenant_id)
    try:
        if reach.reference is not None:
            stored = reach.reference
            try:
                return "sent", await _with_retries(lambda: send_proactive(stored, activity)), None
            except SendFailed as failure:
                if failure.status != 404 or not can_open:
                    raise
                # The stored conversation is gone: open a new one below.
        if not can_open:
            return "unreachable", None, ("no Teams identity: the user never wrote to the bot and has no Entra "
                                         "object id (or the tenant no Teams tenant id)")
        opened = await _with_retries(lambda: open_conversation(service_url, reach.teams_tenant_id or "",
                                                               reach.aad_object_id or ""))
        await _remember_opened(tenant_id, reach, opened)
        return "sent", await _with_retries(lambda: send_proactive(opened, activity)), None
    except SendFailed as failure:
        status = "unreachable" if failure.status in UNREACHABLE else "failed"
        detail = "the app is not installed for the user in Teams" if failure.status == 403 else str(failure)
        return status, None, detail[:500]


async def _remember_opened(tenant_id: str, reach: people.Reachability, reference: dict[str, Any]) -> None:
    stored = people.StoredReference(
        teams_tenant_id=reach.teams_tenant_id or "", aad_object_id=reach.aad_object_id or "",
        teams_user_id=reach.aad_object_id or "", conversation_id=reference["conversation"]["id"],
        service_url=reference["serviceUrl"], reference=reference)
    async with db.async_transaction(tenant_id=tenant_id) as conn:
        await people.save_reference(conn, tenant_id, reach.user_id, stored)


async def deliver_batch(tenant_id: str, alert_id: str, batch: int) -> BatchResult:
    from botbuilder.core import CardFactory, MessageFactory

    result = BatchResult()
    claimed, held_seconds, alert = await _claim(tenant_id, alert_id, batch)
    result.claimed = len(claimed)
    if alert is None:
        log.warning("teams-alerts: alert %s of tenant %s does not exist (purged?): message dropped",
                    alert_id, tenant_id)
        return result
    if held_seconds is not None:  # another worker holds some of this batch: look again once its claim ends
        await asyncio.to_thread(_requeue, tenant_id, alert_id, batch, held_seconds + 1)
        result.requeued = True
    if not claimed:
        return result
    activity = MessageFactory.attachment(CardFactory.adaptive_card(alert_card(alert)))
    activity.summary = alert.title
    async with db.async_transaction(tenant_id=tenant_id) as conn:
        reach = await people.reachability(conn, tenant_id, claimed)
        service_url = await people.tenant_service_url(conn, tenant_id) or config.teams().service_url
    rate = config.teams().sends_per_second
    gate = asyncio.Semaphore(SEND_CONCURRENCY)
    remaining = set(claimed)
    deferred: list[float] = []

    async def one(user_id: str) -> None:
        async with gate:
            if deferred:
                return
            if rate > 0:  # a slot of its own, just in time: a late sender never bursts to catch up
                delay = await reserve_slots(tenant_id, 1, rate)
                if delay > 0:
                    await asyncio.sleep(delay)
            try:
                status, activity_id, detail = await _send_one(tenant_id, reach.get(user_id), activity, service_url)
            except BatchDeferred as stop:
                deferred.append(stop.delay)
                return
            await _record(tenant_id, alert_id, user_id, status, activity_id=activity_id, detail=detail)
            remaining.discard(user_id)
            setattr(result, status, getattr(result, status) + 1)

    outcomes = await asyncio.gather(*(one(user_id) for user_id in claimed), return_exceptions=True)
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if errors:  # unexpected (the database, say): give the rest back and let the host retry the message
        await _release(tenant_id, alert_id, sorted(remaining))
        raise errors[0]
    if remaining:
        result.deferred = len(remaining)
        await _release(tenant_id, alert_id, sorted(remaining))
        if not result.requeued:
            await asyncio.to_thread(_requeue, tenant_id, alert_id, batch, max(deferred or [5.0]))
            result.requeued = True
    log.info("teams-alerts: %s batch %d: %d sent, %d unreachable, %d failed, %d deferred", alert_id, batch,
             result.sent, result.unreachable, result.failed, result.deferred)
    return result


def _requeue(tenant_id: str, alert_id: str, batch: int, delay: float) -> None:
    queues.send_json(config.queues().teams_alerts, {"tenant_id": tenant_id, "alert_id": alert_id, "batch": batch},
                     delay_seconds=max(1, min(int(delay + 0.999), 3600)))


def _continue_enqueue(tenant_id: str, alert_id: str, first: int) -> int:
    with db.transaction(tenant_id=tenant_id) as conn:
        batches = alerts.unfinished_batches(conn, tenant_id, alert_id, first=first, limit=alerts.ENQUEUE_CHUNK + 1)
    alerts.enqueue_batches(tenant_id, alert_id, batches)
    return len(batches)


def parse_message(body: str) -> dict[str, Any]:
    message = json.loads(body)
    if not isinstance(message, dict) or not isinstance(message.get("alert_id"), str):
        raise ValueError('a teams-alerts message is {"tenant_id", "alert_id", "batch"} or {..., "enqueue_from"}')
    message["tenant_id"] = str(uuid.UUID(str(message.get("tenant_id"))))
    if not isinstance(message.get("batch", message.get("enqueue_from")), int):
        raise ValueError('a teams-alerts message names a "batch" or an "enqueue_from" batch number')
    return message


async def deliver_message(body: str) -> BatchResult | None:
    message = parse_message(body)
    if "enqueue_from" in message:
        await asyncio.to_thread(_continue_enqueue, message["tenant_id"], message["alert_id"], message["enqueue_from"])
        return None
    return await deliver_batch(message["tenant_id"], message["alert_id"], message["batch"])
