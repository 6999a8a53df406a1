"""Postgres access: lazily opened connection pools and the transaction helper.

Contract (tests/shared/test_db.py):
- importing this module connects to nothing and imports no driver; each pool (sync, async) is
  created and opened on first use;
- it works through PgBouncer in transaction mode: no server-side prepared statements
  (``prepare_threshold=None``) and no session state; what a transaction needs (its tenant, its
  statement timeout) is set with ``set_config(..., is_local => true)``, the parameterised
  ``SET LOCAL``, and is gone at commit;
- with ``POSTGRES_HOST`` every new physical connection gets a fresh Entra access token as its
  password (azure-identity caches tokens until shortly before expiry);
- the first use in a process checks that every migration this code ships is applied, and raises
  ``SchemaNotCurrent`` naming the pending ones (and how to apply them) when not;
- ``transaction()`` commits when its block ends, rolls back when it raises, and works as role
  ``ec_app``: row-level security shows it the rows of the tenant it was given
  (``current_setting('app.tenant_id')``), none of any tenant when it was given none, and every
  tenant's only when asked with ``all_tenants=True`` (lookups by a global identifier, retention);
  all of it ends with the transaction.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from shared import config

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

POSTGRES_TOKEN_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"  # noqa: S105 - a scope
APPLICATION_NAME = "enterprise-connections"
# Serverless instances come and go: keep no idle connection for long, open none ahead of need.
POOL_MIN_SIZE = 0
POOL_MAX_IDLE_SECONDS = 120.0

# The role every transaction works as (created by migration 0002): only the grants the app needs,
# subject to row-level security whatever role the connection logged in as.
APP_ROLE = "ec_app"
_BEGIN = (
    "SELECT set_config('app.tenant_id', %s, true), set_config('app.all_tenants', %s, true),"
    " set_config('statement_timeout', %s, true), set_config('role', %s, true)"
)


class SchemaNotCurrent(RuntimeError):
    """The database lacks migrations this code needs; the message says which and how to apply them."""


_lock = threading.Lock()
_sync_pool: ConnectionPool | None = None
_async_pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool] = {}
_schema_checked = False


def connection_kwargs() -> dict[str, Any]:
    """Keyword arguments for a new physical connection (the Entra token is fetched here)."""
    settings = config.database()
    kwargs: dict[str, Any] = {
        "prepare_threshold": None,
        "application_name": APPLICATION_NAME,
        "connect_timeout": 5,
    }
    if settings.uses_entra_token:
        from shared.managed_identity import azure_credential

        kwargs["password"] = azure_credential().get_token(POSTGRES_TOKEN_SCOPE).token
    return kwargs


async def _async_connection_kwargs() -> dict[str, Any]:
    # azure-identity's sync credential does network I/O: keep it off the event loop.
    return await asyncio.to_thread(connection_kwargs)


def sync_pool() -> ConnectionPool:
    """The process's sync pool, created and opened on first use."""
    global _sync_pool
    with _lock:
        if _sync_pool is None:
            from psycopg_pool import ConnectionPool

            settings = config.database()
            _sync_pool = ConnectionPool(
                settings.conninfo(),
                kwargs=connection_kwargs,
                min_size=POOL_MIN_SIZE,
                max_size=settings.pool_max_size,
                timeout=settings.pool_timeout_seconds,
                max_idle=POOL_MAX_IDLE_SECONDS,
                check=ConnectionPool.check_connection,
                name="sync",
                open=False,
            )
            _sync_pool.open(wait=False)
        return _sync_pool


async def async_pool() -> AsyncConnectionPool:
    """The async pool of the running event loop, created and opened on first use."""
    loop = asyncio.get_running_loop()
    pool = _async_pools.get(loop)
    if pool is None:
        from psycopg_pool import AsyncConnectionPool

        settings = config.database()
        pool = AsyncConnectionPool(
            settings.conninfo(),
            kwargs=_async_connection_kwargs,
            min_size=POOL_MIN_SIZE,
            max_size=settings.pool_max_size,
            timeout=settings.pool_timeout_seconds,
            max_idle=POOL_MAX_IDLE_SECONDS,
            check=AsyncConnectionPool.check_connection,
            name="async",
            open=False,
        )
        for stale in [other for other in _async_pools if other.is_closed()]:
            del _async_pools[stale]
        _async_pools[loop] = pool
        await pool.open(wait=False)
    return pool


