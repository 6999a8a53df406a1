"""The tenant registry: create, read, change and suspend tenants.

Contract (tests/tenants/test_registry.py):
- slugs, email domains, WorkOS organizations and Teams tenants are each unique across tenants; a
  clash raises ``TenantConflict`` naming the value and its owner, and writes nothing;
- a tenant that signs in with Entra directly has its Entra tenant and client ids;
- routing rules point at apps the tenant has (checked when rules are set, and when an app goes);
- tenants are suspended, never deleted (their rows anchor the audit and the change log).

Functions take the caller's connection, so that a change and its audit commit together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from shared import db
from shared.tenants.models import (
    HrmsSettings,
    InvalidValue,
    ProvisioningChannel,
    Routing,
    RoutingRule,
    SsoProvider,
    Tenant,
    TenantConflict,
    TenantNotFound,
    TenantStatus,
    parse_domain,
    parse_guid,
    parse_slug,
    parse_support_contact,
)

# The columns of a Tenant; other capabilities may add their own to a query of one tenant.
TENANT_COLUMNS = (
    "t.*, coalesce(array(SELECT d.domain FROM tenant_domains d WHERE d.tenant_id = t.id ORDER BY d.domain),"
    " '{}') AS domains"
)
SELECT_TENANT = f"SELECT {TENANT_COLUMNS} FROM tenants t "  # noqa: S608 - fixed SQL


def tenant_from_row(row: dict[str, Any]) -> Tenant:
    return Tenant(
        id=str(row["id"]),
        slug=row["slug"],
        display_name=row["display_name"],
        status=TenantStatus(row["status"]),
        domains=tuple(row["domains"]),
        support_contact=row["support_contact"],
        workos_organization_id=row["workos_organization_id"],
        sso_provider=SsoProvider(row["sso_provider"]),
        entra_tenant_id=str(row["entra_tenant_id"]) if row["entra_tenant_id"] else None,
        entra_client_id=str(row["entra_client_id"]) if row["entra_client_id"] else None,
        teams_tenant_id=str(row["teams_tenant_id"]) if row["teams_tenant_id"] else None,
        provisioning_channel=ProvisioningChannel(row["provisioning_channel"]),
        routing=Routing.from_dict(row["routing"]),
        hrms=HrmsSettings.parse(row["hrms"]) if row["hrms"] else None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        allow_idp_initiated=bool(row.get("allow_idp_initiated", False)),
    )


@dataclass(frozen=True)
class TenantChanges:
    """What `tenant add` or `tenant update` asks for; None leaves a field as it is."""

    display_name: str | None = None
    support_contact: str | None = None
    workos_organization_id: str | None = None
    sso_provider: str | None = None
    entra_tenant_id: str | None = None
    entra_client_id: str | None = None
    teams_tenant_id: str | None = None
    provisioning_channel: str | None = None
    add_domains: tuple[str, ...] = ()
    remove_domains: tuple[str, ...] = ()
    routes: tuple[str, ...] | None = None  # replaces every rule: role:SLUG=APP, group:NAME=APP
    default_app: str | None = None
    hrms: dict[str, Any] | None = None
    allow_idp_initiated: bool | None = None

    def columns(self) -> dict[str, Any]:
        """Validated column values for the fields that were given."""
        values: dict[str, Any] = {}
        if self.display_name is not None:
            if not self.display_name.strip():
                raise InvalidValue("name", "must not be empty")
            values["display_name"] = self.display_name.strip()
        if self.support_contact is not None:
            values["support_contact"] = parse_support_contact(self.support_contact) if self.support_contact else None
        if self.workos_organization_id is not None:
            org = self.workos_organization_id.strip()
            if org and not org.startswith("org_"):
                raise InvalidValue("workos_organization_id", f"{org!r} is not a WorkOS organization id (org_...)")
            values["workos_organization_id"] = org or None
        if self.sso_provider is not None:
            values["sso_provider"] = _choice(SsoProvider, self.sso_provider, "sso_provider").value
        for name in ("entra_tenant_id", "entra_client_id", "teams_tenant_id"):
            given = getattr(self, name)
            if given is not None:
                values[name] = parse_guid(given, name) if given else None
        if self.provisioning_channel is not None:
            values["provisioning_channel"] = _choice(
                ProvisioningChannel, self.provisioning_channel, "provisioning_channel").value
        if self.allow_idp_initiated is not None:
            values["allow_idp_initiated"] = self.allow_idp_initiated
        if self.hrms is not None:
            values["hrms"] = Jsonb(HrmsSettings.parse(self.hrms).as_dict()) if self.hrms else None
        return values


def _choice(kind: type, value: str, field_name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise InvalidValue(field_name, f"{value!r} must be one of {choices}") from None


def get_tenant(conn: psycopg.Connection, slug: str) -> Tenant:
    row = conn.cursor(row_factory=dict_row).execute(SELECT_TENANT + " WHERE t.slug = %s", [slug]).fetchone()
    if row is None:
        raise TenantNotFound(f"no tenant {slug!r}")
    return tenant_from_row(row)


def get_tenant_by_id(conn: psycopg.Connection, tenant_id: str) -> Tenant:
    row = conn.cursor(row_factory=dict_row).execute(SELECT_TENANT + " WHERE t.id = %s", [tenant_id]).fetchone()
    if row is None:
        raise TenantNotFound(f"no tenant with id {tenant_id}")
    return tenant_from_row(row)


def find_tenant_by_domain(conn: psycopg.Connection, domain: str) -> Tenant | None:
    row = conn.cursor(row_factory=dict_row).execute(
        SELECT_TENANT + " JOIN tenant_domains own ON own.tenant_id = t.id WHERE own.domain = %s",
        [domain.lower()]).fetchone()
    return tenant_from_row(row) if row else None


def find_tenant_by_workos_organization(conn: psycopg.Connection, organization_id: str) -> Tenant | None:
    row = conn.cursor(row_factory=dict_row).execute(
        SELECT_TENANT + " WHERE t.workos_organization_id = %s", [organization_id]).fetchone()
    return tenant_from_row(row) if row else None


def find_tenant_by_teams_tenant(conn: psycopg.Connection, teams_tenant_id: str) -> Tenant | None:
    row = conn.cursor(row_factory=dict_row).execute(
        SELECT_TENANT + " WHERE t.teams_tenant_id = %s", [teams_tenant_id]).fetchone()
    return tenant_from_row(row) if row else None


def list_tenants(conn: psycopg.Connection, *, slugs: Iterable[str] | None = None) -> list[Tenant]:
    cursor = conn.cursor(row_factory=dict_row)
    if slugs is None:
        rows = cursor.execute(SELECT_TENANT + " ORDER BY t.slug").fetchall()
    else:
        rows = cursor.execute(SELECT_TENANT + " WHERE t.slug = ANY(%s) ORDER BY t.slug", [list(slugs)]).fetchall()
    return [tenant_from_row(row) for row in rows]


def _raise_conflicts(conn: psycopg.Connection, tenant_id: str | None, columns: dict[str, Any],
                     domains: Iterable[str]) -> None:
    """Name every unique value another tenant already holds (before the database would refuse it)."""
    for column in ("workos_organization_id", "teams_tenant_id"):
        value = columns.get(column)
        if value:
            query = sql.SQL("SELECT slug FROM tenants WHERE {} = %s AND id IS DISTINCT FROM %s").format(
                sql.Identifier(column))
            owner = conn.execute(query, [value, tenant_id]).fetchone()
            if owner:
                raise TenantConflict(f"{column} {value} already belongs to tenant {owner[0]!r}")
    for domain in domains:
        owner = conn.execute(
            "SELECT t.slug FROM tenant_domains d JOIN tenants t ON t.id = d.tenant_id "
            "WHERE d.domain = %s AND d.tenant_id IS DISTINCT FROM %s", [domain, tenant_id]).fetchone()
        if owner:
            raise TenantConflict(f"domain {domain} already belongs to tenant {owner[0]!r}")


def create_tenant(conn: psycopg.Connection, slug: str, changes: TenantChanges) -> Tenant:
    slug = parse_slug(slug)
    if not changes.display_name:
        raise InvalidValue("name", "a tenant needs a display name")
    columns = changes.columns()
    domains = sorted({parse_domain(domain) for domain in changes.add_domains})
    if conn.execute("SELECT 1 FROM tenants WHERE slug = %s", [slug]).fetchone():
        raise TenantConflict(f"tenant {slug!r} already exists")
    _raise_conflicts(conn, None, columns, domains)
    _check_entra_complete({**columns})
    names = ["slug", *columns]
    query = sql.SQL("INSERT INTO tenants ({}) VALUES ({}) RETURNING id").format(
        sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(sql.Placeholder() * len(names)))
    tenant_id = conn.execute(query, [slug, *columns.values()]).fetchone()[0]
    for domain in domains:
        conn.execute("INSERT INTO tenant_domains (domain, tenant_id) VALUES (%s, %s)", [domain, tenant_id])
    return get_tenant(conn, slug)


def _check_entra_complete(columns: dict[str, Any], current: Tenant | None = None) -> None:
    def value(name: str) -> Any:
        return columns[name] if name in columns else getattr(current, name, None)

    provider = value("sso_provider")
    if str(provider) == SsoProvider.ENTRA.value and not (value("entra_tenant_id") and value("entra_client_id")):
        raise InvalidValue("sso_provider", "entra needs --entra-tenant-id and --entra-client-id")


def update_tenant(conn: psycopg.Connection, slug: str, changes: TenantChanges) -> Tenant:
    current = get_tenant(conn, slug)
    columns = changes.columns()
    added = sorted({parse_domain(domain) for domain in changes.add_domains} - set(current.domains))
    removed = {parse_domain(domain) for domain in changes.remove_domains}
    unknown = removed - set(current.domains)
    if unknown:
        raise InvalidValue("domain", f"{', '.join(sorted(unknown))} is not a domain of {slug!r}")
    _raise_conflicts(conn, current.id, columns, added)
    _check_entra_complete(columns, current)
    if changes.routes is not None or changes.default_app is not None:
        db.use_tenant(conn, current.id)
        rules = current.routing.rules if changes.routes is None else tuple(parse_routing_rule_list(changes.routes))
        default_app = current.routing.default_app if changes.default_app is None else changes.default_app or None
        routing = Routing(rules=rules, default_app=default_app)
        check_routing_apps(conn, current.id, routing)
        columns["routing"] = Jsonb(routing.as_dict())
    if columns:
        assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in columns)
        query = sql.SQL("UPDATE tenants SET {}, updated_at = now() WHERE id = %s").format(assignments)
        conn.execute(query, [*columns.values(), current.id])
    for domain in added:
        conn.execute("INSERT INTO tenant_domains (domain, tenant_id) VALUES (%s, %s)", [domain, current.id])
    if removed:
        conn.execute("DELETE FROM tenant_domains WHERE tenant_id = %s AND domain = ANY(%s)",
                     [current.id, sorted(removed)])
    return get_tenant(conn, slug)


def parse_routing_rule_list(texts: Iterable[str]) -> list[RoutingRule]:
    from shared.tenants.models import parse_routing_rule

    return [parse_routing_rule(text) for text in texts]


def check_routing_apps(conn: psycopg.Connection, tenant_id: str, routing: Routing) -> None:
    """Every app a rule (or the default) names must be an app of the tenant."""
    wanted = {rule.app for rule in routing.rules} | ({routing.default_app} if routing.default_app else set())
    if not wanted:
        return
    have = {row[0] for row in conn.execute(
        "SELECT name FROM apps WHERE tenant_id = %s AND name = ANY(%s)", [tenant_id, sorted(wanted)])}
    missing = wanted - have
    if missing:
        raise InvalidValue("route", f"no app named {', '.join(sorted(missing))} in this tenant (add it first)")


def set_status(conn: psycopg.Connection, slug: str, status: TenantStatus) -> Tenant:
    current = get_tenant(conn, slug)
    conn.execute("UPDATE tenants SET status = %s, updated_at = now() WHERE id = %s", [status.value, current.id])
    return get_tenant(conn, slug)
