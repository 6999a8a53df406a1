"""The per-tenant change log that tenant apps follow (``GET /api/context/{tenant}/changes?after=N``).

Contract (tests/identity/test_changelog.py):
- every change to a user, group or membership appends one entry in the transaction that makes it,
  with the actor and what changed; a rolled-back change leaves no entry;
- sequence numbers are per tenant, start at 1 and have no gaps: they come from the tenant's row in
  tenant_change_counters, incremented in the same transaction;
- entries become visible in sequence order: the counter row stays locked until its transaction
  commits, so a later number cannot commit before an earlier one, and a reader that has seen N
  never later finds a new entry at or below N (following ``after=N`` skips nothing);
- the app cannot change or delete an entry (its role has no grant to).

The counter lock serialises one tenant's writers from their first entry to their commit: write the
entries last in a transaction, and keep such transactions short.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from shared.identity.models import Actor


@dataclass(frozen=True)
class Change:
    entity: str  # user | group | membership
    entity_id: str
    action: str
    changes: dict[str, Any] = field(default_factory=dict)
    related_id: str | None = None  # the member's user id, for membership entries


@dataclass(frozen=True)
class ChangeEntry:
    seq: int
    occurred_at: datetime
    actor_kind: str
    actor_id: str
    entity: str
    entity_id: str
    related_id: str | None
    action: str
    changes: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "occurred_at": self.occurred_at.isoformat(), "actor": f"{self.actor_kind}:{self.actor_id}",
            "entity": self.entity, "entity_id": self.entity_id, "related_id": self.related_id,
            "action": self.action, "changes": self.changes,
        }


def append_changes(conn: psycopg.Connection, tenant_id: str, actor: Actor, changes: Sequence[Change]) -> list[int]:
    """Append entries; returns their sequence numbers."""
    if not changes:
        return []
    # One statement (one round trip): take the numbers and write the entries.
    rows = conn.execute(
        "WITH counter AS ("
        "  INSERT INTO tenant_change_counters AS counter (tenant_id, last_seq) VALUES (%(tenant)s, %(count)s)"
        "  ON CONFLICT (tenant_id) DO UPDATE SET last_seq = counter.last_seq + EXCLUDED.last_seq"
        "  RETURNING last_seq)"
        " INSERT INTO change_log (tenant_id, seq, actor_kind, actor_id, entity, entity_id, related_id, action, changes)"
        " SELECT %(tenant)s, counter.last_seq - %(count)s + entry.position, %(actor_kind)s, %(actor_id)s,"
        "        entry.entity, entry.entity_id, entry.related_id, entry.action, entry.changes"
        " FROM counter, jsonb_to_recordset(%(entries)s)"
        "      AS entry(entity text, entity_id uuid, related_id uuid, action text, changes jsonb, position int)"
        " RETURNING seq",
        # One JSON document: an array of JSON values would be escaped element by element.
        {"tenant": tenant_id, "count": len(changes), "actor_kind": actor.kind.value, "actor_id": actor.id,
         "entries": Jsonb([{"entity": change.entity, "entity_id": change.entity_id, "related_id": change.related_id,
                            "action": change.action, "changes": change.changes, "position": position}
                           for position, change in enumerate(changes, start=1)])},
    ).fetchall()
    return sorted(seq for (seq,) in rows)


def last_change_about(conn: psycopg.Connection, tenant_id: str, entity_id: str) -> ChangeEntry | None:
    """The latest entry about an entity (as the entity, or as the member of a membership)."""
    rows = conn.execute(
        "(SELECT seq FROM change_log WHERE tenant_id = %(tenant)s AND entity_id = %(entity)s ORDER BY seq DESC LIMIT 1)"
        " UNION ALL (SELECT seq FROM change_log WHERE tenant_id = %(tenant)s AND related_id = %(entity)s"
        " ORDER BY seq DESC LIMIT 1) ORDER BY seq DESC LIMIT 1", {"tenant": tenant_id, "entity": entity_id}).fetchall()
    if not rows:
        return None
    return changes_after(conn, tenant_id, rows[0][0] - 1, limit=1)[0]


def changes_after(conn: psycopg.Connection, tenant_id: str, after: int, *, limit: int = 500) -> list[ChangeEntry]:
    """The entries after sequence number ``after``, in order, at most ``limit``."""
    rows = conn.execute(
        "SELECT seq, occurred_at, actor_kind, actor_id, entity, entity_id, related_id, action, changes"
        " FROM change_log WHERE tenant_id = %s AND seq > %s ORDER BY seq LIMIT %s",
        [tenant_id, after, limit]).fetchall()
    return [ChangeEntry(row[0], row[1], row[2], row[3], row[4], str(row[5]), str(row[6]) if row[6] else None,
                        row[7], row[8]) for row in rows]
