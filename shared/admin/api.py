"""The admin API, free of any transport: a request is an action name, the caller's Authorization
header and address, and parameters; the answer is a status and a JSON body.

Contract (tests/admin/test_api.py):
- every call authenticates with an admin key (``Authorization: Bearer eca_...``) before anything
  else; a missing, unknown or revoked key gets 401 and is audited;
- a tenant-scoped key sees its own tenant only: another tenant is a 404, exactly like one that
  does not exist, so keys cannot probe for tenants;
- each call is audited (who, what, when, from where, outcome) in the transaction that serves it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from shared import db
from shared.admin import keys
from shared.admin.audit import AuditEntry, record
from shared.admin.keys import AdminPrincipal
from shared.tenants import apps, registry
from shared.tenants.models import TenantNotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdminResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    # Work that must follow the commit (queueing what the transaction recorded); a failure there is a 503
    # whose message says the request can be sent again.
    after_commit: Callable[[], None] | None = None


class AdminRefusal(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def client_address(forwarded_for: str | None) -> str:
    """The caller's address from X-Forwarded-For (set by Azure's front ends), without a port."""
    first = (forwarded_for or "").split(",")[0].strip()
    if not first:
        return "unknown"
    if first.startswith("["):  # [ipv6]:port
        return first[1:].split("]")[0]
    return first.rsplit(":", 1)[0] if first.count(":") == 1 else first


# A handler answers a JSON body (200), or a whole AdminResponse (a redirect, say).
Handler = Callable[[psycopg.Connection, AdminPrincipal, dict[str, str]], "dict[str, Any] | AdminResponse"]


def handle(action: str, handler: Handler, *, authorization: str | None, source: str,
           params: dict[str, str] | None = None) -> AdminResponse:
    """Authenticate, run the handler, audit; every failure becomes a status and a clear body."""
    params = params or {}
    target = "/".join(params[name] for name in ("slug", "user_id", "alert_id") if params.get(name)) or None
    try:
        with db.transaction() as conn:
            principal = keys.authenticate(conn, bearer_token(authorization))
            if principal is None:
                raise AdminRefusal(401, "unauthorized", "send a valid admin key as Authorization: Bearer <key>")
            try:
                body = handler(conn, principal, params)
            except AdminRefusal as refusal:
                record(conn, AuditEntry(principal.label, action, source, f"refused {refusal.status}",
                                        scope=principal.scope, tenant_id=principal.tenant_id, target=target))
                return AdminResponse(refusal.status, {"error": refusal.error, "message": str(refusal)})
            record(conn, AuditEntry(principal.label, action, source, "ok", scope=principal.scope,
                                    tenant_id=principal.tenant_id, target=target))
            response = body if isinstance(body, AdminResponse) else AdminResponse(200, body)
    except AdminRefusal as refusal:
        with db.transaction() as conn:
            record(conn, AuditEntry("anonymous", action, source, f"refused {refusal.status}", target=target))
        return AdminResponse(refusal.status, {"error": refusal.error, "message": str(refusal)},
                             {"WWW-Authenticate": 'Bearer realm="admin"'})
    if response.after_commit is not None:
        try:
            response.after_commit()
        except Exception as error:
            log.error("admin: %s was recorded but the work after it failed: %s", action, type(error).__name__)
            return AdminResponse(503, {"error": "unavailable", "message": "the request was recorded but could not be "
                                       "queued; send the same request again"})
    return response


def _visible_tenant(conn: psycopg.Connection, principal: AdminPrincipal, slug: str) -> registry.Tenant:
    try:
        tenant = registry.get_tenant(conn, slug)
    except TenantNotFound:
        tenant = None
    if tenant is None or not principal.covers(tenant):
        raise AdminRefusal(404, "not_found", f"no tenant {slug!r}")
    return tenant


def list_tenants(conn: psycopg.Connection, principal: AdminPrincipal, params: dict[str, str]) -> dict[str, Any]:
    slugs = None if principal.is_operator else [principal.tenant_slug]
    return {"tenants": [tenant.as_dict() for tenant in registry.list_tenants(conn, slugs=slugs)]}


def show_tenant(conn: psycopg.Connection, principal: AdminPrincipal, params: dict[str, str]) -> dict[str, Any]:
    tenant = _visible_tenant(conn, principal, params["slug"])
    return {**tenant.as_dict(), "apps": [app.as_dict() for app in apps.list_apps(conn, tenant)]}


MAX_USERS_PAGE = 200


def _choice(params: dict[str, str], name: str, kind: type) -> Any:
    value = params.get(name) or None
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise AdminRefusal(400, "invalid_parameter", f"{name} must be one of {choices}") from None


def _limit(params: dict[str, str]) -> int:
    raw = params.get("limit") or "50"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_USERS_PAGE:
        raise AdminRefusal(400, "invalid_parameter", f"limit must be a whole number from 1 to {MAX_USERS_PAGE}")
    return int(raw)


def _uuid_parameter(params: dict[str, str], name: str) -> str | None:
    import uuid

    value = params.get(name) or None
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise AdminRefusal(400, "invalid_parameter", f"{name} must be a user id") from None


def list_users(conn: psycopg.Connection, principal: AdminPrincipal, params: dict[str, str]) -> dict[str, Any]:
    """Users of a tenant: search (q) by email or name, filter by status and channel, paged by id."""
    from shared.identity import store
    from shared.identity.models import Channel, UserStatus

    tenant = _visible_tenant(conn, principal, params["slug"])
    limit = _limit(params)
    users = store.search_users(
        conn, tenant, text=params.get("q") or None, status=_choice(params, "status", UserStatus),
        channel=_choice(params, "channel", Channel), after_id=_uuid_parameter(params, "after"), limit=limit)
    return {"users": [user.as_dict() for user in users],
            "next_after": users[-1].id if len(users) == limit else None}


def show_user(conn: psycopg.Connection, principal: AdminPrincipal, params: dict[str, str]) -> dict[str, Any]:
    """One user with its identities, groups, roles, status and last change."""
    from shared.identity import store
    from shared.identity.changelog import last_change_about
    from shared.identity.models import UserNotFound

    tenant = _visible_tenant(conn, principal, params["slug"])
    user_id = _uuid_parameter(params, "user_id")
    try:
        user = store.get_user(conn, tenant, user_id or "")
    except UserNotFound:
        raise AdminRefusal(404, "not_found", f"no user {params['user_id']!r} in tenant {tenant.slug!r}") from None
    last = last_change_about(conn, tenant.id, user.id)
    return {
        **user.as_dict(),
        "identities": [{**row, "created_at": row["created_at"].isoformat(),
                        "last_seen_at": row["last_seen_at"].isoformat()}
                       for row in store.user_identities(conn, tenant, user.id)],
        "groups": store.user_group_names(conn, tenant, user.id),
        "last_change": last.as_dict() if last else None,
    }


def workos_portal(conn: psycopg.Connection, principal: AdminPrincipal, params: dict[str, str]) -> AdminResponse:
    """A redirect to a fresh WorkOS Admin Portal link (valid 5 minutes), so the tenant's IT admin
    sets up SSO, Directory Sync or domain verification themselves."""
    from shared import workos_api

    tenant = _visible_tenant(conn, principal, params["slug"])
    intent = params.get("intent") or ""
    if intent not in workos_api.PORTAL_INTENTS:
        raise AdminRefusal(400, "invalid_parameter", f"intent must be one of {', '.join(workos_api.PORTAL_INTENTS)}")
    if not tenant.workos_organization_id:
        raise AdminRefusal(409, "no_workos_organization", f"tenant {tenant.slug!r} has no WorkOS organization: set "
                           "one with `tenant update --workos-org` or create it with `tenant add --create-workos-org`")
    try:
        link = workos_api.portal_link(tenant.workos_organization_id, intent)
    except workos_api.WorkOSUnavailable as error:
        raise AdminRefusal(502, "workos_unavailable", str(error)) from None
    return AdminResponse(302, {"link": link, "intent": intent, "expires_in_seconds": 300},
                         {"Location": link, "Cache-Control": "no-store"})


def _json_body(params: dict[str, str]) -> Any:
    import json

    try:
        return json.loads(params.get("body") or "")
    except ValueError:
        raise AdminRefusal(400, "invalid_json", "the body must be a JSON object") from None


def send_alert(conn: psycopg.Connection, principal: AdminPrincipal, params: dict[str, str]) -> AdminResponse:
    """Accept a Teams alert and queue its batches once the transaction has committed (202)."""
    from shared.teams import alerts

    try:
        request = alerts.parse_alert(_json_body(params))
    except alerts.InvalidAlert as error:
        raise AdminRefusal(400, "invalid_alert", str(error)) from None
    tenant = _visible_tenant(conn, principal, request.tenant)
    try:
        accepted = alerts.accept_alert(conn, tenant, request, created_by=principal.label)
    except alerts.AlertConflict as error:
        raise AdminRefusal(409, "alert_conflict", str(error)) from None
    return AdminResponse(202, accepted.as_dict(), after_commit=lambda: alerts.enqueue_batches(
        accepted.tenant_id, accepted.alert_id, accepted.pending_batches))


def show_alert(conn: psycopg.Connection, principal: AdminPrincipal, params: dict[str, str]) -> dict[str, Any]:
    """Delivery status of an alert: counts by status, unknown recipients and those not reached."""
    from shared.teams import alerts

    tenant = _visible_tenant(conn, principal, params["slug"])
    status = alerts.alert_status(conn, tenant, params.get("alert_id") or "")
    if status is None:
        raise AdminRefusal(404, "not_found", f"no alert {params.get('alert_id')!r} in tenant {tenant.slug!r}")
    return status


def hrms_sync(conn: psycopg.Connection, principal: AdminPrincipal, params: dict[str, str]) -> AdminResponse:
    """Start a sync of the tenant's HRMS now ({"mode": "full"|"incremental"}); 202 with the run."""
    from shared.hrms import engine
    from shared.tenants.models import InvalidValue

    tenant = _visible_tenant(conn, principal, params["slug"])
    body = _json_body(params) if params.get("body") else {}
    mode = body.get("mode", "incremental") if isinstance(body, dict) else None
    if mode not in ("full", "incremental"):
        raise AdminRefusal(400, "invalid_parameter", 'mode must be "full" or "incremental"')
    try:
        run = engine.request(conn, tenant, mode, requested_by=principal.label)
    except InvalidValue as error:
        raise AdminRefusal(409, "no_hrms", str(error)) from None
    return AdminResponse(202 if run.created else 409, {**run.as_dict(), "created": run.created},
                         after_commit=lambda: engine.queue(run))


