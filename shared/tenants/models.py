"""Tenants and their apps as the rest of the code sees them, and the rules their fields obey.

Validation raises ``InvalidValue`` naming the field; every check runs before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

# Lowercase letters, digits and single dashes: a subset of what Key Vault secret names allow, so a
# slug can be part of one (tenant-<slug>-personio).
SLUG_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
SLUG_MAX_LENGTH = 63
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")
_GUID = re.compile(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}")
_KEY_VAULT_NAME = re.compile(r"[A-Za-z0-9-]{1,127}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class TenantError(Exception):
    """Base of what the tenant registry refuses; the message is meant for the operator."""


class InvalidValue(TenantError, ValueError):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name


class TenantNotFound(TenantError, LookupError):
    pass


class TenantConflict(TenantError):
    """A slug, email domain, WorkOS organization, Teams tenant or app name is already taken."""


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class SsoProvider(StrEnum):
    WORKOS = "workos"
    ENTRA = "entra"


class ProvisioningChannel(StrEnum):
    SCIM = "scim"
    WORKOS = "workos"
    SSO_JIT = "sso-jit"


class AppKind(StrEnum):
    INSTANCE = "instance"
    THINKIFIC = "thinkific"
    ADMIN = "admin"


def parse_slug(value: str, field_name: str = "slug") -> str:
    if not SLUG_PATTERN.fullmatch(value) or len(value) > SLUG_MAX_LENGTH:
        raise InvalidValue(
            field_name, f"{value!r} must be 1-{SLUG_MAX_LENGTH} lowercase letters, digits and single dashes, "
            "starting and ending with a letter or digit")
    return value


def parse_domain(value: str) -> str:
    domain = value.strip().lower().rstrip(".")
    if not _DOMAIN.fullmatch(domain) or len(domain) > 253:
        raise InvalidValue("domain", f"{value!r} is not a domain name such as example.com")
    return domain


def parse_guid(value: str, field_name: str) -> str:
    guid = value.strip().lower()
    if not _GUID.fullmatch(guid):
        raise InvalidValue(field_name, f"{value!r} is not a GUID")
    return guid


def parse_secret_reference(value: str, field_name: str) -> str:
    if not _KEY_VAULT_NAME.fullmatch(value):
        raise InvalidValue(field_name, f"{value!r} is not a Key Vault secret name (letters, digits and dashes)")
    return value


def parse_support_contact(value: str) -> str:
    value = value.strip()
    if _EMAIL.fullmatch(value):
        return value
    parse_url(value, "support_contact")
    return value


def is_local_host(host: str | None) -> bool:
    from shared import config

    return bool(host) and host.lower() in config.outbound_allowed_local_hosts()


def parse_url(value: str, field_name: str) -> str:
    """An absolute https URL (http only for hosts local runs allow); no credentials or fragment."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidValue(field_name, f"{value!r} is not an absolute https:// URL")
    if parts.scheme == "http" and not is_local_host(parts.hostname):
        raise InvalidValue(field_name, f"{value!r} must use https://")
    if parts.username or parts.password or parts.fragment:
        raise InvalidValue(field_name, f"{value!r} must not carry credentials or a #fragment")
    return value.strip().rstrip("/") if parts.path in ("", "/") else value.strip()


def parse_relative_path(value: str, field_name: str) -> str:
    parts = urlsplit(value)
    if not value.startswith("/") or value.startswith("//") or parts.scheme or parts.netloc:
        raise InvalidValue(field_name, f"{value!r} must be a path on the app, starting with a single /")
    return value


@dataclass(frozen=True)
class RoutingRule:
    """Users with this IdP role slug (or in this IdP group) go to this app."""

    match: str  # "role" or "group"
    value: str
    app: str

    def as_dict(self) -> dict[str, str]:
        return {"match": self.match, "value": self.value, "app": self.app}


@dataclass(frozen=True)
class Routing:
    rules: tuple[RoutingRule, ...] = ()
    default_app: str | None = None

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Routing:
        rules = tuple(RoutingRule(**rule) for rule in document.get("rules", []))
        return cls(rules=rules, default_app=document.get("default_app"))

    def as_dict(self) -> dict[str, Any]:
        return {"rules": [rule.as_dict() for rule in self.rules], "default_app": self.default_app}


def parse_routing_rule(text: str) -> RoutingRule:
    """``role:SLUG=APP`` or ``group:NAME=APP`` (``SLUG=APP`` means a role)."""
    target, separator, app = text.rpartition("=")
    if not separator or not target or not app:
        raise InvalidValue("route", f"{text!r} must look like role:SLUG=APP or group:NAME=APP")
    match, _, value = target.partition(":") if ":" in target else ("role", "", target)
    if match not in ("role", "group") or not value:
        raise InvalidValue("route", f"{text!r} must look like role:SLUG=APP or group:NAME=APP")
    return RoutingRule(match=match, value=value, app=parse_slug(app, "route app"))


