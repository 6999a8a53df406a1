"""The inbox: every Directory Sync event received, once, keyed by its WorkOS id.

Contract (tests/directory/test_inbox.py):
- ``record_events`` writes events that are not there yet and reports each as new or a duplicate
  (webhook retries, and the Events API serving what a webhook delivered, share ids);
- an event gets its tenant from its organization at arrival; an organization that maps to no tenant
  leaves it ``unmatched``, kept until ``claim_unmatched`` finds the tenant configured;
- an event is ``pending`` until the applier marks it ``applied``, ``stale`` (a newer state was
  already known), ``refused`` (the identity store's rules said no; the reason is kept) or ``failed``;
- these functions take the caller's transaction, which works across tenants (``all_tenants``) for
  intake and replay, and as the tenant for reading and marking its pending events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from shared.directory.events import DirectoryEvent


@dataclass(frozen=True)
class Recorded:
    event_id: str
    new: bool
    status: str
    tenant_id: str | None
    directory_id: str | None


@dataclass(frozen=True)
class Outcome:
    event_id: str
    status: str  # applied | stale | refused | failed
    detail: str


def record_events(conn: psycopg.Connection, events: Sequence[DirectoryEvent], via: str) -> list[Recorded]:
    """Record events (in one statement); returns what became of each, in order."""
    if not events:
        return []
    # One JSON document for the batch: arrays of JSON values would be escaped element by element.
    incoming = Jsonb([{"id": e.id, "event": e.event, "organization_id": e.organization_id,
                       "directory_id": e.directory_id, "created_at": e.created_at.isoformat(),
                       "payload": e.as_document()} for e in events])
    rows = conn.execute(
        "INSERT INTO workos_events (id, event, organization_id, directory_id, created_at, payload, received_via,"
        "                           tenant_id, status)"
        " SELECT e.id, e.event, e.organization_id, e.directory_id, e.created_at, e.payload, %s, t.id,"
        "        CASE WHEN t.id IS NULL THEN 'unmatched' ELSE 'pending' END"
        " FROM jsonb_to_recordset(%s) AS e(id text, event text, organization_id text, directory_id text,"
        "                                 created_at timestamptz, payload jsonb)"
        " LEFT JOIN tenants t ON t.workos_organization_id = e.organization_id"
        " ON CONFLICT (id) DO NOTHING RETURNING id, true, status, tenant_id, directory_id",
        [via, incoming]).fetchall()
    duplicates = sorted({e.id for e in events} - {row[0] for row in rows})
    if duplicates:
        rows += conn.execute(
            "SELECT id, false, status, tenant_id, directory_id FROM workos_events WHERE id = ANY(%s)",
            [duplicates]).fetchall()
    by_id = {row[0]: Recorded(row[0], row[1], row[2], str(row[3]) if row[3] else None, row[4]) for row in rows}
    # An id twice in one call: the first is new, the second a duplicate.
    seen: set[str] = set()
    result = []
    for event in events:
        # Missing: another transaction recorded it concurrently (after this statement's snapshot).
        recorded = by_id.get(event.id) or Recorded(event.id, False, "concurrent", None, event.directory_id)
        if event.id in seen:
            recorded = Recorded(recorded.event_id, False, recorded.status, recorded.tenant_id, recorded.directory_id)
        seen.add(event.id)
        result.append(recorded)
    return result


def claim_unmatched(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Give unmatched events whose organization now has a tenant to that tenant (pending again);
    returns the (tenant id, directory id) pairs that have work now."""
    rows = conn.execute(
        "UPDATE workos_events e SET tenant_id = t.id, status = 'pending' FROM tenants t"
        " WHERE e.status = 'unmatched' AND t.workos_organization_id = e.organization_id"
        " RETURNING t.id, e.directory_id").fetchall()
    return sorted({(str(tenant_id), directory_id) for tenant_id, directory_id in rows if directory_id})


