"""The admin audit: who did what, when, from where, and how it ended — for every admin action.

Contract (tests/admin/test_audit.py):
- each admin API call and each CLI command that changes something records one row, in the same
  transaction as the change when there is one (a refused call is recorded too, in its own);
- rows never carry a secret: issued keys and tokens appear by id and hint only;
- rows older than ADMIN_AUDIT_RETENTION_DAYS are purged by the retention timer.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    action: str
    source: str
    outcome: str
    scope: str | None = None
    tenant_id: str | None = None
    target: str | None = None
    details: dict[str, Any] | None = None


def record(conn: psycopg.Connection, entry: AuditEntry) -> None:
    conn.execute(
        "INSERT INTO admin_audit (actor, scope, tenant_id, action, target, source, outcome, details)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [entry.actor, entry.scope, entry.tenant_id, entry.action, entry.target, entry.source, entry.outcome,
         Jsonb(entry.details or {})],
    )


def cli_actor() -> str:
    """The operator at a terminal: the OS user and the machine."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def recent(conn: psycopg.Connection, *, tenant_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT occurred_at, actor, scope, tenant_id, action, target, source, outcome, details FROM admin_audit"
        " WHERE (%s::uuid IS NULL OR tenant_id = %s::uuid) ORDER BY id DESC LIMIT %s",
        [tenant_id, tenant_id, limit]).fetchall()
    names = ("occurred_at", "actor", "scope", "tenant_id", "action", "target", "source", "outcome", "details")
    return [dict(zip(names, row, strict=True)) for row in rows]
