"""A tenant's apps, the credentials they call us with, and the references of those we call them with.

Contract (tests/tenants/test_apps.py):
- an app has a name unique in its tenant, a kind (instance, thinkific, admin), a base URL, a
  hand-over path on it, a post-logout URL and the roles it admits (none listed: every role);
- inbound credentials are a public client id and secrets stored as SHA-256: at most two live at once,
  so a rotation never leaves the app without a working secret; a secret is shown once;
- ``rotate`` issues a new secret and, when two are already live, revokes the older one;
- outbound credentials (us calling the app, such as a Thinkific API key) are Key Vault secret names,
  never values;
- an app that a routing rule names cannot be removed until the rule goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from shared import db
from shared.issued_secrets import APP_SECRET_PREFIX, IssuedSecret, issue_secret, new_client_id, secret_hash
from shared.tenants.models import (
    App,
    AppKind,
    InvalidValue,
    Tenant,
    TenantConflict,
    TenantNotFound,
    parse_relative_path,
    parse_secret_reference,
    parse_slug,
    parse_url,
)

MAX_LIVE_SECRETS = 2
DEFAULT_HANDOVER_PATH = "/sso/handover"


class AppNotFound(TenantNotFound):
    pass


class TooManySecrets(TenantConflict):
    pass


_SELECT_APP = """
SELECT a.*, (SELECT count(*) FROM app_secrets s WHERE s.app_id = a.id AND s.revoked_at IS NULL) AS live_secrets
FROM apps a
"""


def _app(row: dict[str, Any]) -> App:
    return App(
        id=str(row["id"]), tenant_id=str(row["tenant_id"]), name=row["name"], kind=AppKind(row["kind"]),
        base_url=row["base_url"], handover_path=row["handover_path"], post_logout_url=row["post_logout_url"],
        allowed_roles=tuple(row["allowed_roles"]), client_id=row["client_id"],
        outbound_secret_refs=dict(row["outbound_secret_refs"]), live_secrets=row["live_secrets"],
        created_at=row["created_at"],
    )


@dataclass(frozen=True)
class AppSpec:
    kind: str
    base_url: str
    handover_path: str = DEFAULT_HANDOVER_PATH
    post_logout_url: str | None = None
    allowed_roles: tuple[str, ...] = ()
    outbound_secret_refs: dict[str, str] | None = None

    def columns(self) -> dict[str, Any]:
        try:
            kind = AppKind(self.kind)
        except ValueError:
            raise InvalidValue("kind", f"{self.kind!r} must be one of instance, thinkific, admin") from None
        refs = {parse_slug(name, "outbound secret name"): parse_secret_reference(ref, f"outbound secret {name}")
                for name, ref in (self.outbound_secret_refs or {}).items()}
        return {
            "kind": kind.value,
            "base_url": parse_url(self.base_url, "base_url"),
            "handover_path": parse_relative_path(self.handover_path, "handover_path"),
            "post_logout_url": parse_url(self.post_logout_url, "post_logout_url") if self.post_logout_url else None,
            "allowed_roles": sorted({role.strip() for role in self.allowed_roles if role.strip()}),
            "outbound_secret_refs": Jsonb(refs),
        }


def add_app(conn: psycopg.Connection, tenant: Tenant, name: str, spec: AppSpec) -> App:
    db.use_tenant(conn, tenant.id)
    name = parse_slug(name, "app name")
    columns = spec.columns()
    if conn.execute("SELECT 1 FROM apps WHERE tenant_id = %s AND name = %s", [tenant.id, name]).fetchone():
        raise TenantConflict(f"tenant {tenant.slug!r} already has an app {name!r}")
    conn.execute(
        "INSERT INTO apps (tenant_id, name, kind, base_url, handover_path, post_logout_url, allowed_roles,"
        " outbound_secret_refs, client_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [tenant.id, name, columns["kind"], columns["base_url"], columns["handover_path"], columns["post_logout_url"],
         columns["allowed_roles"], columns["outbound_secret_refs"], new_client_id()],
    )
    return get_app(conn, tenant, name)


def get_app(conn: psycopg.Connection, tenant: Tenant, name: str) -> App:
    db.use_tenant(conn, tenant.id)
    row = conn.cursor(row_factory=dict_row).execute(
        _SELECT_APP + " WHERE a.tenant_id = %s AND a.name = %s", [tenant.id, name]).fetchone()
    if row is None:
        raise AppNotFound(f"tenant {tenant.slug!r} has no app {name!r}")
    return _app(row)


def list_apps(conn: psycopg.Connection, tenant: Tenant) -> list[App]:
    db.use_tenant(conn, tenant.id)
    rows = conn.cursor(row_factory=dict_row).execute(
        _SELECT_APP + " WHERE a.tenant_id = %s ORDER BY a.name", [tenant.id]).fetchall()
    return [_app(row) for row in rows]


def remove_app(conn: psycopg.Connection, tenant: Tenant, name: str) -> App:
    app = get_app(conn, tenant, name)
    routed = [rule for rule in tenant.routing.rules if rule.app == name]
    if routed or tenant.routing.default_app == name:
        raise TenantConflict(
            f"app {name!r} is named by tenant {tenant.slug!r}'s routing; change the routing first")
    conn.execute("DELETE FROM apps WHERE id = %s", [app.id])
    return app


@dataclass(frozen=True)
class AppSecret:
    id: str
    hint: str
    created_at: datetime
    revoked_at: datetime | None


def _live_secrets(conn: psycopg.Connection, app: App) -> list[AppSecret]:
    rows = conn.execute(
        "SELECT id, hint, created_at, revoked_at FROM app_secrets WHERE app_id = %s AND revoked_at IS NULL"
        " ORDER BY created_at FOR UPDATE", [app.id]).fetchall()
    return [AppSecret(str(row[0]), row[1], row[2], row[3]) for row in rows]


def _insert_secret(conn: psycopg.Connection, app: App, created_by: str) -> tuple[AppSecret, IssuedSecret]:
    issued = issue_secret(APP_SECRET_PREFIX)
    row = conn.execute(
        "INSERT INTO app_secrets (tenant_id, app_id, secret_hash, hint, created_by) VALUES (%s, %s, %s, %s, %s)"
        " RETURNING id, created_at", [app.tenant_id, app.id, issued.hash, issued.hint, created_by]).fetchone()
    return AppSecret(str(row[0]), issued.hint, row[1], None), issued


def create_app_secret(
    conn: psycopg.Connection, tenant: Tenant, name: str, *, created_by: str
) -> tuple[App, AppSecret, str]:
    """A new secret for the app; refused when two are already live (rotate or revoke first)."""
    app = get_app(conn, tenant, name)
    if len(_live_secrets(conn, app)) >= MAX_LIVE_SECRETS:
        raise TooManySecrets(
            f"app {name!r} already has {MAX_LIVE_SECRETS} live secrets: use `app secret rotate` or revoke one")
    secret, issued = _insert_secret(conn, app, created_by)
    return app, secret, issued.value


def rotate_app_secret(
    conn: psycopg.Connection, tenant: Tenant, name: str, *, created_by: str
) -> tuple[App, AppSecret, str, list[AppSecret]]:
    """Issue a new secret, keeping the newest old one live; returns what was revoked."""
    app = get_app(conn, tenant, name)
    live = _live_secrets(conn, app)
    to_revoke = live[: max(0, len(live) - (MAX_LIVE_SECRETS - 1))]
    for old in to_revoke:
        conn.execute("UPDATE app_secrets SET revoked_at = now() WHERE id = %s", [old.id])
    secret, issued = _insert_secret(conn, app, created_by)
    return app, secret, issued.value, to_revoke


def revoke_app_secret(conn: psycopg.Connection, tenant: Tenant, name: str, secret_id: str) -> AppSecret:
    app = get_app(conn, tenant, name)
    row = conn.execute(
        "UPDATE app_secrets SET revoked_at = coalesce(revoked_at, now()) WHERE app_id = %s AND id::text = %s"
        " RETURNING id, hint, created_at, revoked_at", [app.id, secret_id]).fetchone()
    if row is None:
        raise AppNotFound(f"app {name!r} has no secret {secret_id!r}")
    return AppSecret(str(row[0]), row[1], row[2], row[3])


def list_app_secrets(conn: psycopg.Connection, tenant: Tenant, name: str) -> list[AppSecret]:
    app = get_app(conn, tenant, name)
    rows = conn.execute(
        "SELECT id, hint, created_at, revoked_at FROM app_secrets WHERE app_id = %s ORDER BY created_at",
        [app.id]).fetchall()
    return [AppSecret(str(row[0]), row[1], row[2], row[3]) for row in rows]


def authenticate_app(conn: psycopg.Connection, client_id: str, presented_secret: str) -> App | None:
    """The app whose client id and live secret these are, or None (the caller answers 401).

    Looked up across tenants (the client id is global), then the transaction is narrowed to the
    app's tenant.
    """
    db.use_all_tenants(conn)
    row = conn.execute(
        "SELECT a.tenant_id, a.name, s.id FROM apps a JOIN app_secrets s ON s.app_id = a.id"
        " WHERE a.client_id = %s AND s.secret_hash = %s AND s.revoked_at IS NULL",
        [client_id, secret_hash(presented_secret)]).fetchone()
    db.use_tenant(conn, row[0] if row else None)
    if row is None:
        return None
    conn.execute("UPDATE app_secrets SET last_used_at = now() WHERE id = %s", [row[2]])
    app_row = conn.cursor(row_factory=dict_row).execute(
        _SELECT_APP + " WHERE a.tenant_id = %s AND a.name = %s", [row[0], row[1]]).fetchone()
    return _app(app_row)
