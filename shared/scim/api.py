"""A SCIM request of one tenant, from HTTP parts to a SCIM response, without any web framework.

Contract (tests/scim/test_api.py, tests/scim/test_idp_quirks.py, tests/e2e/test_scim_*.py):
- every request needs the tenant's Bearer token (ServiceProviderConfig too: answering it without
  one would tell who is a tenant); a missing, wrong, revoked or another tenant's token — or an
  unknown tenant — is the same 401 SCIM error with ``WWW-Authenticate``; a suspended tenant is 403;
- the presented token is hashed and compared in constant time with each live token of the tenant;
- when SCIM is not the tenant's provisioning channel, writes get 403 saying which channel is;
- a body larger than MAX_PAYLOAD_BYTES is a 413; every failure is a SCIM Error, never a bare 500;
- the request runs in one transaction (a Bulk request too, each operation in a savepoint);
- what Entra ID and Okta send is normalised first (``normalise_body``): unknown schema URNs are
  dropped, every manager shape becomes ``{"value": id}``;
- a PATCH of a group that only touches ``members`` is applied in SQL without loading the member
  list; it answers 200 with the group up to GROUP_PATCH_FULL_RESPONSE_MAX_MEMBERS members, and 204
  (with the ETag) above, as RFC 7644 allows and Entra ID expects of large groups.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from scim2_models import (
    ForbiddenException,
    InvalidValueException,
    PayloadTooLargeException,
    PreconditionFailedException,
    SCIMException,
    UnauthorizedException,
)
from scim2_server.handler import ScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse

from shared import config, db
from shared.identity.models import Actor, ActorKind
from shared.scim.provider import ENTERPRISE_SCHEMA, KNOWN_SCHEMAS, MAX_PAYLOAD_BYTES, scim_service
from shared.scim.storage import PostgresScimStorage
from shared.scim.tokens import tenant_and_token
from shared.tenants.models import ProvisioningChannel, Tenant

log = logging.getLogger(__name__)

GROUP_PATCH_FULL_RESPONSE_MAX_MEMBERS = 1000
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MANAGER_PATH = f"{ENTERPRISE_SCHEMA}:manager".lower()
_GROUP_PATH = re.compile(r"/Groups/([^/]+)/?", re.IGNORECASE)
_MEMBER_SELECTION = re.compile(r'members\[\s*value\s+eq\s+"([^"]*)"\s*\]', re.IGNORECASE)


@dataclass(frozen=True)
class ScimCall:
    tenant_slug: str
    method: str
    path: str
    base_url: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


# --- what IdPs send ------------------------------------------------------------------------------------


def _manager(value: Any) -> Any:
    """Every shape of a manager Entra ID sends, as the complex value the schema declares."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, str):
        return {"value": value}
    if isinstance(value, dict):
        return {key: item for key, item in value.items() if key != "$ref" or item is not None}
    return value


def _normalise_resource(document: dict[str, Any]) -> dict[str, Any]:
    if isinstance(document.get("schemas"), list):
        document["schemas"] = [urn for urn in document["schemas"] if not isinstance(urn, str) or urn in KNOWN_SCHEMAS
                               or urn.startswith("urn:ietf:params:scim:api:messages:")]
    extension = document.get(ENTERPRISE_SCHEMA)
    if isinstance(extension, dict) and "manager" in extension:
        extension["manager"] = _manager(extension["manager"])
    return document


def _normalise_operation(operation: dict[str, Any]) -> dict[str, Any]:
    path = operation.get("path")
    value = operation.get("value")
    if isinstance(path, str) and path.lower() == _MANAGER_PATH:
        operation["value"] = _manager(value)
    elif path is None and isinstance(value, dict):
        for key in list(value):
            if key.lower() == _MANAGER_PATH:
                value[key] = _manager(value[key])
        _normalise_resource(value)
    return operation


def normalise_body(body: bytes) -> bytes:
    """The request body with what real IdPs send made acceptable; not JSON: left for the library to refuse."""
    if not body:
        return body
    try:
        document = json.loads(body)
    except ValueError:
        return body
    if not isinstance(document, dict):
        return body
    _normalise_resource(document)
    for operation in document.get("Operations") or []:
        if isinstance(operation, dict):
            _normalise_operation(operation)
            data = operation.get("data")
            if isinstance(data, dict):
                _normalise_resource(data)
                for inner in data.get("Operations") or []:
                    if isinstance(inner, dict):
                        _normalise_operation(inner)
    return json.dumps(document).encode("utf-8")


# --- authentication ------------------------------------------------------------------------------------


def _authenticate(conn: Any, call: ScimCall) -> tuple[Tenant, str]:
    """The tenant and the id of the token presented for it; raises the SCIM error to answer.

    An unknown tenant and a wrong token are the same 401, so tokens cannot probe for tenants."""
    scheme, _, presented = (_header(call.headers, "Authorization") or "").partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise UnauthorizedException(detail="send the tenant's SCIM token as Authorization: Bearer <token>")
    found = tenant_and_token(conn, call.tenant_slug, presented)
    if found is None:
        raise UnauthorizedException(detail="the token is not valid here")
    tenant, token_id = found
    db.note_tenant_scope(conn, tenant.id)  # the transaction was scoped by slug: this is that tenant
    if not tenant.is_active:
        raise ForbiddenException(detail=f"tenant {tenant.slug} is suspended")
    return tenant, token_id


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name.lower()), None)


# --- the large-group path --------------------------------------------------------------------------------


