"""The record of sign-in attempts, and the pace of unauthenticated hits.

Contract (tests/sso/test_signin.py): every sign-in attempt, granted or refused, is one row (tenant
when known, user when known, provider, IdP connection, app, outcome, reason, client address);
``over_limit`` counts a client's hits in the current minute and says when they pass
LOGIN_RATE_LIMIT_PER_MINUTE (the counter is one row per client and minute, purged by retention).
"""

from __future__ import annotations

import logging

import psycopg

from shared import config

log = logging.getLogger(__name__)


def record(conn: psycopg.Connection, *, outcome: str, reason: str, client: str, tenant_id: str | None = None,
           user_id: str | None = None, provider: str | None = None, connection_id: str | None = None,
           app_name: str | None = None) -> None:
    conn.execute(
        "INSERT INTO sign_in_attempts (tenant_id, user_id, provider, connection_id, app_name, outcome, reason, client)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [tenant_id, user_id, provider, connection_id, app_name, outcome, reason[:200], client[:100]])
    log.info("sign-in %s: %s (tenant %s, app %s)", outcome, reason, tenant_id or "-", app_name or "-")


def over_limit(conn: psycopg.Connection, client: str) -> bool:
    row = conn.execute(
        "INSERT INTO login_rate (client, window_start) VALUES (%s, date_trunc('minute', now()))"
        " ON CONFLICT (client, window_start) DO UPDATE SET hits = login_rate.hits + 1 RETURNING hits",
        [client[:100]]).fetchone()
    return row[0] > config.login_rate_limit_per_minute()
