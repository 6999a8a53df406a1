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
- ``transaction()`` commits when its block ends, rolls back when it raises, and the tenant it was
  given is visible to row-level security as ``current_setting('app.tenant_id')`` inside it only.
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

_BEGIN = "SELECT set_config('app.tenant_id', %s, true), set_config('statement_timeout', %s, true)"


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


def _begin_arguments(tenant_id: object | None) -> tuple[str, str]:
    timeout = config.database().statement_timeout_ms
    return ("" if tenant_id is None else str(tenant_id), f"{timeout}ms")


@contextmanager
def transaction(*, tenant_id: object | None = None) -> Iterator[psycopg.Connection]:
    """A connection inside one transaction, scoped to ``tenant_id`` for row-level security."""
    with sync_pool().connection() as conn, conn.transaction():
        conn.execute(_BEGIN, _begin_arguments(tenant_id))
        ensure_schema_current(conn)
        yield conn


@asynccontextmanager
async def async_transaction(
    *, tenant_id: object | None = None
) -> AsyncIterator[psycopg.AsyncConnection]:
    """The async twin of ``transaction()``."""
    pool = await async_pool()
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(_BEGIN, _begin_arguments(tenant_id))
        await ensure_schema_current_async(conn)
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
