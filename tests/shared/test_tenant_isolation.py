"""Row-level security: every tenant table has a policy, and one tenant cannot see another's rows."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from shared import db
from shared.identity import store
from shared.identity.models import Actor, ActorKind, Channel, PersonClaims

# Tables with a tenant_id that are registries by design (looked up before a tenant is known).
GLOBAL_TABLES = {
    "tenants": "the registry itself",
    "tenant_domains": "email domain -> tenant, looked up before the tenant is known",
    "admin_keys": "operator keys belong to no tenant",
    "admin_tokens": "like admin keys: looked up by hash before any tenant is known, operator scope included",
    "admin_audit": "operator actions belong to no tenant",
}


def _tenant_tables(conn) -> dict[str, tuple[bool, bool, int]]:
    rows = conn.execute("""
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r'
          AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                      AND NOT a.attisdropped)
    """).fetchall()
    return {name: (enabled, forced, policies) for name, enabled, forced, policies in rows}


def test_every_tenant_table_has_forced_row_level_security_and_a_policy(database):
    with psycopg.connect(database) as conn:
        tables = _tenant_tables(conn)
    unprotected = {name: state for name, state in tables.items()
                   if name not in GLOBAL_TABLES and state != (True, True, 1)}
    assert unprotected == {}
    assert set(GLOBAL_TABLES) <= set(tables) | {"tenants"}


def test_the_app_role_cannot_bypass_row_level_security(database):
    with psycopg.connect(database) as conn:
        assert conn.execute(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s", [db.APP_ROLE]).fetchone() == (False,)


@pytest.fixture
def two_tenants_with_users(make_tenant):
    acme, beta = make_tenant("acme"), make_tenant("beta")
    actor = Actor(ActorKind.SYSTEM, "test")
    with db.transaction() as conn:
        store.sync_person(conn, acme, PersonClaims(Channel.SCIM, "scim", "a", email="a@acme.example"), actor)
        store.sync_person(conn, beta, PersonClaims(Channel.SCIM, "scim", "b", email="b@beta.example"), actor)
    return acme, beta


def test_a_query_under_tenant_a_cannot_see_tenant_b_rows(two_tenants_with_users):
    acme, _beta = two_tenants_with_users
    with db.transaction(tenant_id=acme.id) as conn:
        # No WHERE on tenant_id: only the policy stands between this query and beta's rows.
        emails = [row[0] for row in conn.execute("SELECT primary_email FROM users")]
        identities = conn.execute("SELECT count(*) FROM user_identities").fetchone()[0]
        log_tenants = {row[0] for row in conn.execute("SELECT DISTINCT tenant_id FROM change_log")}
    assert emails == ["a@acme.example"]
    assert identities == 1
    assert log_tenants == {uuid.UUID(acme.id)}


def test_tenant_a_cannot_write_rows_for_tenant_b(two_tenants_with_users):
    acme, beta = two_tenants_with_users
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction(tenant_id=acme.id) as conn:
        conn.execute("INSERT INTO users (tenant_id, primary_email, created_by_channel) VALUES (%s, 'x@y.z', 'scim')",
                     [beta.id])
    with db.transaction(tenant_id=acme.id) as conn:
        updated = conn.execute("UPDATE users SET given_name = 'hacked' WHERE tenant_id = %s RETURNING id", [beta.id])
        assert updated.fetchall() == []


def test_a_transaction_without_a_tenant_sees_no_tenant_rows(two_tenants_with_users):
    with db.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_only_an_explicit_all_tenants_transaction_sees_every_tenant(two_tenants_with_users):
    with db.transaction(all_tenants=True) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 2


def test_a_transaction_cannot_be_scoped_to_one_tenant_and_all(two_tenants_with_users):
    acme, _ = two_tenants_with_users
    with pytest.raises(ValueError, match="not both"), db.transaction(tenant_id=acme.id, all_tenants=True):
        pass
