"""Retention: one timer purges what has expired, table by table, in bounded batches.

Contract (tests/shared/test_retention.py):
- each surface registers its tables in ``RULES`` below: a table, the timestamp column that ages a
  row, how long a row is kept after it (zero for rows with an expiry time), and optionally a
  condition (only processed webhook bodies, say);
- ``purge_expired`` deletes at most ``batch`` rows per statement, each batch in its own short
  transaction, until a rule has nothing left or the time budget is spent (the next run goes on), so
  a large backlog never becomes one long transaction;
- it works across tenants and returns the number of rows purged per table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from psycopg import sql

from shared import config, db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeRule:
    table: str
    column: str
    keep: Callable[[], timedelta]
    condition: str = "TRUE"


RULES: list[PurgeRule] = [
    PurgeRule("admin_audit", "occurred_at", lambda: timedelta(days=config.admin_audit_retention_days())),
    # Applied Directory Sync events; pending, unmatched and failed ones stay until dealt with. (The
    # registers remember versions, so an event delivered again after its purge is still stale.)
    PurgeRule("workos_events", "applied_at", lambda: timedelta(days=config.dsync_event_retention_days()),
              "status IN ('applied', 'stale', 'refused')"),
    # Sign-in: states and hand-over codes once expired (used or not), attempts after their retention,
    # and the rate counters' past minutes.
    PurgeRule("login_states", "expires_at", lambda: timedelta(0)),
    PurgeRule("handoff_codes", "expires_at", lambda: timedelta(0)),
    PurgeRule("sign_in_attempts", "occurred_at", lambda: timedelta(days=config.sign_in_log_retention_days())),
    PurgeRule("login_rate", "window_start", lambda: timedelta(minutes=2)),
    PurgeRule("admin_tokens", "expires_at", lambda: timedelta(0)),
    # Teams: alerts with their delivery rows (cascade) and slow chat turns, after their retention.
    PurgeRule("teams_alerts", "created_at", lambda: timedelta(days=config.teams_retention_days())),
    PurgeRule("teams_turns", "created_at", lambda: timedelta(days=config.teams_retention_days())),
    # HRMS: finished runs after their retention (employee context is kept: departed ones are marked, not deleted).
    PurgeRule("hrms_runs", "queued_at", lambda: timedelta(days=config.hrms_run_retention_days()),
              "status IN ('succeeded', 'failed')"),
]


def _purge_batch(rule: PurgeRule, batch: int) -> int:
    query = sql.SQL(
        "WITH purged AS (DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table}"
        " WHERE {column} < now() - %s AND ({condition}) LIMIT %s)) RETURNING 1) SELECT count(*) FROM purged"
    ).format(table=sql.Identifier(rule.table), column=sql.Identifier(rule.column), condition=sql.SQL(rule.condition))
    with db.transaction(all_tenants=True) as conn:
        return conn.execute(query, [rule.keep(), batch]).fetchone()[0]


def purge_expired(*, batch: int = 5000, budget_seconds: float = 240.0,
                  rules: list[PurgeRule] | None = None) -> dict[str, int]:
    """Delete expired rows of every rule; returns rows deleted per table."""
    deadline = time.monotonic() + budget_seconds
    purged: dict[str, int] = {}
    for rule in RULES if rules is None else rules:
        total = 0
        while time.monotonic() < deadline:
            deleted = _purge_batch(rule, batch)
            total += deleted
            if deleted < batch:
                break
        purged[rule.table] = purged.get(rule.table, 0) + total
        log.info("retention: purged %d row(s) from %s", total, rule.table)
    return purged