def ensure_schema_current(conn: psycopg.Connection) -> None:
    """Raise SchemaNotCurrent unless every shipped migration is applied (checked once a process)."""
    if not _schema_checked:
        from shared.migrations import applied_migrations

        _record_schema_check(applied_migrations(conn))


async def ensure_schema_current_async(conn: psycopg.AsyncConnection) -> None:
    if not _schema_checked:
        from shared.migrations import APPLIED_MIGRATIONS_QUERY, MIGRATIONS_TABLE_EXISTS_QUERY

        applied: list[tuple[str, str]] = []
        if (await (await conn.execute(MIGRATIONS_TABLE_EXISTS_QUERY)).fetchone())[0]:
            applied = await (await conn.execute(APPLIED_MIGRATIONS_QUERY)).fetchall()
        _record_schema_check(dict(applied))


def _record_schema_check(applied: dict[str, str]) -> None:
    global _schema_checked
    from shared.migrations import pending_migrations

    pending = pending_migrations(applied)
    if pending:
        names = ", ".join(migration.name for migration in pending)
        raise SchemaNotCurrent(
            f"the database schema is behind this code: {len(pending)} migration(s) not applied "
            f"({names}); apply them with `python -m shared.cli migrate`")
    _schema_checked = True


def _begin_arguments(tenant_id: object | None, all_tenants: bool) -> tuple[str, str, str, str]:
    if tenant_id is not None and all_tenants:
        raise ValueError("a transaction is scoped to one tenant or to all of them, not both")
    timeout = config.database().statement_timeout_ms
    return ("" if tenant_id is None else str(tenant_id), "on" if all_tenants else "", f"{timeout}ms", APP_ROLE)


def use_tenant(conn: psycopg.Connection, tenant_id: object | None) -> None:
    """Narrow the current transaction to one tenant (after looking it up in the global registry),
    or with None to no tenant at all."""
    conn.execute(
        "SELECT set_config('app.tenant_id', %s, true), set_config('app.all_tenants', '', true)",
        ["" if tenant_id is None else str(tenant_id)])


def use_all_tenants(conn: psycopg.Connection) -> None:
    """Widen the current transaction to every tenant, for a lookup by a global identifier."""
    conn.execute("SELECT set_config('app.tenant_id', '', true), set_config('app.all_tenants', 'on', true)")


@contextmanager
def transaction(*, tenant_id: object | None = None, all_tenants: bool = False) -> Iterator[psycopg.Connection]:
    """A connection inside one transaction, as role ec_app, scoped to ``tenant_id`` (or to every
    tenant with ``all_tenants``) for row-level security."""
    with sync_pool().connection() as conn, conn.transaction():
        ensure_schema_current(conn)  # before the role exists to switch to, say what is missing
        conn.execute(_BEGIN, _begin_arguments(tenant_id, all_tenants))
        yield conn


@asynccontextmanager
async def async_transaction(
    *, tenant_id: object | None = None, all_tenants: bool = False
) -> AsyncIterator[psycopg.AsyncConnection]:
    """The async twin of ``transaction()``."""
    pool = await async_pool()
    async with pool.connection() as conn, conn.transaction():
        await ensure_schema_current_async(conn)
        await conn.execute(_BEGIN, _begin_arguments(tenant_id, all_tenants))
        yield conn


def connect_direct(*, autocommit: bool = False) -> psycopg.Connection:
    """One connection that bypasses PgBouncer, for migrations and other session-scoped ops work."""
    import psycopg

    settings = config.database()
    return psycopg.connect(
        settings.conninfo(direct=True), autocommit=autocommit, **connection_kwargs())


def close_pools() -> None:
    """Close every pool and forget the schema check (tests, shutdown)."""
    global _sync_pool, _schema_checked
    with _lock:
        if _sync_pool is not None:
            _sync_pool.close()
            _sync_pool = None
        for loop, pool in list(_async_pools.items()):
            if not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(pool.close())
            _async_pools.pop(loop, None)
        _schema_checked = False