HRMS_KINDS = ("personio", "personio-v2", "bamboohr", "hibob", "merge")
_CONTEXT_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class HrmsSettings:
    """Which HRMS a tenant reads, how to reach it, what to keep and when (see shared/hrms/).

    ``credential_ref`` names the Key Vault secret holding the connector's credential (a JSON object whose
    keys each connector documents); ``field_mapping`` maps context keys to source attribute names (checked
    against the HRMS when saved: shared.hrms.mapping); ``schedule`` is a six-field NCRONTAB expression;
    ``pace`` keeps requests under the vendor's documented per-minute limit (on unless turned off)."""

    kind: str
    base_url: str
    credential_ref: str
    field_mapping: dict[str, str] = field(default_factory=dict)
    schedule: str = "0 0 2 * * *"
    pace: bool = True
    # Write-back of results: {"enabled": bool, "completion": {target}, "assessment": {target}}; each target's
    # shape is the connector's (checked against the HRMS when saved: shared.hrms.writeback).
    writeback: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, document: dict[str, Any]) -> HrmsSettings:
        unknown = set(document) - {"kind", "base_url", "credential_ref", "field_mapping", "schedule", "pace",
                                   "writeback"}
        if unknown:
            raise InvalidValue("hrms", f"unknown keys: {', '.join(sorted(unknown))}")
        kind = document.get("kind")
        if kind not in HRMS_KINDS:
            raise InvalidValue("hrms.kind", f"must be one of {', '.join(HRMS_KINDS)}")
        mapping = parse_field_mapping(document.get("field_mapping") or {})
        schedule = str(document.get("schedule") or cls.schedule)
        if len(schedule.split()) != 6:
            raise InvalidValue("hrms.schedule", "must be a six-field NCRONTAB expression (seconds first)")
        pace = document.get("pace", True)
        if not isinstance(pace, bool):
            raise InvalidValue("hrms.pace", "must be true or false")
        writeback = document.get("writeback") or {}
        if not isinstance(writeback, dict) or set(writeback) - {"enabled", "completion", "assessment"} \
                or not isinstance(writeback.get("enabled", False), bool) \
                or not all(isinstance(writeback.get(kind, {}), dict) for kind in ("completion", "assessment")):
            raise InvalidValue("hrms.writeback", 'must be {"enabled": true|false, "completion": {...}, '
                               '"assessment": {...}}')
        return cls(
            kind=kind,
            base_url=parse_url(str(document.get("base_url", "")), "hrms.base_url"),
            credential_ref=parse_secret_reference(str(document.get("credential_ref", "")), "hrms.credential_ref"),
            field_mapping=mapping,
            schedule=schedule,
            pace=pace,
            writeback=dict(writeback),
        )

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "base_url": self.base_url, "credential_ref": self.credential_ref,
                "field_mapping": self.field_mapping, "schedule": self.schedule, "pace": self.pace,
                "writeback": self.writeback}


def parse_field_mapping(mapping: Any) -> dict[str, str]:
    """Context keys (lowercase letters, digits, underscores) to source attribute names; every bad key named."""
    if not isinstance(mapping, dict) or not all(
            isinstance(key, str) and isinstance(value, str) and value for key, value in mapping.items()):
        raise InvalidValue("hrms.field_mapping", "must map context keys to source attribute names")
    bad = sorted(key for key in mapping if not _CONTEXT_KEY.fullmatch(key))
    if bad:
        raise InvalidValue("hrms.field_mapping", f"context keys must be lowercase letters, digits and underscores, "
                           f"starting with a letter: {', '.join(repr(key) for key in bad)}")
    return dict(mapping)


@dataclass(frozen=True)
class Tenant:
    id: str
    slug: str
    display_name: str
    status: TenantStatus
    domains: tuple[str, ...]
    support_contact: str | None
    workos_organization_id: str | None
    sso_provider: SsoProvider
    entra_tenant_id: str | None
    entra_client_id: str | None
    teams_tenant_id: str | None
    provisioning_channel: ProvisioningChannel
    routing: Routing
    hrms: HrmsSettings | None
    created_at: datetime
    updated_at: datetime
    allow_idp_initiated: bool = False  # logins the IdP starts (no state) are routed, not restarted

    @property
    def is_active(self) -> bool:
        return self.status is TenantStatus.ACTIVE

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "slug": self.slug, "display_name": self.display_name, "status": self.status.value,
            "domains": list(self.domains), "support_contact": self.support_contact,
            "workos_organization_id": self.workos_organization_id, "sso_provider": self.sso_provider.value,
            "entra_tenant_id": self.entra_tenant_id, "entra_client_id": self.entra_client_id,
            "teams_tenant_id": self.teams_tenant_id, "provisioning_channel": self.provisioning_channel.value,
            "routing": self.routing.as_dict(), "hrms": self.hrms.as_dict() if self.hrms else None,
            "allow_idp_initiated": self.allow_idp_initiated,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class App:
    id: str
    tenant_id: str
    name: str
    kind: AppKind
    base_url: str
    handover_path: str
    post_logout_url: str | None
    allowed_roles: tuple[str, ...]
    client_id: str
    outbound_secret_refs: dict[str, str]
    live_secrets: int
    created_at: datetime

    @property
    def handover_url(self) -> str:
        return self.base_url.rstrip("/") + self.handover_path

    def admits_role(self, roles: set[str]) -> bool:
        """An app with no allowed roles admits everyone; otherwise one role must match."""
        return not self.allowed_roles or bool(roles & set(self.allowed_roles))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "kind": self.kind.value, "base_url": self.base_url,
            "handover_path": self.handover_path, "post_logout_url": self.post_logout_url,
            "allowed_roles": list(self.allowed_roles), "client_id": self.client_id,
            "outbound_secret_refs": self.outbound_secret_refs, "live_secrets": self.live_secrets,
            "created_at": self.created_at.isoformat(),
        }
