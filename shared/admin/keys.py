"""Admin API keys.

Contract (tests/admin/test_keys.py):
- a key's scope is ``operator`` (every tenant) or ``tenant:<slug>`` (that tenant's customer admins);
- keys are shown once and stored as SHA-256; a revoked key stops working at once;
- ``authenticate`` gives the key's principal, or None for a missing, unknown or revoked key; it also
  takes the short-lived admin tokens a user receives when signing in to an ``admin`` app
  (``issue_admin_token``: 15 minutes, ``operator`` scope for users of the OPERATOR_TENANT, the
  user's own tenant otherwise), whose actions are recorded as that user;
- a principal may see a tenant only when its scope covers it (``covers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import psycopg

from shared.issued_secrets import ADMIN_KEY_PREFIX, ADMIN_TOKEN_PREFIX, IssuedCredential, issue_secret, secret_hash
from shared.tenants.models import InvalidValue, Tenant, TenantNotFound, parse_slug
from shared.tenants.registry import get_tenant

OPERATOR = "operator"


class AdminKeyNotFound(LookupError):
    pass


@dataclass(frozen=True)
class AdminPrincipal:
    """Who is calling the admin API, and what they may see."""

    key_id: str
    name: str
    scope: str
    tenant_id: str | None

    @property
    def is_operator(self) -> bool:
        return self.scope == OPERATOR

    @property
    def tenant_slug(self) -> str | None:
        return None if self.is_operator else self.scope.removeprefix("tenant:")

    kind: str = "admin-key"  # or "user": a signed-in user's admin token

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name} ({self.key_id})"

    def covers(self, tenant: Tenant) -> bool:
        return self.is_operator or tenant.id == self.tenant_id


@dataclass(frozen=True)
class AdminKey(IssuedCredential):
    scope: str = OPERATOR


_KEY_COLUMNS = "id, name, hint, created_at, created_by, revoked_at, last_used_at, scope"


def _key(row: tuple) -> AdminKey:
    return AdminKey(str(row[0]), *row[1:])


def parse_scope(conn: psycopg.Connection, scope: str) -> tuple[str, str | None]:
    """``operator`` or ``tenant:<slug>`` of an existing tenant -> (scope, tenant id)."""
    if scope == OPERATOR:
        return scope, None
    kind, _, slug = scope.partition(":")
    if kind != "tenant" or not slug:
        raise InvalidValue("scope", f"{scope!r} must be 'operator' or 'tenant:<slug>'")
    try:
        tenant = get_tenant(conn, parse_slug(slug))
    except TenantNotFound:
        raise InvalidValue("scope", f"no tenant {slug!r}") from None
    return f"tenant:{tenant.slug}", tenant.id


def create_admin_key(conn: psycopg.Connection, scope: str, name: str, *, created_by: str) -> tuple[AdminKey, str]:
    """A new key; returns it and its value (shown once)."""
    scope, tenant_id = parse_scope(conn, scope)
    if not name.strip():
        raise InvalidValue("name", "a key needs a name saying who holds it")
    issued = issue_secret(ADMIN_KEY_PREFIX)
    row = conn.execute(
        "INSERT INTO admin_keys (name, scope, tenant_id, key_hash, hint, created_by) VALUES (%s, %s, %s, %s, %s, %s)"
        " RETURNING id, created_at", [name.strip(), scope, tenant_id, issued.hash, issued.hint, created_by]).fetchone()
    key = AdminKey(str(row[0]), name.strip(), issued.hint, row[1], created_by, None, None, scope)
    return key, issued.value


def list_admin_keys(conn: psycopg.Connection) -> list[AdminKey]:
    rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM admin_keys ORDER BY created_at").fetchall()  # noqa: S608
    return [_key(row) for row in rows]


def revoke_admin_key(conn: psycopg.Connection, key_id: str) -> AdminKey:
    row = conn.execute(
        f"UPDATE admin_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id::text = %s"  # noqa: S608
        f" RETURNING {_KEY_COLUMNS}", [key_id]).fetchone()
    if row is None:
        raise AdminKeyNotFound(f"no admin key {key_id!r}")
    return _key(row)


ADMIN_TOKEN_LIFETIME = timedelta(minutes=15)


def issue_admin_token(conn: psycopg.Connection, tenant: Tenant, user_id: str, email: str | None) -> str:
    """A bearer token for the admin API, for a user who just signed in to an ``admin`` app."""
    from shared import config

    scope = OPERATOR if config.operator_tenant() == tenant.slug else f"tenant:{tenant.slug}"
    issued = issue_secret(ADMIN_TOKEN_PREFIX)
    conn.execute(
        "INSERT INTO admin_tokens (token_hash, scope, tenant_id, user_id, email, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, now() + %s)",
        [issued.hash, scope, tenant.id, user_id, email, ADMIN_TOKEN_LIFETIME])
    return issued.value


def _authenticate_token(conn: psycopg.Connection, presented: str) -> AdminPrincipal | None:
    row = conn.execute(
        "SELECT user_id, coalesce(email, user_id::text), scope, tenant_id FROM admin_tokens"
        " WHERE token_hash = %s AND expires_at > now()", [secret_hash(presented)]).fetchone()
    if row is None:
        return None
    tenant_id = None if row[2] == OPERATOR else str(row[3])
    return AdminPrincipal(str(row[0]), row[1], row[2], tenant_id, kind="user")


def authenticate(conn: psycopg.Connection, presented: str | None) -> AdminPrincipal | None:
    if presented and presented.startswith(ADMIN_TOKEN_PREFIX):
        return _authenticate_token(conn, presented)
    if not presented or not presented.startswith(ADMIN_KEY_PREFIX):
        return None
    row = conn.execute(
        "UPDATE admin_keys SET last_used_at = now() WHERE key_hash = %s AND revoked_at IS NULL"
        " RETURNING id, name, scope, tenant_id", [secret_hash(presented)]).fetchone()
    if row is None:
        return None
    return AdminPrincipal(str(row[0]), row[1], row[2], str(row[3]) if row[3] else None)