def hrms_runs(conn: psycopg.Connection, principal: AdminPrincipal, params: dict[str, str]) -> dict[str, Any]:
    from shared.hrms.runs import list_runs

    tenant = _visible_tenant(conn, principal, params["slug"])
    db.use_tenant(conn, tenant.id)
    return {"tenant": tenant.slug, "runs": [run.as_dict() for run in list_runs(conn, tenant.id, limit=_limit(params))]}


def hrms_mapping(conn: psycopg.Connection, principal: AdminPrincipal, params: dict[str, str]) -> dict[str, Any]:
    """Replace the tenant's field mapping ({"field_mapping": {context_key: source_attribute}}), checked
    against the attributes the HRMS lets the credential read."""
    from shared.hrms.connectors.base import ConnectorError
    from shared.hrms.mapping import save_mapping
    from shared.http import OutboundError
    from shared.secrets import SecretError
    from shared.tenants.models import InvalidValue

    tenant = _visible_tenant(conn, principal, params["slug"])
    body = _json_body(params)
    if not isinstance(body, dict) or "field_mapping" not in body:
        raise AdminRefusal(400, "invalid_mapping", 'the body is {"field_mapping": {"context_key": "source attribute"}}')
    try:
        saved = save_mapping(conn, tenant, body["field_mapping"])
    except InvalidValue as error:
        raise AdminRefusal(400, "invalid_mapping", str(error)) from None
    except (ConnectorError, OutboundError, SecretError) as error:
        raise AdminRefusal(502, "hrms_unavailable", f"the HRMS could not be asked what it lets us read: {error}") \
            from None
    return {"tenant": tenant.slug, "field_mapping": saved.hrms.field_mapping if saved.hrms else {}}


def hrms_writeback(conn: psycopg.Connection, principal: AdminPrincipal, params: dict[str, str]) -> dict[str, Any]:
    """Set where results go in the tenant's HRMS and turn write-back on or off ({"enabled", "completion",
    "assessment"}), each target checked against the HRMS first."""
    from shared.hrms import writeback
    from shared.hrms.connectors.base import ConnectorError
    from shared.http import OutboundError
    from shared.secrets import SecretError
    from shared.tenants.models import InvalidValue

    tenant = _visible_tenant(conn, principal, params["slug"])
    try:
        saved = writeback.configure(conn, tenant, _json_body(params))
    except InvalidValue as error:
        raise AdminRefusal(400, "invalid_writeback", str(error)) from None
    except (ConnectorError, OutboundError, SecretError) as error:
        raise AdminRefusal(502, "hrms_unavailable", f"the HRMS could not be asked: {error}") from None
    return {"tenant": tenant.slug, "writeback": saved.hrms.writeback if saved.hrms else {}}
