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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
    rows = conn.execute(
        "WITH incoming AS ("
        "  SELECT e.* FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::jsonb[])"
        "  AS e(id, event, organization_id, directory_id, created_at, payload)),"
        " inserted AS ("
        "  INSERT INTO workos_events (id, event, organization_id, directory_id, created_at, payload, received_via,"
        "                             tenant_id, status)"
        "  SELECT e.id, e.event, e.organization_id, e.directory_id, e.created_at, e.payload, %s, t.id,"
        "         CASE WHEN t.id IS NULL THEN 'unmatched' ELSE 'pending' END"
        "  FROM incoming e LEFT JOIN tenants t ON t.workos_organization_id = e.organization_id"
        "  ON CONFLICT (id) DO NOTHING RETURNING id, status, tenant_id, directory_id)"
        " SELECT id, true, status, tenant_id, directory_id FROM inserted"
        " UNION ALL SELECT w.id, false, w.status, w.tenant_id, w.directory_id FROM workos_events w"
        "  WHERE w.id = ANY(%s) AND w.id NOT IN (SELECT id FROM inserted)",
        [[e.id for e in events], [e.event for e in events], [e.organization_id for e in events],
         [e.directory_id for e in events], [e.created_at for e in events], [Jsonb(e.as_document()) for e in events],
         via, [e.id for e in events]]).fetchall()
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


def pending_events(conn: psycopg.Connection, tenant_id: str, directory_id: str, *, limit: int) -> list[DirectoryEvent]:
    """The next pending events of a directory, oldest first (created_at, then id)."""
    from shared.directory.events import parse_event

    rows = conn.execute(
        "SELECT payload FROM workos_events WHERE tenant_id = %s AND directory_id = %s AND status = 'pending'"
        " ORDER BY created_at, id LIMIT %s", [tenant_id, directory_id, limit]).fetchall()
    return [parse_event(payload) for (payload,) in rows]


def mark(conn: psycopg.Connection, outcomes: Iterable[Outcome]) -> None:
    outcomes = list(outcomes)
    if not outcomes:
        return
    conn.execute(
        "UPDATE workos_events w SET status = o.status, outcome = o.detail, applied_at = now()"
        " FROM unnest(%s::text[], %s::text[], %s::text[]) AS o(id, status, detail) WHERE w.id = o.id",
        [[o.event_id for o in outcomes], [o.status for o in outcomes], [o.detail[:500] for o in outcomes]])


def event_counts(conn: psycopg.Connection, tenant_id: str | None = None) -> dict[str, int]:
    rows = conn.execute(
        "SELECT status, count(*) FROM workos_events WHERE (%s::uuid IS NULL OR tenant_id = %s::uuid) GROUP BY status",
        [tenant_id, tenant_id]).fetchall()
    return {status: count for status, count in rows}
