"""The app identity's Postgres role (shared/app_role.py): created once, given exactly what the app needs.

Azure's pgaadauth functions exist only on a flexible server; here they are stood in for by SQL functions
that create the role the way Azure's do (a LOGIN role with no other attribute) and note how they were
called, so that what the script does around them runs against real Postgres.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from shared import cli
from shared.app_role import AppRoleError, ensure_app_role
from tests.stack import unique

PGAADAUTH_STANDIN = """
CREATE OR REPLACE FUNCTION pgaadauth_create_principal(role_name text, is_admin boolean, is_mfa boolean)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE ROLE %I LOGIN', role_name);
    EXECUTE format('COMMENT ON ROLE %I IS %L', role_name, 'by name');
    RETURN 'Created role for ' || role_name;
END $$;
CREATE OR REPLACE FUNCTION pgaadauth_create_principal_with_oid(
    role_name text, object_id text, object_type text, is_admin boolean, is_mfa boolean)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE ROLE %I LOGIN', role_name);
    EXECUTE format('COMMENT ON ROLE %I IS %L', role_name, object_type || ' ' || object_id);
    RETURN 'Created role for ' || role_name;
END $$;
"""
DROP_STANDIN = """
DROP FUNCTION IF EXISTS pgaadauth_create_principal(text, boolean, boolean);
DROP FUNCTION IF EXISTS pgaadauth_create_principal_with_oid(text, text, text, boolean, boolean);
"""


def _admin_database_url(database_url: str) -> str:
    return make_conninfo(database_url, dbname="postgres")


@pytest.fixture
def pgaadauth(database):
    with psycopg.connect(_admin_database_url(database), autocommit=True) as conn:
        conn.execute(PGAADAUTH_STANDIN)
    yield
    with psycopg.connect(_admin_database_url(database), autocommit=True) as conn:
        conn.execute(DROP_STANDIN)


@pytest.fixture
def identity_name(database):
    name = unique("id-ec-test-")
    yield name
    with psycopg.connect(database, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def _role_comment(database: str, role: str) -> str | None:
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s",
                           [role]).fetchone()
    return row[0] if row else None


def test_the_identity_gets_a_login_role_that_can_only_work_as_ec_app(database, pgaadauth, identity_name):
    report = ensure_app_role(identity_name)

    assert report.created
    assert report.granted == ["CONNECT", "membership in ec_app"]
    assert _role_comment(database, identity_name) == "by name"
    with psycopg.connect(make_conninfo(database, user=identity_name), autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("SET LOCAL ROLE ec_app")
        assert conn.execute("SELECT count(*) FROM tenants").fetchone() == (0,)
        conn.execute("ROLLBACK")
        for statement in ("CREATE TABLE intruder (id int)", "ALTER TABLE tenants ADD COLUMN x int",
                          "SET ROLE postgres", "CREATE ROLE another"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_running_it_again_changes_nothing_and_says_so(database, pgaadauth, identity_name):
    ensure_app_role(identity_name)
    again = ensure_app_role(identity_name)

    assert (again.created, again.granted) == (False, [])
    assert again.lines()[1].endswith("nothing new (grants already in place)")


def test_with_the_object_id_the_principal_is_created_without_a_lookup_by_name(database, pgaadauth, identity_name):
    ensure_app_role(identity_name, object_id="5C1B2E9A-0D4F-4B8E-9A43-2F7C6E1D0B11")

    assert _role_comment(database, identity_name) == "service 5c1b2e9a-0d4f-4b8e-9a43-2f7c6e1d0b11"


def test_an_administrator_role_is_refused(database, pgaadauth):
    with psycopg.connect(database) as conn:
        superuser = conn.execute("SELECT current_user").fetchone()[0]

    with pytest.raises(AppRoleError, match="SUPERUSER.*must not log in as an administrator"):
        ensure_app_role(superuser)


def test_before_migrations_it_says_to_migrate_first(database, pgaadauth, identity_name, monkeypatch):
    # ec_app is cluster-wide and the session's template already made it: stand for a server that has
    # never been migrated with a role name nobody created.
    monkeypatch.setattr("shared.app_role.APP_ROLE", unique("ec_app_never_"))

    with pytest.raises(AppRoleError, match="run `python -m shared.cli migrate` first"):
        ensure_app_role(identity_name)


def test_a_server_without_pgaadauth_is_named(database, identity_name):
    with pytest.raises(AppRoleError, match="pgaadauth_create_principal is not in the postgres database"):
        ensure_app_role(identity_name)


@pytest.mark.parametrize(("arguments", "message"), [
    (("db", "app-role", "x" * 64), "1-63 characters"),
    (("db", "app-role", "id-ec", "--object-id", "not-a-guid"), "object (principal) id, a GUID"),
])
def test_the_cli_refuses_bad_input_in_one_line(database, capsys, arguments, message):
    assert cli.main(["--no-local-settings", *arguments]) == 1
    assert message in capsys.readouterr().err


def test_the_cli_prints_what_it_did(database, pgaadauth, identity_name, capsys):
    assert cli.main(["--no-local-settings", "db", "app-role", identity_name]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"role {identity_name}: created"
    assert out[1].startswith("granted in ec_test_")
    assert out[1].endswith("CONNECT, membership in ec_app")


def test_on_a_server_set_up_like_azures_ops_migrate_create_the_app_role_and_both_work(tmp_path, monkeypatch):
    """A fresh server where, as on Azure, the ops administrator is no superuser: a CREATEROLE member of
    azure_pg_admin, which owns the app's database. The guide's steps run as that role, then the app's."""
    from local.postgres import database_url, start_embedded_postgres
    from shared import config, db

    server = start_embedded_postgres(tmp_path / "azure-like", delete_on_exit=True)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("CREATE ROLE azure_pg_admin NOLOGIN")
        conn.execute('CREATE ROLE "ec-ops" LOGIN CREATEROLE CREATEDB IN ROLE azure_pg_admin')
        conn.execute("CREATE DATABASE connections OWNER azure_pg_admin")
    with psycopg.connect(make_conninfo(server, dbname="postgres"), autocommit=True) as conn:
        conn.execute(PGAADAUTH_STANDIN)  # Azure's are there already; ops only call them

    def as_role(role: str) -> None:
        db.close_pools()
        url = urlsplit(database_url(server, "connections"))
        netloc = f"{quote(role)}@{url.netloc.rpartition('@')[2]}"
        monkeypatch.setenv("DATABASE_URL", urlunsplit(url._replace(netloc=netloc)))
        config.reset()

    as_role("ec-ops")
    assert cli.main(["--no-local-settings", "migrate"]) == 0
    assert cli.main(["--no-local-settings", "db", "app-role", "id-ec-prod"]) == 0
    # The ops CLI works as ec_app in every transaction, which a non-superuser may do only when granted.
    assert cli.main(["--no-local-settings", "tenant", "add", "acme", "--name", "Acme"]) == 0

    as_role("id-ec-prod")
    try:
        with db.transaction(all_tenants=True) as conn:
            assert conn.execute("SELECT slug FROM tenants").fetchall() == [("acme",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction() as conn:
            conn.execute("CREATE TABLE intruder (id int)")
    finally:
        db.close_pools()