def directories_with_pending(conn: psycopg.Connection, *, older_than_seconds: float = 0.0,
                             limit: int = 100) -> list[tuple[str, str]]:
    """(tenant id, directory id) pairs with pending events received at least that long ago."""
    rows = conn.execute(
        "SELECT DISTINCT tenant_id, directory_id FROM workos_events WHERE status = 'pending'"
        " AND received_at <= now() - make_interval(secs => %s) LIMIT %s", [older_than_seconds, limit]).fetchall()
    return [(str(tenant_id), directory_id) for tenant_id, directory_id in rows]


def pending_events(conn: psycopg.Connection, tenant_id: str, directory_id: str, *, limit: int,
                   after: tuple[datetime, str] | None = None,
                   known: Mapping[str, DirectoryEvent] | None = None) -> list[DirectoryEvent]:
    """The next pending events of a directory, oldest first (created_at, then id); ``after`` skips to
    events past that position (the index keeps entries of applied events until vacuum, and a
    drain that started at the beginning every batch would read them all again and again).
    Events the caller holds already (``known``, by id: the poller's own pages) are not read back."""
    from shared.directory.events import parse_event

    known = known or {}
    query = ("SELECT id, CASE WHEN %s THEN payload END FROM workos_events"
             " WHERE tenant_id = %s AND directory_id = %s AND status = 'pending'")
    params: list[object] = [not known, tenant_id, directory_id]
    if after is not None:  # a condition of its own, so that it bounds the index scan
        query += " AND (created_at, id) > (%s, %s)"
        params += list(after)
    rows = conn.execute(query + " ORDER BY created_at, id LIMIT %s", [*params, limit]).fetchall()
    missing = [event_id for event_id, payload in rows if payload is None and event_id not in known]
    if missing:
        known = {**known, **{event_id: parse_event(payload) for event_id, payload in conn.execute(
            "SELECT id, payload FROM workos_events WHERE id = ANY(%s)", [missing]).fetchall()}}
    return [known[event_id] if payload is None else parse_event(payload) for event_id, payload in rows]


def mark(conn: psycopg.Connection, outcomes: Iterable[Outcome]) -> None:
    outcomes = list(outcomes)
    if not outcomes:
        return
    conn.execute(
        "UPDATE workos_events w SET status = o.status, outcome = o.detail, applied_at = now()"
        " FROM jsonb_to_recordset(%s) AS o(id text, status text, detail text) WHERE w.id = o.id",
        [Jsonb([{"id": o.event_id, "status": o.status, "detail": o.detail[:500]} for o in outcomes])])


def request_apply(conn: psycopg.Connection, tenant_id: str, directory_id: str, organization_id: str | None, *,
                  resend_after_seconds: float = 60.0) -> bool:
    """Note that the directory has new work; True when a dsync-apply message must be sent: no message
    is outstanding (an applier cleared the mark when it started, or the directory is new here), or
    the last was sent too long ago to trust. Locks the directory's row until commit, so an applier
    that starts meanwhile waits and then sees this transaction's events."""
    row = conn.execute(
        "UPDATE workos_directories d SET apply_requested_at = now()"
        " FROM (SELECT id, apply_requested_at AS previous FROM workos_directories WHERE id = %s FOR UPDATE) p"
        " WHERE d.id = p.id RETURNING p.previous IS NULL OR p.previous < now() - make_interval(secs => %s)",
        [directory_id, resend_after_seconds]).fetchone()
    if row is not None:
        return bool(row[0])
    # The directory's first event: its row starts with the mark (a concurrent first event may send one
    # message more, which finds nothing left to do).
    conn.execute(
        "INSERT INTO workos_directories (id, tenant_id, organization_id, apply_requested_at)"
        " VALUES (%s, %s, %s, now()) ON CONFLICT (id) DO NOTHING", [directory_id, tenant_id, organization_id or ""])
    return True
