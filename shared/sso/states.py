"""Login states: one per sign-in started, random, single use, ten minutes, bound to the browser.

Contract (tests/sso/test_states.py):
- ``create_state`` keeps only the SHA-256 of the state value, with the tenant, the requested app,
  return path and app state, and the provider's flow (PKCE verifier, MSAL's flow);
- ``consume_state`` marks a state used in the statement that reads it, so it can be consumed once:
  unknown, expired and used states raise ``StateRejected`` with the reason; the browser's cookie
  must hold the same value (compared in constant time), so a state lifted from one browser's
  round trip cannot complete in another.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

STATE_LIFETIME = timedelta(minutes=10)


class StateRejected(Exception):
    def __init__(self, reason: str, tenant_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tenant_id = tenant_id  # when the state is known: whose sign-in it was


@dataclass(frozen=True)
class LoginState:
    tenant_id: str
    provider: str
    app_name: str | None
    return_to: str | None
    app_state: str | None
    login_hint: str | None
    flow: dict[str, Any]


def state_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def create_state(conn: psycopg.Connection, value: str, tenant_id: str, provider: str, *, app_name: str | None,
                 return_to: str | None, app_state: str | None, login_hint: str | None, flow: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO login_states (state_hash, tenant_id, provider, app_name, return_to, app_state, login_hint, flow,"
        " expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now() + %s)",
        [state_hash(value), tenant_id, provider, app_name, return_to, app_state, login_hint, Jsonb(flow),
         STATE_LIFETIME])


def consume_state(conn: psycopg.Connection, value: str | None, cookie: str | None) -> LoginState:
    """The state, now used; the caller's transaction works across tenants (the state names it)."""
    if not value:
        raise StateRejected("missing_state")
    if not cookie or not hmac.compare_digest(cookie.encode("utf-8"), value.encode("utf-8")):
        # Checked first: a state seen elsewhere (a log, a referrer) cannot even be used up.
        owner = conn.execute("SELECT tenant_id FROM login_states WHERE state_hash = %s", [state_hash(value)]).fetchone()
        raise StateRejected("cookie_mismatch", str(owner[0]) if owner else None)
    row = conn.execute(
        "UPDATE login_states SET used_at = now() WHERE state_hash = %s AND used_at IS NULL AND expires_at > now()"
        " RETURNING tenant_id, provider, app_name, return_to, app_state, login_hint, flow",
        [state_hash(value)]).fetchone()
    if row is None:
        known = conn.execute("SELECT used_at IS NOT NULL, expires_at <= now(), tenant_id FROM login_states"
                             " WHERE state_hash = %s", [state_hash(value)]).fetchone()
        if known is None:
            raise StateRejected("unknown_state")
        raise StateRejected("used_state" if known[0] else "expired_state", str(known[2]))
    return LoginState(str(row[0]), row[1], row[2], row[3], row[4], row[5], row[6] or {})
