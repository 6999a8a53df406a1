"""The context API for tenant apps, free of any transport.

Contract (tests/context/test_api.py):
- an app authenticates with its client id and a live secret, as HTTP Basic credentials
  (``Authorization: Basic base64(client_id:secret)``); they open only their own tenant: a wrong
  secret, another tenant's app or an unknown tenant get the same 401;
- ``user_context`` returns a user of the tenant, by id or email (404 otherwise), with the HRMS record
  kept for them (profile, manager, mapped context keys, when it was seen and changed; null before the
  first sync that matched them) and the time of the tenant's last successful sync;
- ``report_result`` records a result to write back to the HRMS (shared.hrms.writeback): 202 with its status
  (queued once, then queued after commit), 400 naming every bad field, 404 for an unknown user, 409 when
  write-back is off or the same result id came with other content; ``result`` reports what became of it;
- ``changes`` returns the tenant's change log after ``after`` (default 0), in order, at most ``limit``
  (1-1000, default 500) entries, with the number to ask ``after`` next; a malformed parameter is a
  400 naming it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def _as_app(tenant_slug: str, authorization: str | None) -> Iterator[tuple[Any, Any] | None]:
    """A transaction and the calling app when its credentials are live and it belongs to this tenant; None
    otherwise (the same answer for every failure, so credentials cannot probe for tenants)."""
    credentials = basic_credentials(authorization)
    if credentials is None:
        yield None
        return
    with db.transaction() as conn:
        app = authenticate_app(conn, *credentials)
        row = conn.execute("SELECT slug FROM tenants WHERE id = %s", [app.tenant_id]).fetchone() if app else None
        yield (conn, app) if row and row[0] == tenant_slug else None


def changes(tenant_slug: str, authorization: str | None, params: dict[str, str]) -> ContextResponse:
    """The tenant's change log after ``after``, for the tenant's own apps."""
    with _as_app(tenant_slug, authorization) as caller:
        if caller is None:
            return _unauthorized()
        conn, app = caller
        try:
            after = _whole_number(params, "after", 0, 0, None)
            limit = _whole_number(params, "limit", DEFAULT_CHANGES_PAGE, 1, MAX_CHANGES_PAGE)
        except ValueError as error:
            return ContextResponse(400, {"error": "invalid_parameter", "message": str(error)})
        entries = changes_after(conn, app.tenant_id, after, limit=limit)
    next_after = entries[-1].seq if entries else after
    return ContextResponse(200, {
        "tenant": tenant_slug, "after": after, "changes": [entry.as_dict() for entry in entries],
        "next_after": next_after, "has_more": len(entries) == limit,
    })


def user_context(tenant_slug: str, authorization: str | None, user: str) -> ContextResponse:
    """A user (by id or email) with what the HRMS says about them, for personalization."""
    from shared.hrms.store import context_of
    from shared.identity.models import UserNotFound
    from shared.identity.store import find_user
    from shared.tenants.registry import get_tenant_by_id

    with _as_app(tenant_slug, authorization) as caller:
        if caller is None:
            return _unauthorized()
        conn, app = caller
        tenant = get_tenant_by_id(conn, app.tenant_id)
        try:
            found = find_user(conn, tenant, user)
        except (UserNotFound, ValueError):
            return ContextResponse(404, {"error": "not_found",
                                         "message": f"no user {user!r} in tenant {tenant_slug!r}"})
        hrms = context_of(conn, tenant.id, found.id)
        last_sync = conn.execute("SELECT max(finished_at) FROM hrms_runs WHERE tenant_id = %s"
                                 " AND status = 'succeeded'", [tenant.id]).fetchone()[0]
    return ContextResponse(200, {
        "tenant": tenant_slug,
        "user": {"id": found.id, "email": found.primary_email, "given_name": found.given_name,
                 "family_name": found.family_name, "display_name": found.display_name,
                 "status": found.status.value, "roles": list(found.role_slugs)},
        "hrms": hrms,
        "last_sync_at": last_sync.isoformat() if last_sync else None,
    })


def report_result(tenant_slug: str, authorization: str | None, body: bytes) -> tuple[ContextResponse, Any]:
    """Record a completion or assessment result to write back to the HRMS; 202 with its status. The second
    value is the work to do once the response is decided (queueing), or None."""
    import json

    from shared.hrms import writeback
    from shared.identity.models import UserNotFound
    from shared.tenants.registry import get_tenant_by_id

    with _as_app(tenant_slug, authorization) as caller:
        if caller is None:
            return _unauthorized(), None
        conn, app = caller
        try:
            report = writeback.parse_result(json.loads(body or b"null"))
        except ValueError as error:  # malformed JSON, or InvalidResult naming every bad field
            problems = getattr(error, "problems", {"body": "must be a JSON object"})
            return ContextResponse(400, {"error": "invalid_result", "message": "; ".join(
                f"{name}: {problem}" for name, problem in problems.items()), "fields": problems}), None
        tenant = get_tenant_by_id(conn, app.tenant_id)
        try:
            status, queue = writeback.accept_result(conn, tenant, app.id, report)
        except writeback.WriteBackOff as error:
            return ContextResponse(409, {"error": "writeback_off", "message": str(error)}), None
        except writeback.ResultConflict as error:
            return ContextResponse(409, {"error": "result_conflict", "message": str(error)}), None
        except (UserNotFound, ValueError):
            return ContextResponse(404, {"error": "unknown_user", "message":
                                         f"no user {report.user!r} in tenant {tenant_slug!r}"}), None
    work = (lambda: writeback.enqueue(tenant.id, report.result.result_id)) if queue else None
    return ContextResponse(202, status), work


def result(tenant_slug: str, authorization: str | None, result_id: str) -> ContextResponse:
    """What became of a reported result: queued, written (with the HRMS's record id) or failed with the reason."""
    from shared.hrms.writeback import result_status

    with _as_app(tenant_slug, authorization) as caller:
        if caller is None:
            return _unauthorized()
        conn, app = caller
        found = result_status(conn, app.tenant_id, result_id)
    if found is None:
        return ContextResponse(404, {"error": "not_found", "message": f"no result {result_id!r}"})
    return ContextResponse(200, found)
