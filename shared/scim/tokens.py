"""SCIM Bearer tokens, issued per tenant by `python -m shared.cli scim-token create TENANT`.

Contract (tests/scim/test_tokens.py):
- a token belongs to one tenant, is shown once and stored as SHA-256;
- ``authenticate`` accepts a live token of that tenant only: another tenant's token, a revoked one
  or an unknown one gives None;
- tenants may hold several live tokens (rotation: create the new one, switch the IdP, revoke the old).
"""

from __future__ import annotations

import hmac

import psycopg
from psycopg.rows import dict_row

from shared import db
from shared.issued_secrets import SCIM_TOKEN_PREFIX, IssuedCredential, issue_secret, secret_hash
from shared.tenants.models import InvalidValue, Tenant
from shared.tenants.registry import TENANT_COLUMNS, tenant_from_row


class ScimTokenNotFound(LookupError):
    pass


ScimToken = IssuedCredential

_COLUMNS = "id, name, hint, created_at, created_by, revoked_at, last_used_at"


def _token(row: tuple) -> ScimToken:
    return ScimToken(str(row[0]), *row[1:])


def create_scim_token(conn: psycopg.Connection, tenant: Tenant, name: str, *, created_by: str) -> tuple[ScimToken, str]:
    db.use_tenant(conn, tenant.id)
    if not name.strip():
        raise InvalidValue("name", "a token needs a name (which IdP uses it)")
    issued = issue_secret(SCIM_TOKEN_PREFIX)
    row = conn.execute(
        f"INSERT INTO scim_tokens (tenant_id, name, token_hash, hint, created_by) VALUES (%s, %s, %s, %s, %s)"  # noqa: S608
        f" RETURNING {_COLUMNS}", [tenant.id, name.strip(), issued.hash, issued.hint, created_by]).fetchone()
    return _token(row), issued.value


def list_scim_tokens(conn: psycopg.Connection, tenant: Tenant) -> list[ScimToken]:
    db.use_tenant(conn, tenant.id)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM scim_tokens WHERE tenant_id = %s ORDER BY created_at", [tenant.id]).fetchall()  # noqa: S608
    return [_token(row) for row in rows]


def revoke_scim_token(conn: psycopg.Connection, tenant: Tenant, token_id: str) -> ScimToken:
    db.use_tenant(conn, tenant.id)
    row = conn.execute(
        f"UPDATE scim_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE tenant_id = %s AND id::text = %s"  # noqa: S608
        f" RETURNING {_COLUMNS}", [tenant.id, token_id]).fetchone()
    if row is None:
        raise ScimTokenNotFound(f"tenant {tenant.slug!r} has no SCIM token {token_id!r}")
    return _token(row)


def revoke_scim_tokens_named(conn: psycopg.Connection, tenant: Tenant, name: str) -> int:
    db.use_tenant(conn, tenant.id)
    return conn.execute(
        "WITH revoked AS (UPDATE scim_tokens SET revoked_at = now()"
        " WHERE tenant_id = %s AND name = %s AND revoked_at IS NULL RETURNING 1) SELECT count(*) FROM revoked",
        [tenant.id, name]).fetchone()[0]


def tenant_and_token(conn: psycopg.Connection, slug: str, presented: str) -> tuple[Tenant, str] | None:
    """The tenant and the id of the live token presented for it, or None; one query.

    The transaction must already be scoped to the tenant of ``slug`` (``db.transaction(tenant_slug=...)``):
    row-level security hides every other tenant's tokens. The presented token's hash is compared in
    constant time with each live token's.
    """
    row = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {TENANT_COLUMNS}, live.tokens FROM tenants t, LATERAL (SELECT coalesce(jsonb_agg(jsonb_build_array("  # noqa: S608
        " s.id, s.token_hash, s.last_used_at < now() - interval '1 minute' OR s.last_used_at IS NULL)), '[]') AS tokens"
        " FROM scim_tokens s WHERE s.tenant_id = t.id AND s.revoked_at IS NULL) live WHERE t.slug = %s",
        [slug]).fetchone()
    if row is None:
        return None
    digest = secret_hash(presented)
    matched = None
    for token_id, token_hash, stale in row["tokens"]:
        if hmac.compare_digest(token_hash, digest):
            matched = (token_id, stale)
    if matched is None:
        return None
    if matched[1]:  # record use at most once a minute: no write on every request
        conn.execute("UPDATE scim_tokens SET last_used_at = now() WHERE id = %s", [matched[0]])
    return tenant_from_row(row), str(matched[0])


def authenticate(conn: psycopg.Connection, tenant: Tenant, presented: str | None) -> ScimToken | None:
    if not presented or not presented.startswith(SCIM_TOKEN_PREFIX):
        return None
    db.use_tenant(conn, tenant.id)
    row = conn.execute(
        f"UPDATE scim_tokens SET last_used_at = now() WHERE tenant_id = %s AND token_hash = %s"  # noqa: S608
        f" AND revoked_at IS NULL RETURNING {_COLUMNS}", [tenant.id, secret_hash(presented)]).fetchone()
    return _token(row) if row else None
