"""Proactive alerts: accepted from the admin API, recorded with one delivery row per recipient, and fanned
out as bounded batches on ``teams-alerts``. Free of botbuilder (the sender is ``delivery``).

Contract (tests/teams/test_alerts.py):
- a request is ``{alert_id, tenant, recipients, title, text, url?, card?}``: ``recipients`` is ``"all"`` (every
  active user) or a list of user ids and emails (at most ``MAX_RECIPIENTS``); every bad field is named in one
  400 answer; the caller must be allowed the tenant;
- recipients that are not active users of the tenant are reported as ``unknown`` and kept on the alert;
- the same ``alert_id`` with the same content is accepted again without new rows, and queues again the
  batches that are not finished (so a retried request repairs a lost enqueue); with other content it is a 409;
- batches hold at most ``TEAMS_ALERT_BATCH_SIZE`` recipients; at most ``ENQUEUE_CHUNK`` batch messages are
  sent per step, the rest by a continuation message the worker expands, so a tenant of any size is
  queued in bounded steps;
- ``alert_status`` counts deliveries by status and lists the recipients that could not be reached.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from shared import config, queues
from shared.tenants.models import Tenant

MAX_RECIPIENTS = 10_000
MAX_TITLE = 200
MAX_TEXT = 4_000
MAX_CARD_BYTES = 24_000  # Teams refuses messages over about 28 KB, envelope included
ENQUEUE_CHUNK = 64
_ALERT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class InvalidAlert(ValueError):
    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems.items()))
        self.problems = problems


class AlertConflict(Exception):
    pass


@dataclass(frozen=True)
class AlertRequest:
    alert_id: str
    tenant: str
    recipients: str | tuple[str, ...]
    title: str
    text: str
    url: str | None = None
    card: dict[str, Any] | None = None

    def fingerprint(self) -> str:
        content = {"recipients": self.recipients if isinstance(self.recipients, str) else sorted(self.recipients),
                   "title": self.title, "text": self.text, "url": self.url, "card": self.card}
        return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _recipients(value: Any, problems: dict[str, str]) -> str | tuple[str, ...]:
    if value == "all":
        return "all"
    if not isinstance(value, list) or not value:
        problems["recipients"] = 'must be "all" or a non-empty list of user ids and emails'
        return ()
    if len(value) > MAX_RECIPIENTS:
        problems["recipients"] = f'at most {MAX_RECIPIENTS} recipients per alert (or "all")'
        return ()
    bad = [item for item in value if not isinstance(item, str) or not (_is_uuid(item) or _EMAIL.fullmatch(item))]
    if bad:
        problems["recipients"] = f"{len(bad)} entr{'y is' if len(bad) == 1 else 'ies are'} neither a user id nor an " \
                                 f"email, first {str(bad[0])[:80]!r}"
        return ()
    return tuple(dict.fromkeys(item.strip().lower() for item in value))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _text(document: dict[str, Any], name: str, limit: int, problems: dict[str, str]) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value.strip():
        problems[name] = "is required (a non-empty string)"
        return ""
    if len(value) > limit:
        problems[name] = f"is longer than {limit} characters"
    return value.strip()


def _card(value: Any, problems: dict[str, str]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") != "AdaptiveCard" or not isinstance(value.get("body"), list):
        problems["card"] = 'must be an Adaptive Card: an object with "type": "AdaptiveCard" and a "body" list'
        return None
    if len(json.dumps(value)) > MAX_CARD_BYTES:
        problems["card"] = f"is larger than {MAX_CARD_BYTES} bytes as JSON"
    return value


def parse_alert(document: Any) -> AlertRequest:
    """Validate a request body; InvalidAlert names every bad field."""
    from shared.tenants.models import InvalidValue, parse_url

    if not isinstance(document, dict):
        raise InvalidAlert({"body": "must be a JSON object"})
    problems: dict[str, str] = {}
    alert_id = document.get("alert_id")
    if not isinstance(alert_id, str) or not _ALERT_ID.fullmatch(alert_id):
        problems["alert_id"] = "must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
    tenant = document.get("tenant")
    if not isinstance(tenant, str) or not tenant:
        problems["tenant"] = "is required (the tenant's slug)"
    recipients = _recipients(document.get("recipients"), problems)
    title = _text(document, "title", MAX_TITLE, problems)
    text = _text(document, "text", MAX_TEXT, problems)
    url = document.get("url")
    if url is not None:
        try:
            url = parse_url(url, "url") if isinstance(url, str) else None
        except InvalidValue as error:
            problems["url"] = str(error).removeprefix("url: ")
        if url is None and "url" not in problems:
            problems["url"] = "must be an https:// URL"
    card = _card(document.get("card"), problems)
    unknown = set(document) - {"alert_id", "tenant", "recipients", "title", "text", "url", "card"}
    if unknown:
        problems["body"] = f"unknown fields: {', '.join(sorted(unknown))}"
    if problems:
        raise InvalidAlert(problems)
    return AlertRequest(alert_id, tenant, recipients, title, text, url, card)


@dataclass
class AcceptedAlert:
    tenant_id: str
    alert_id: str
    recipients: int
    unknown: list[str]
    batches: int
    created: bool
    pending_batches: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "recipients": self.recipients, "unknown_recipients": self.unknown,
                "batches": self.batches, "status": "accepted" if self.created else "already accepted"}


def _resolve(conn: psycopg.Connection, tenant: Tenant, request: AlertRequest, batch_size: int) -> tuple[int, list[str]]:
    """Insert one delivery row per active recipient, numbered into batches; returns (count, unknown)."""
    if request.recipients == "all":
        count = conn.execute(
            "WITH inserted AS (INSERT INTO teams_alert_deliveries (tenant_id, alert_id, user_id, batch)"
            " SELECT %s, %s, id, (row_number() OVER (ORDER BY id) - 1) / %s FROM users"
            " WHERE tenant_id = %s AND status = 'active' RETURNING 1) SELECT count(*) FROM inserted",
            [tenant.id, request.alert_id, batch_size, tenant.id]).fetchone()[0]
        return count, []
    ids = [item for item in request.recipients if _is_uuid(item)]
    emails = [item for item in request.recipients if not _is_uuid(item)]
    rows = conn.execute(
        "SELECT id::text, lower(primary_email) FROM users WHERE tenant_id = %s AND status = 'active'"
        " AND (id = ANY(%s::uuid[]) OR lower(primary_email) = ANY(%s)) ORDER BY id",
        [tenant.id, ids, emails]).fetchall()
    found = {user_id for user_id, _ in rows} | {email for _, email in rows if email}
    unknown = [item for item in request.recipients if item not in found]
    user_ids = list(dict.fromkeys(user_id for user_id, _ in rows))
    if user_ids:
        conn.execute(
            "INSERT INTO teams_alert_deliveries (tenant_id, alert_id, user_id, batch)"
            " SELECT %s, %s, user_id, (ordinality - 1) / %s FROM unnest(%s::uuid[]) WITH ORDINALITY AS u(user_id)",
            [tenant.id, request.alert_id, batch_size, user_ids])
    return len(user_ids), unknown


def accept_alert(conn: psycopg.Connection, tenant: Tenant, request: AlertRequest, *, created_by: str) -> AcceptedAlert:
    """Record an alert and its deliveries (or find the same one again); queue with ``enqueue_batches`` after commit."""
    from shared import db

    db.use_tenant(conn, tenant.id)
    fingerprint = request.fingerprint()
    inserted = conn.execute(
        "INSERT INTO teams_alerts (tenant_id, alert_id, fingerprint, title, text, url, card, batches, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, 0, %s) ON CONFLICT (tenant_id, alert_id) DO NOTHING RETURNING 1",
        [tenant.id, request.alert_id, fingerprint, request.title, request.text, request.url,
         Jsonb(request.card) if request.card is not None else None, created_by]).fetchone()
    if inserted is None:
        return _existing(conn, tenant, request, fingerprint)
    batch_size = config.teams().alert_batch_size
    count, unknown = _resolve(conn, tenant, request, batch_size)
    batches = -(-count // batch_size)
    conn.execute("UPDATE teams_alerts SET batches = %s, unknown_recipients = %s WHERE tenant_id = %s AND alert_id = %s",
                 [batches, Jsonb(unknown), tenant.id, request.alert_id])
    return AcceptedAlert(tenant.id, request.alert_id, count, unknown, batches, True,
                         list(range(min(batches, ENQUEUE_CHUNK + 1))))


def _existing(conn: psycopg.Connection, tenant: Tenant, request: AlertRequest, fingerprint: str) -> AcceptedAlert:
    row = conn.execute("SELECT fingerprint, batches, unknown_recipients,"
                       " (SELECT count(*) FROM teams_alert_deliveries d WHERE d.tenant_id = a.tenant_id"
                       "  AND d.alert_id = a.alert_id) FROM teams_alerts a WHERE tenant_id = %s AND alert_id = %s",
                       [tenant.id, request.alert_id]).fetchone()
    if row[0] != fingerprint:
        raise AlertConflict(f"alert {request.alert_id!r} was already accepted with other content; use a new alert_id")
    pending = unfinished_batches(conn, tenant.id, request.alert_id, limit=ENQUEUE_CHUNK + 1)
    return AcceptedAlert(tenant.id, request.alert_id, row[3], list(row[2]), row[1], False, pending)


def enqueue_batches(tenant_id: str, alert_id: str, batches: list[int]) -> None:
    """Queue up to ENQUEUE_CHUNK of these batches, and a continuation from the next one when more remain."""
    queue = config.queues().teams_alerts
    for batch in batches[:ENQUEUE_CHUNK]:
        queues.send_json(queue, {"tenant_id": tenant_id, "alert_id": alert_id, "batch": batch})
    if len(batches) > ENQUEUE_CHUNK:
        queues.send_json(queue, {"tenant_id": tenant_id, "alert_id": alert_id, "enqueue_from": batches[ENQUEUE_CHUNK]})


def unfinished_batches(conn: psycopg.Connection, tenant_id: str, alert_id: str, *, first: int = 0,
                       limit: int | None = None) -> list[int]:
    return [batch for (batch,) in conn.execute(
        "SELECT DISTINCT batch FROM teams_alert_deliveries WHERE tenant_id = %s AND alert_id = %s AND batch >= %s"
        " AND status IN ('pending', 'sending') ORDER BY batch LIMIT %s",
        [tenant_id, alert_id, first, limit]).fetchall()]


def alert_status(conn: psycopg.Connection, tenant: Tenant, alert_id: str, *,
                 limit: int = 1000) -> dict[str, Any] | None:
    from shared import db

    db.use_tenant(conn, tenant.id)
    alert = conn.execute("SELECT title, batches, unknown_recipients, created_by, created_at FROM teams_alerts"
                         " WHERE tenant_id = %s AND alert_id = %s", [tenant.id, alert_id]).fetchone()
    if alert is None:
        return None
    counts = dict(conn.execute("SELECT status, count(*) FROM teams_alert_deliveries WHERE tenant_id = %s"
                               " AND alert_id = %s GROUP BY status", [tenant.id, alert_id]).fetchall())
    problems = conn.execute(
        "SELECT d.user_id::text, u.primary_email, d.status, d.detail FROM teams_alert_deliveries d"
        " JOIN users u ON u.id = d.user_id WHERE d.tenant_id = %s AND d.alert_id = %s"
        " AND d.status IN ('unreachable', 'failed') ORDER BY d.user_id LIMIT %s",
        [tenant.id, alert_id, limit]).fetchall()
    statuses = ("pending", "sending", "sent", "unreachable", "failed")
    return {
        "alert_id": alert_id, "tenant": tenant.slug, "title": alert[0], "batches": alert[1],
        "created_by": alert[3], "created_at": alert[4].isoformat(),
        "counts": {status: counts.get(status, 0) for status in statuses},
        "done": counts.get("pending", 0) + counts.get("sending", 0) == 0,
        "unknown_recipients": list(alert[2]),
        "not_delivered": [{"user_id": user_id, "email": email, "status": status, "detail": detail}
                          for user_id, email, status, detail in problems],
    }
