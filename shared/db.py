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
- ``transaction()`` runs in psycopg's pipeline mode: statements are sent without waiting and the
  connection waits only when the code reads a result, so ``BEGIN`` and its settings travel with the
  first query and writes whose results are not read travel together and with ``COMMIT``. Hence
  ``cursor.rowcount`` is unknown until a result is read (count with ``RETURNING`` instead), and a
  failing statement may raise at a later read or at the end of the block, which still rolls back;
  nested ``conn.transaction()`` blocks are savepoints;
- ``transaction()`` commits when its block ends, rolls back when it raises, and works as role
  ``ec_app``: row-level security shows it the rows of the tenant it was given
  (``current_setting('app.tenant_id')``), none of any tenant when it was given none, and every
  tenant's only when asked with ``all_tenants=True`` (lookups by a global identifier, retention);
  all of it ends with the transaction.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from shared import config

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

log = logging.getLogger(__name__)

POSTGRES_TOKEN_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"  # noqa: S105 - a scope
APPLICATION_NAME = "enterprise-connections"
# Serverless instances come and go: keep no idle connection for long, open none ahead of need.
# Connections are not checked on checkout (a round trip per transaction): idle ones are closed
# after POOL_MAX_IDLE_SECONDS, and a connection that breaks is discarded when it is returned.
POOL_MIN_SIZE = 0
POOL_MAX_IDLE_SECONDS = 120.0

# The role every transaction works as (created by migration 0002): only the grants the app needs,
# subject to row-level security whatever role the connection logged in as.
APP_ROLE = "ec_app"
_BEGIN = (
    "SELECT set_config('app.tenant_id', {tenant}, true), set_config('app.all_tenants', %s, true),"
    " set_config('statement_timeout', %s, true), set_config('role', %s, true)"
)
_BEGIN_FOR_TENANT_ID = _BEGIN.format(tenant="%s")
# A request that names its tenant by slug is scoped in the same round trip (tenants has no RLS).
_BEGIN_FOR_TENANT_SLUG = _BEGIN.format(tenant="coalesce((SELECT id::text FROM tenants WHERE slug = %s), '')")


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
        # transaction() sends BEGIN itself, with the transaction's settings, in one round trip.
        "autocommit": True,
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


def _begin(tenant_id: object | None, tenant_slug: str | None, all_tenants: bool) -> tuple[str, tuple[str, ...]]:
    if sum((tenant_id is not None, tenant_slug is not None, all_tenants)) > 1:
        raise ValueError("a transaction is scoped to one tenant or to all of them, not both")
    timeout = config.database().statement_timeout_ms
    rest = ("on" if all_tenants else "", f"{timeout}ms", APP_ROLE)
    if tenant_slug is not None:
        return _BEGIN_FOR_TENANT_SLUG, (tenant_slug, *rest)
    return _BEGIN_FOR_TENANT_ID, ("" if tenant_id is None else str(tenant_id), *rest)


# The scope a transaction is in, kept on its connection so that scoping again to the same tenant
# costs no round trip. transaction() sets it at BEGIN; "?" means unknown (scoped by slug).
_SCOPE = "_enterprise_connections_scope"


def use_tenant(conn: psycopg.Connection, tenant_id: object | None) -> None:
    """Narrow the current transaction to one tenant (after looking it up in the global registry),
    or with None to no tenant at all."""
    wanted = "" if tenant_id is None else str(tenant_id)
    if getattr(conn, _SCOPE, None) == wanted:
        return
    conn.execute("SELECT set_config('app.tenant_id', %s, true), set_config('app.all_tenants', '', true)", [wanted])
    setattr(conn, _SCOPE, wanted)


def note_tenant_scope(conn: psycopg.Connection, tenant_id: object) -> None:
    """Record that a transaction begun with ``tenant_slug`` is scoped to this tenant's id."""
    setattr(conn, _SCOPE, str(tenant_id))


def use_all_tenants(conn: psycopg.Connection) -> None:
    """Widen the current transaction to every tenant, for a lookup by a global identifier."""
    conn.execute("SELECT set_config('app.tenant_id', '', true), set_config('app.all_tenants', 'on', true)")
    setattr(conn, _SCOPE, "*")


@contextmanager
def transaction(
    *, tenant_id: object | None = None, tenant_slug: str | None = None, all_tenants: bool = False
) -> Iterator[psycopg.Connection]:
    """A connection inside one transaction, as role ec_app, scoped to one tenant (by id, or by slug:
    an unknown slug scopes to no tenant) or, with ``all_tenants``, to every tenant, for row-level
    security."""
    with sync_pool().connection() as conn:
        ensure_schema_current(conn)  # before the role exists to switch to, say what is missing
        statement, arguments = _begin(tenant_id, tenant_slug, all_tenants)
        scope = "*" if all_tenants else "?" if tenant_slug else "" if tenant_id is None else str(tenant_id)
        setattr(conn, _SCOPE, scope)
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                conn.execute(statement, arguments)
                yield conn
                conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise


def _rollback(conn: psycopg.Connection) -> None:
    if not conn.closed:
        try:
            conn.execute("ROLLBACK")
        except Exception:  # a broken connection: the pool discards it
            log.warning("rollback failed; the connection is dropped")


@asynccontextmanager
async def async_transaction(
    *, tenant_id: object | None = None, all_tenants: bool = False
) -> AsyncIterator[psycopg.AsyncConnection]:
    """The async twin of ``transaction()``, in pipeline mode too: a transaction whose results are not
    read until its end (a recorded send, say) costs one round trip."""
    pool = await async_pool()
    async with pool.connection() as conn:
        await ensure_schema_current_async(conn)
        statement, arguments = _begin(tenant_id, None, all_tenants)
        try:
            async with conn.pipeline():
                await conn.execute("BEGIN")
                await conn.execute(statement, arguments)
                yield conn
                await conn.execute("COMMIT")
        except BaseException:
            if not conn.closed:
                try:
                    await conn.execute("ROLLBACK")
                except Exception:
                    log.warning("rollback failed; the connection is dropped")
            raise


def connect_direct(*, autocommit: bool = False) -> psycopg.Connection:
    """One connection that bypasses PgBouncer, for migrations and other session-scoped ops work."""
    import psycopg

    settings = config.database()
    return psycopg.connect(settings.conninfo(direct=True), **{**connection_kwargs(), "autocommit": autocommit})


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