def _members_only_patch(call: ScimCall) -> tuple[str, list[dict[str, Any]]] | None:
    """The group id and operations of a PATCH that only touches members, or None."""
    if call.method.upper() != "PATCH":
        return None
    match = _GROUP_PATH.fullmatch(call.path)
    if match is None:
        return None
    try:
        document = json.loads(call.body)
    except ValueError:
        return None
    operations = document.get("Operations") if isinstance(document, dict) else None
    if not isinstance(operations, list) or not operations:
        return None
    for operation in operations:
        if not isinstance(operation, dict) or str(operation.get("op", "")).lower() not in ("add", "remove", "replace"):
            return None
        path = operation.get("path")
        if not isinstance(path, str) or not (path.lower() == "members" or _MEMBER_SELECTION.fullmatch(path.strip())):
            return None
    return match[1], operations


def _member_values(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidValueException(detail="members must be a list of {\"value\": id}")
    return value


def _patch_members(storage: PostgresScimStorage, call: ScimCall, group_id: str,
                   operations: list[dict[str, Any]]) -> ScimResponse:
    service = scim_service(config.scim_cursor_secret())
    group_type = next(rt for rt in service.provider.resource_types if rt.id == "Group")
    row = storage._stored_row(storage._table(group_type), group_id, lock=True)
    if_match = _header(call.headers, "If-Match")
    if if_match and if_match.strip() != "*" and if_match.strip() != f'W/"{row["version"]}"':
        raise PreconditionFailedException
    group_id = str(row["id"])
    changed = False
    for operation in operations:
        op = str(operation["op"]).lower()
        selected = _MEMBER_SELECTION.fullmatch(operation["path"].strip())
        values = storage.member_ids(_member_values(operation.get("value")))
        if op == "add":
            changed |= bool(storage.add_members(group_id, values))
        elif op == "remove":
            targets = [selected[1]] if selected else values
            if not selected and operation.get("value") is None:
                targets = storage.conn.execute(
                    "SELECT user_id::text FROM group_memberships WHERE group_id = %s", [group_id]).fetchall()
                targets = [target for (target,) in targets]
            changed |= bool(storage.remove_members(group_id, [t for t in targets if t]))
        else:  # replace the whole list
            current = {user_id for (user_id,) in storage.conn.execute(
                "SELECT user_id::text FROM group_memberships WHERE group_id = %s", [group_id])}
            wanted = set(values)
            changed |= bool(storage.add_members(group_id, sorted(wanted - current)))
            changed |= bool(storage.remove_members(group_id, sorted(current - wanted)))
    if changed:
        storage.touch_groups([group_id])
    # Counted only up to the threshold: whether the group is large, not how large.
    size = storage.conn.execute(
        "SELECT count(*) FROM (SELECT FROM group_memberships WHERE group_id = %s LIMIT %s) AS members",
        [group_id, GROUP_PATCH_FULL_RESPONSE_MAX_MEMBERS + 1]).fetchone()[0]
    if size > GROUP_PATCH_FULL_RESPONSE_MAX_MEMBERS:
        version = storage.conn.execute("SELECT version FROM scim_groups WHERE group_id = %s", [group_id]).fetchone()[0]
        return ScimResponse(HTTPStatus.NO_CONTENT, None, {"ETag": f'W/"{version}"'})
    parameters = service.read_response_parameters(group_type, call.query)
    resource = storage.get(group_type, group_id, response_parameters=parameters)
    return service.patch_response(call.base_url, resource, parameters)


def _is_bulk(call: ScimCall) -> bool:
    return call.path.rstrip("/").lower() == "/bulk"


# --- the request ---------------------------------------------------------------------------------------


def handle_scim(call: ScimCall) -> ScimResponse:
    """Serve one SCIM request of one tenant."""
    service = scim_service(config.scim_cursor_secret())
    try:
        if len(call.body) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeException(detail=f"request bodies are limited to {MAX_PAYLOAD_BYTES} bytes")
        with db.transaction(tenant_slug=call.tenant_slug) as conn:
            tenant, token_id = _authenticate(conn, call)
            if call.method.upper() in WRITE_METHODS and tenant.provisioning_channel is not ProvisioningChannel.SCIM:
                raise ForbiddenException(
                    detail=f"SCIM does not provision tenant {tenant.slug}: its provisioning channel is "
                           f"{tenant.provisioning_channel.value}")
            storage = PostgresScimStorage(conn, tenant, Actor(ActorKind.SCIM_TOKEN, token_id),
                                          savepoints=_is_bulk(call), lock_reads=call.method.upper() in WRITE_METHODS)
            members_patch = _members_only_patch(call)
            if members_patch is not None:
                with service.provider:
                    return _finalise(_patch_members(storage, call, *members_patch))
            request = ScimRequest(
                method=call.method, base_url=call.base_url, path=call.path, query=call.query,
                headers=call.headers, body=normalise_body(call.body), subject=token_id)
            return _finalise(ScimHandler(service, storage).handle(request))
    except SCIMException as exception:
        log.info("scim %s %s %s: %s %s", call.tenant_slug, call.method, call.path, exception.status, exception)
        return _finalise(service.error_response(exception))
    except Exception as exception:  # a bug: log it whole, answer a SCIM 500 without details
        log.exception("scim %s %s %s failed", call.tenant_slug, call.method, call.path)
        return _finalise(service.error_response(exception))


def _finalise(response: ScimResponse) -> ScimResponse:
    response.headers.setdefault("Cache-Control", "no-store")
    return response
