"""The context API for tenant apps, free of any transport.

Contract (tests/context/test_api.py):
- an app authenticates with its client id and a live secret, as HTTP Basic credentials
  (``Authorization: Basic base64(client_id:secret)``); they open only their own tenant: a wrong
  secret, another tenant's app or an unknown tenant get the same 401;
- ``changes`` returns the tenant's change log after ``after`` (default 0), in order, at most ``limit``
  (1-1000, default 500) entries, with the number to ask ``after`` next; a malformed parameter is a
  400 naming it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from shared import db
from shared.identity.changelog import changes_after
from shared.tenants.apps import authenticate_app

MAX_CHANGES_PAGE = 1000
DEFAULT_CHANGES_PAGE = 500


@dataclass(frozen=True)
class ContextResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _unauthorized() -> ContextResponse:
    return ContextResponse(401, {"error": "unauthorized",
                                 "message": "send the app's client id and secret as HTTP Basic credentials"},
                           {"WWW-Authenticate": 'Basic realm="context"'})


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, separator, secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (client_id, secret) if separator and client_id and secret else None


def _whole_number(params: dict[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ValueError(f"{name} must be a whole number {bounds}")
    return int(raw)


def changes(tenant_slug: str, authorization: str | None, params: dict[str, str]) -> ContextResponse:
    """The tenant's change log after ``after``, for the tenant's own apps."""
    credentials = basic_credentials(authorization)
    if credentials is None:
        return _unauthorized()
    try:
        after = _whole_number(params, "after", 0, 0, None)
        limit = _whole_number(params, "limit", DEFAULT_CHANGES_PAGE, 1, MAX_CHANGES_PAGE)
    except ValueError as error:
        return ContextResponse(400, {"error": "invalid_parameter", "message": str(error)})
    with db.transaction() as conn:
        app = authenticate_app(conn, *credentials)
        tenant_slug_of_app = None
        if app is not None:
            row = conn.execute("SELECT slug FROM tenants WHERE id = %s", [app.tenant_id]).fetchone()
            tenant_slug_of_app = row[0] if row else None
        if app is None or tenant_slug_of_app != tenant_slug:
            return _unauthorized()
        entries = changes_after(conn, app.tenant_id, after, limit=limit)
    next_after = entries[-1].seq if entries else after
    return ContextResponse(200, {
        "tenant": tenant_slug, "after": after, "changes": [entry.as_dict() for entry in entries],
        "next_after": next_after, "has_more": len(entries) == limit,
    })
