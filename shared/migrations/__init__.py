"""Ordered SQL migrations, applied by ``python -m shared.cli migrate``.

Contract (tests/shared/test_migrations.py):
- a migration is a file ``NNNN_name.sql`` in this folder; migrations apply in version order, once each;
- ``schema_migrations`` records each one's version, name, checksum (SHA-256 of the file with LF line
  ends) and when it was applied;
- an applied migration whose file has changed is an error naming the file: write a new migration;
- an applied version that this code does not ship is an error for ``migrate`` (older code must not
  migrate a newer database); the running app tolerates it, so that a rolling deploy can migrate
  first;
- one ``migrate`` at a time: a run takes a transaction-scoped advisory lock (it is released by
  commit, so it also works where session locks do not) and is one transaction, so concurrent runs
  wait and then find nothing to do, and a failing migration leaves nothing half applied;
- ``migrate`` connects directly (``DATABASE_DIRECT_URL`` or ``POSTGRES_DIRECT_PORT``), never through
  PgBouncer; the app only reads, through ``pending_migrations``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

MIGRATIONS_DIR = Path(__file__).parent
_FILE_NAME = re.compile(r"(?P<version>\d{4})_(?P<label>[a-z0-9_]+)\.sql")
# Any fixed number: every migrate run contends for the same transaction-scoped lock.
MIGRATION_LOCK_KEY = 7_202_611_270

MIGRATIONS_TABLE_EXISTS_QUERY = "SELECT to_regclass('public.schema_migrations') IS NOT NULL"
APPLIED_MIGRATIONS_QUERY = "SELECT version, checksum FROM schema_migrations ORDER BY version"
_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


class MigrationError(RuntimeError):
    """Migrations cannot be applied as they stand; the message says why and what to do."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str
    checksum: str


def _checksum(sql: str) -> str:
    return hashlib.sha256(sql.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in a folder, in version order; a misnamed or duplicate file is an error."""
    migrations: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise MigrationError(
                f"migration file {path.name} is misnamed: use NNNN_lowercase_words.sql")
        version = match["version"]
        if version in migrations:
            raise MigrationError(
                f"migration files {migrations[version].name} and {path.name} share version {version}")
        sql = path.read_text(encoding="utf-8")
        migrations[version] = Migration(version, path.name, sql, _checksum(sql))
    return [migrations[version] for version in sorted(migrations)]


@cache
def shipped_migrations() -> tuple[Migration, ...]:
    """The migrations this code ships."""
    return tuple(load_migrations())


def applied_migrations(conn: psycopg.Connection) -> dict[str, str]:
    """Version -> checksum of every migration the database has applied."""
    if not conn.execute(MIGRATIONS_TABLE_EXISTS_QUERY).fetchone()[0]:
        return {}
    return dict(conn.execute(APPLIED_MIGRATIONS_QUERY).fetchall())


def pending_migrations(
    applied: dict[str, str], migrations: tuple[Migration, ...] | list[Migration] | None = None
) -> list[Migration]:
    """The shipped migrations the database has not applied."""
    shipped = shipped_migrations() if migrations is None else migrations
    return [migration for migration in shipped if migration.version not in applied]


def _check_history(applied: dict[str, str], migrations: list[Migration]) -> None:
    by_version = {migration.version: migration for migration in migrations}
    unknown = sorted(set(applied) - set(by_version))
    if unknown:
        raise MigrationError(
            f"the database has migration(s) {', '.join(unknown)} that this code does not ship: "
            "it was migrated by newer code; deploy that code instead of migrating with this one")
    for version, checksum in applied.items():
        if by_version[version].checksum != checksum:
            raise MigrationError(
                f"migration {by_version[version].name} was edited after it was applied (checksum "
                "differs): restore the file and put the change in a new migration")


def migrate(conn: psycopg.Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply the pending migrations in one transaction; returns those applied (empty: current)."""
    migrations = list(shipped_migrations()) if migrations is None else migrations
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK_KEY])
        conn.execute(_CREATE_MIGRATIONS_TABLE)
        applied = dict(conn.execute(APPLIED_MIGRATIONS_QUERY).fetchall())
        _check_history(applied, migrations)
        pending = pending_migrations(applied, migrations)
        for migration in pending:
            try:
                conn.execute(migration.sql.encode("utf-8"))
            except Exception as error:
                raise MigrationError(f"migration {migration.name} failed: {error}") from error
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    return pending


def apply_migrations() -> list[Migration]:
    """Migrate the configured database over a direct connection; returns what was applied."""
    from shared.db import connect_direct

    with connect_direct() as conn:
        return migrate(conn)
