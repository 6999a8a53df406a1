"""shared/db.py: pools, the transaction helper and the schema check, against real Postgres."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from shared import db, managed_identity
from tests.stack import PROJECT_ROOT, PYTHON, base_environment


def test_importing_db_connects_to_nothing_and_loads_no_driver():
    script = "import sys, shared.db\nprint(any(m.startswith(('psycopg', 'azure.identity')) for m in sys.modules))"
    result = subprocess.run([PYTHON, "-c", script], env=base_environment(), cwd=PROJECT_ROOT,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_transaction_commits_when_its_block_ends(database):
    with db.transaction() as conn:
        conn.execute("INSERT INTO tenants (slug, display_name) VALUES ('acme', 'Acme')")
    with db.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM tenants WHERE slug = 'acme'").fetchone()[0] == 1


def test_a_transaction_rolls_back_when_its_block_raises(database):
    def insert_then_fail() -> None:
        with db.transaction() as conn:
            conn.execute("INSERT INTO tenants (slug, display_name) VALUES ('acme', 'Acme')")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        insert_then_fail()
    with db.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0



def test_a_write_that_fails_unread_still_fails_the_block_and_rolls_it_back(database, monkeypatch):
    # Pipelined: the duplicate is only answered at the end of the block, yet nothing is committed
    # and the pooled connection is clean for the next transaction.
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "1")
    def insert_twice() -> None:
        with db.transaction() as conn:
            conn.execute("INSERT INTO tenants (slug, display_name) VALUES ('acme', 'Acme')")
            conn.execute("INSERT INTO tenants (slug, display_name) VALUES ('acme', 'Acme again')")

    with pytest.raises(psycopg.errors.UniqueViolation):
        insert_twice()
    with db.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0
        assert conn.execute("SELECT current_setting('app.tenant_id', true)").fetchone()[0] == ""

def test_the_tenant_is_set_for_one_transaction_only(database, monkeypatch):
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "1")  # one physical connection: the next transaction reuses it
    with db.transaction(tenant_id="5b0c...tenant-a") as conn:
        assert conn.execute("SELECT current_setting('app.tenant_id')").fetchone()[0] == "5b0c...tenant-a"
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with db.transaction() as conn:
        assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == backend
        assert conn.execute("SELECT current_setting('app.tenant_id', true)").fetchone()[0] == ""


def test_the_statement_timeout_applies_inside_transactions(database, monkeypatch):
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "200")
    with pytest.raises(psycopg.errors.QueryCanceled), db.transaction() as conn:
        conn.execute("SELECT pg_sleep(2)")


def test_no_server_side_prepared_statement_is_ever_created(database, monkeypatch):
    # PgBouncer in transaction mode would hand a prepared statement to another client's session.
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "1")
    for _ in range(20):
        with db.transaction() as conn:
            conn.execute("SELECT slug FROM tenants WHERE slug = %s", ["acme"]).fetchall()
    with db.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0


def test_an_unmigrated_database_is_refused_with_the_fix(empty_database):
    with pytest.raises(db.SchemaNotCurrent) as error, db.transaction():
        pass
    assert "0001_tenants.sql" in str(error.value)
    assert "python -m shared.cli migrate" in str(error.value)


def test_the_schema_check_passes_once_migrations_are_applied(empty_database):
    from shared.migrations import apply_migrations

    with pytest.raises(db.SchemaNotCurrent), db.transaction():
        pass
    apply_migrations()
    with db.transaction() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_async_transaction_scopes_its_tenant_and_commits(database):
    async def scenario() -> tuple[str, int]:
        async with db.async_transaction(tenant_id="tenant-b") as conn:
            tenant = (await (await conn.execute("SELECT current_setting('app.tenant_id')")).fetchone())[0]
            await conn.execute("INSERT INTO tenants (slug, display_name) VALUES ('beta', 'Beta')")
        async with db.async_transaction() as conn:
            count = (await (await conn.execute("SELECT count(*) FROM tenants")).fetchone())[0]
        pool = await db.async_pool()
        await pool.close()
        return tenant, count

    assert asyncio.run(scenario()) == ("tenant-b", 1)


class _CountingCredential:
    """The azure-identity boundary: hands out tokens and counts the requests."""

    def __init__(self) -> None:
        self.scopes: list[str] = []
        self.lock = threading.Lock()

    def get_token(self, *scopes: str):
        from azure.core.credentials import AccessToken

        with self.lock:
            self.scopes.extend(scopes)
            return AccessToken(f"token-{len(self.scopes)}", 4102444800)


def test_with_postgres_host_each_new_connection_gets_a_fresh_entra_token(database, monkeypatch):
    # The embedded server trusts local connections, so any password works: what is proven here is
    # that the pool asks the credential once per physical connection, for the Postgres scope.
    parts = urlsplit(database)
    socket_dir = parse_qs(parts.query)["host"][0] if "host=" in parts.query else parts.hostname
    if not socket_dir or not socket_dir.startswith("/"):
        pytest.skip("needs the embedded server's socket (trust authentication)")
    monkeypatch.delenv("DATABASE_URL")
    for name, value in {"POSTGRES_HOST": socket_dir, "POSTGRES_PORT": "5432", "POSTGRES_DATABASE": parts.path[1:],
                        "POSTGRES_USER": "postgres", "POSTGRES_SSLMODE": "disable"}.items():
        monkeypatch.setenv(name, value)
    credential = _CountingCredential()
    monkeypatch.setattr(managed_identity, "_credential", credential)

    both_inside = threading.Barrier(2, timeout=20)
    errors: list[BaseException] = []

    def hold_a_connection() -> None:
        try:
            with db.transaction() as conn:
                conn.execute("SELECT 1")
                both_inside.wait()  # two transactions at once: two physical connections
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=hold_a_connection) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    with db.transaction() as conn:  # a third transaction reuses a pooled connection: no new token
        conn.execute("SELECT 1")
    assert errors == []
    assert credential.scopes == [db.POSTGRES_TOKEN_SCOPE, db.POSTGRES_TOKEN_SCOPE]
