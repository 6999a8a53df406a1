"""The Postgres role the app's managed identity logs in as: ``python -m shared.cli db app-role NAME``.

Contract (tests/shared/test_app_role.py):
- run by ops as the server's Entra administrator (the ops group), on a direct connection, after
  ``migrate`` (which creates ``ec_app``, the role holding the app's table grants);
- creates the Entra principal in the ``postgres`` database with ``pgaadauth_create_principal`` (or
  ``pgaadauth_create_principal_with_oid`` given the identity's object id, which needs no directory
  lookup by name), unless a role of that name exists already;
- then grants it, in the app's database, CONNECT and membership in ``ec_app``, and nothing else: the
  app works as ``ec_app`` in every transaction (shared/db.py), so it can neither change the schema nor
  bypass row-level security;
- refuses a role that could: a superuser, one with CREATEROLE, CREATEDB or BYPASSRLS, or one that
  owns objects in the app's database (an administrator's role, given by mistake);
- running it again changes nothing and says so.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared import config
from shared.db import APP_ROLE

if TYPE_CHECKING:
    import psycopg

# Where Azure's pgaadauth functions live and Entra roles are created.
ADMIN_DATABASE = "postgres"
_OBJECT_TYPES = ("service", "user", "group")


class AppRoleError(RuntimeError):
    """The role cannot be set up as asked; the message says why and what to do."""


@dataclass
class AppRoleReport:
    role: str
    database: str
    created: bool = False
    granted: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        created = "created" if self.created else "already present"
        granted = ", ".join(self.granted) if self.granted else "nothing new (grants already in place)"
        return [f"role {self.role}: {created}", f"granted in {self.database}: {granted}"]


def _connect(database: str | None) -> psycopg.Connection:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from shared.db import connection_kwargs

    conninfo = config.database().conninfo(direct=True)
    if database is not None:
        conninfo = make_conninfo(conninfo, dbname=database)
    kwargs = {**connection_kwargs(), "autocommit": True}
    try:
        return psycopg.connect(conninfo, **kwargs)
    except psycopg.OperationalError as error:
        target = conninfo_to_dict(conninfo)
        raise AppRoleError(f"cannot connect to {target.get('dbname')} on {target.get('host')} as "
                           f"{target.get('user')}: {str(error).strip()}") from None


def _create_principal(conn: psycopg.Connection, role: str, object_id: str | None, object_type: str) -> bool:
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
        return False
    has_pgaadauth = conn.execute(
        "SELECT to_regproc('pgaadauth_create_principal') IS NOT NULL").fetchone()[0]  # type: ignore[index]
    if not has_pgaadauth:
        raise AppRoleError(f"pgaadauth_create_principal is not in the {conn.info.dbname} database: connect to an "
                           "Azure flexible server with Entra authentication enabled, as its Entra administrator")
    if object_id is None:
        conn.execute("SELECT * FROM pgaadauth_create_principal(%s, false, false)", [role])
    else:
        conn.execute("SELECT * FROM pgaadauth_create_principal_with_oid(%s, %s, %s, false, false)",
                     [role, object_id, object_type])
    return True


def _refuse_powerful(conn: psycopg.Connection, role: str) -> None:
    row = conn.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles WHERE rolname = %s",
        [role]).fetchone()
    if row is None:
        raise AppRoleError(f"role {role} does not exist after it was created: check the identity's name")
    attributes = ("SUPERUSER", "CREATEROLE", "CREATEDB", "BYPASSRLS")
    powers = [name for name, held in zip(attributes, row, strict=True) if held]
    if powers:
        raise AppRoleError(f"role {role} has {', '.join(powers)}: the app must not log in as an administrator; "
                           "give the app identity's own name")
    owned = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
        " WHERE r.rolname = %s AND c.relnamespace = 'public'::regnamespace", [role]).fetchone()
    if owned and owned[0]:
        raise AppRoleError(f"role {role} owns {owned[0]} relation(s) in the app's schema: it is the role migrations "
                           "run as, not the app identity's")


def _grant(conn: psycopg.Connection, role: str, database: str) -> list[str]:
    from psycopg import sql

    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE]).fetchone():
        raise AppRoleError(f"role {APP_ROLE} does not exist yet: run `python -m shared.cli migrate` first")
    granted = []
    # PUBLIC may hold CONNECT by default; the grant is made explicit so that revoking PUBLIC's keeps the app in.
    explicit = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a"
        " WHERE d.datname = %s AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)"
        " AND a.privilege_type = 'CONNECT')", [database, role]).fetchone()
    if not (explicit and explicit[0]):
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database),
                                                                          sql.Identifier(role)))
        granted.append("CONNECT")
    member = conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", [role, APP_ROLE]).fetchone()
    if not (member and member[0]):
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(APP_ROLE), sql.Identifier(role)))
        granted.append(f"membership in {APP_ROLE}")
    return granted


def ensure_app_role(role: str, *, object_id: str | None = None, object_type: str = "service") -> AppRoleReport:
    """Create the identity's Postgres role if needed and give it exactly what the app needs."""
    if not role or len(role) > 63:
        raise AppRoleError("give the managed identity's name (1-63 characters), as POSTGRES_USER has it")
    if object_type not in _OBJECT_TYPES:
        raise AppRoleError(f"object type must be one of {', '.join(_OBJECT_TYPES)}")
    if object_id is not None:
        try:
            object_id = str(uuid.UUID(object_id))
        except ValueError:
            raise AppRoleError("the object id must be the identity's object (principal) id, a GUID") from None
    with _connect(None) as app_conn:
        report = AppRoleReport(role=role, database=app_conn.info.dbname)
        with _connect(ADMIN_DATABASE) as admin_conn:
            report.created = _create_principal(admin_conn, role, object_id, object_type)
        _refuse_powerful(app_conn, role)
        report.granted = _grant(app_conn, role, report.database)
    return report
