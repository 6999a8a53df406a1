"""The hand-over to a tenant app: a one-time code in the redirect, redeemed server to server.

Contract (tests/sso/test_handoff.py):
- ``issue_code`` makes a code of 256 random bits (only its SHA-256 is stored) for one app, holding
  the user's claims, the app's ``app_state`` and the return path; it lives 60 seconds;
- ``redeem`` (``POST /api/auth/handoff/redeem``) needs the app's own client id and secret (HTTP
  Basic) and ``{"code": ...}``; the code is marked redeemed in the statement that reads it, so it
  works once, for the app it was issued to, before it expires. A second redemption, another app's
  code, an expired or unknown code all get the same 400 ``invalid_grant`` and are recorded as
  refused sign-in attempts; wrong credentials are 401;
- an ``admin`` app's redemption also carries ``admin_token`` (15 minutes; shared/admin/keys.py), made
  at redemption so that no credential waits in the code's row.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from shared import db
from shared.sso import attempts
from shared.tenants.models import App, AppKind

CODE_LIFETIME = timedelta(seconds=60)
MAX_BODY_BYTES = 4096


@dataclass(frozen=True)
class RedeemResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def issue_code(conn: psycopg.Connection, app: App, user_id: str, claims: dict[str, Any]) -> str:
    code = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO handoff_codes (code_hash, tenant_id, app_id, user_id, claims, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, now() + %s)",
        [_code_hash(code), app.tenant_id, app.id, user_id, Jsonb(claims), CODE_LIFETIME])
    return code


def _refused(error: str, message: str, status: int = 400) -> RedeemResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="handoff"'
    return RedeemResponse(status, {"error": error, "message": message}, headers)


def redeem(authorization: str | None, body: bytes, client: str) -> RedeemResponse:
    from shared.context.api import basic_credentials
    from shared.tenants.apps import authenticate_app

    credentials = basic_credentials(authorization)
    if credentials is None:
        return _refused("unauthorized", "send the app's client id and secret as HTTP Basic credentials", 401)
    if len(body) > MAX_BODY_BYTES:
        return _refused("invalid_request", "the body is too large")
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        code = None
    if not isinstance(code, str) or not code:
        return _refused("invalid_request", 'send {"code": "<the code from the hand-over>"}')
    with db.transaction() as conn:
        app = authenticate_app(conn, *credentials)  # narrows the transaction to the app's tenant
        if app is None:
            return _refused("unauthorized", "unknown client id or secret", 401)
        row = conn.execute(
            "UPDATE handoff_codes SET redeemed_at = now() WHERE code_hash = %s AND app_id = %s"
            " AND redeemed_at IS NULL AND expires_at > now() RETURNING user_id, claims",
            [_code_hash(code), app.id]).fetchone()
        if row is None:
            known = conn.execute(
                "SELECT app_id = %s, redeemed_at IS NOT NULL, expires_at <= now() FROM handoff_codes"
                " WHERE code_hash = %s", [app.id, _code_hash(code)]).fetchone()
            reason = ("handoff_unknown_code" if known is None else "handoff_wrong_app" if not known[0]
                      else "handoff_replayed" if known[1] else "handoff_expired")
            attempts.record(conn, outcome="refused", reason=reason, client=client, tenant_id=app.tenant_id,
                            app_name=app.name)
            return _refused("invalid_grant", "the code is unknown, expired, already used or for another app")
        claims = dict(row[1])
        if app.kind is AppKind.ADMIN:  # issued now, not kept in the code's row: it is a credential
            from shared.admin.keys import ADMIN_TOKEN_LIFETIME, issue_admin_token
            from shared.tenants.registry import get_tenant_by_id

            tenant = get_tenant_by_id(conn, app.tenant_id)
            claims["admin_token"] = issue_admin_token(conn, tenant, str(row[0]), claims["user"].get("email"))
            claims["admin_token_expires_in"] = int(ADMIN_TOKEN_LIFETIME.total_seconds())
    return RedeemResponse(200, claims, {"Cache-Control": "no-store"})
