"""shared/migrations: each rule of its contract."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import psycopg
import pytest

from shared import migrations
from shared.migrations import Migration, MigrationError, load_migrations, migrate
from tests.stack import PROJECT_ROOT, PYTHON, base_environment


def _write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql)


@pytest.fixture
def conn(empty_database):
    with psycopg.connect(empty_database) as connection:
        yield connection


def test_migrations_apply_in_version_order_once_each_with_checksums(conn, tmp_path):
    _write(tmp_path, "0002_second.sql", "INSERT INTO log VALUES ('second');")
    _write(tmp_path, "0001_first.sql", "CREATE TABLE log (entry text); INSERT INTO log VALUES ('first');")
    shipped = load_migrations(tmp_path)
    assert [m.name for m in migrate(conn, shipped)] == ["0001_first.sql", "0002_second.sql"]
    assert migrate(conn, shipped) == []
    assert conn.execute("SELECT array_agg(entry) FROM log").fetchone()[0] == ["first", "second"]
    recorded = conn.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version").fetchall()
    assert recorded == [(m.version, m.name, m.checksum) for m in shipped]


def test_an_edited_applied_migration_is_an_error_naming_the_file(conn, tmp_path):
    _write(tmp_path, "0001_first.sql", "CREATE TABLE log (entry text);")
    migrate(conn, load_migrations(tmp_path))
    _write(tmp_path, "0001_first.sql", "CREATE TABLE log (entry text, extra int);")
    with pytest.raises(MigrationError, match=r"0001_first\.sql was edited after it was applied"):
        migrate(conn, load_migrations(tmp_path))


def test_line_endings_do_not_change_a_checksum(tmp_path):
    _write(tmp_path, "0001_first.sql", "CREATE TABLE a (b int);\nSELECT 1;\n")
    lf = load_migrations(tmp_path)[0].checksum
    (tmp_path / "0001_first.sql").write_bytes(b"CREATE TABLE a (b int);\r\nSELECT 1;\r\n")
    assert load_migrations(tmp_path)[0].checksum == lf


def test_a_database_migrated_by_newer_code_is_not_migrated_by_older_code(conn, tmp_path):
    _write(tmp_path, "0001_first.sql", "SELECT 1;")
    _write(tmp_path, "0002_newer.sql", "SELECT 2;")
    migrate(conn, load_migrations(tmp_path))
    (tmp_path / "0002_newer.sql").unlink()
    with pytest.raises(MigrationError, match="0002 that this code does not ship"):
        migrate(conn, load_migrations(tmp_path))


def test_a_failing_migration_leaves_nothing_applied(conn, tmp_path):
    _write(tmp_path, "0001_first.sql", "CREATE TABLE log (entry text);")
    _write(tmp_path, "0002_broken.sql", "INSERT INTO missing_table VALUES (1);")
    with pytest.raises(MigrationError, match=r"0002_broken\.sql failed"):
        migrate(conn, load_migrations(tmp_path))
    assert conn.execute("SELECT to_regclass('log')").fetchone()[0] is None
    assert migrations.applied_migrations(conn) == {}


@pytest.mark.parametrize("name", ["1_short.sql", "0001-dash.sql", "0001_Upper.sql"])
def test_a_misnamed_migration_file_is_an_error(tmp_path, name):
    _write(tmp_path, name, "SELECT 1;")
    with pytest.raises(MigrationError, match="misnamed"):
        load_migrations(tmp_path)


def test_two_files_with_one_version_are_an_error(tmp_path):
    _write(tmp_path, "0001_a.sql", "SELECT 1;")
    _write(tmp_path, "0001_b.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="share version 0001"):
        load_migrations(tmp_path)


def test_concurrent_migrate_runs_apply_each_migration_once(empty_database):
    # The first migration holds its transaction long enough for the second run to arrive meanwhile.
    slow = [Migration("0001", "0001_slow.sql", "SELECT pg_sleep(1); CREATE TABLE t (x int);", "c1"),
            Migration("0002", "0002_next.sql", "INSERT INTO t VALUES (1);", "c2")]
    start = threading.Barrier(2, timeout=20)
    results: dict[int, list[Migration] | BaseException] = {}

    def run(index: int) -> None:
        try:
            with psycopg.connect(empty_database) as connection:
                start.wait()
                results[index] = migrate(connection, slow)
        except BaseException as error:
            results[index] = error

    workers = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert sorted(len(result) for result in results.values()) == [0, 2], results
    with psycopg.connect(empty_database) as connection:
        assert connection.execute("SELECT count(*) FROM t").fetchone()[0] == 1


def test_the_shipped_migrations_are_well_formed_and_apply(conn):
    shipped = migrations.shipped_migrations()
    assert shipped, "the project ships at least one migration"
    assert [m.name for m in migrate(conn)] == [m.name for m in shipped]


def _cli(*arguments: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = base_environment() | {"DATABASE_URL": database_url}
    return subprocess.run([PYTHON, "-m", "shared.cli", "--no-local-settings", *arguments], env=env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True)


def test_cli_migrate_check_lists_pending_then_migrate_applies_them(empty_database):
    check = _cli("migrate", "--check", database_url=empty_database)
    assert check.returncode == 1
    assert "pending  0001_tenants.sql" in check.stdout
    applied = _cli("migrate", database_url=empty_database)
    assert applied.returncode == 0, applied.stderr
    assert "applied  0001_tenants.sql" in applied.stdout
    again = _cli("migrate", "--check", database_url=empty_database)
    assert (again.returncode, again.stdout.strip()) == (0, "schema is current")


def test_cli_reports_an_unreachable_database_in_one_line(tmp_path):
    result = _cli("migrate", database_url=f"postgresql://postgres@/nowhere?host={tmp_path}")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
