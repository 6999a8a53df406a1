"""The employee context kept per tenant: pages upserted in one statement, departures, lookups. Plain SQL.

Contract (tests/hrms/test_store.py):
- ``upsert_page`` writes a page of employees in one statement and returns its counts: ``seen`` (the page's
  employees), ``created`` (new to us), ``updated`` (profile or mapped context changed, or back after being
  departed), ``unmatched`` (no user to tie them to). Unchanged employees only get their ``seen_at`` and
  ``seen_run``. An employee keeps the user it was matched to (the stored HRMS id); one not yet matched is
  matched by email to a user of the tenant that is not deleted. Writing the same page twice changes nothing
  the second time but ``seen_at``;
- ``upsert_rows_one_by_one`` does the same a statement per employee (the benchmark's baseline only);
- ``mark_departed`` marks every employee a full run did not see as departed (never deletes them) and
  returns how many;
- ``context_of`` returns what the context API shows for a user.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg

from shared.hrms.connectors.base import Employee


def mapped_context(employee: Employee, mapping: Mapping[str, str]) -> dict[str, Any]:
    """The tenant's context keys, from the source attributes they name (None when the HRMS gave none)."""
    return {key: employee.attributes.get(source) for key, source in mapping.items()}


def _row(employee: Employee, mapping: Mapping[str, str]) -> dict[str, Any]:
    status = employee.status if employee.status in ("onboarding", "active", "leave", "inactive") else "active"
    return {"hrms_id": employee.hrms_id, "email": employee.email, "profile": employee.profile(),
            "context": mapped_context(employee, mapping), "status": status}


# Driven by the page alone: ON CONFLICT finds each known employee by its primary key and users are found
# by index (primary_email_key: under row-level security lower(primary_email) could not use one), so a page
# costs the same however many employees the tenant has (no join whose plan depends on statistics of a
# table the sync itself is filling). One live user per email: users_email_per_tenant is unique.
_UPSERT = """
WITH written AS (
    INSERT INTO hrms_employees AS e (tenant_id, hrms_id, user_id, email, profile, context, digest, status, seen_run)
    SELECT %(tenant)s, p.hrms_id,
           (SELECT u.id FROM users u WHERE u.tenant_id = %(tenant)s AND p.email IS NOT NULL
              AND u.primary_email_key = lower(p.email) AND u.status <> 'deleted' LIMIT 1),
           p.email, p.profile, p.context, md5(p.profile::text || p.context::text), p.status, %(run)s
    -- One JSON document per page: arrays of JSON texts would cost an escaping pass per character.
    FROM jsonb_to_recordset(%(page)s::jsonb) AS p(hrms_id text, email text, profile jsonb, context jsonb,
                                                   status text)
    ON CONFLICT (tenant_id, hrms_id) DO UPDATE SET
        seen_at = now(), seen_run = excluded.seen_run,
        user_id = coalesce((SELECT u.id FROM users u WHERE u.id = e.user_id AND u.status <> 'deleted'),
                           excluded.user_id),
        email = excluded.email, profile = excluded.profile, context = excluded.context, digest = excluded.digest,
        status = excluded.status, departed_at = NULL,
        changed_at = CASE WHEN e.digest IS DISTINCT FROM excluded.digest OR e.departed_at IS NOT NULL
                          THEN statement_timestamp() ELSE e.changed_at END
    RETURNING xmax = 0 AS created, changed_at = statement_timestamp() AS changed, user_id IS NULL AS unmatched
)
SELECT count(*), count(*) FILTER (WHERE created), count(*) FILTER (WHERE changed AND NOT created),
       count(*) FILTER (WHERE unmatched)
FROM written
"""


def upsert_page(conn: psycopg.Connection, tenant_id: str, run_id: str, employees: Iterable[Employee],
                mapping: Mapping[str, str]) -> dict[str, int]:
    rows = [_row(employee, mapping) for employee in employees]
    if not rows:
        return {"seen": 0, "created": 0, "updated": 0, "unmatched": 0}
    page = json.dumps(rows, separators=(",", ":"), default=str)
    seen, created, updated, unmatched = conn.execute(
        _UPSERT, {"tenant": tenant_id, "run": run_id, "page": page}).fetchone()
    return {"seen": seen, "created": created, "updated": updated, "unmatched": unmatched}


def upsert_rows_one_by_one(conn: psycopg.Connection, tenant_id: str, run_id: str, employees: Iterable[Employee],
                           mapping: Mapping[str, str]) -> dict[str, int]:
    """The same writes, one statement per employee: the baseline the benchmark compares against."""
    totals = {"seen": 0, "created": 0, "updated": 0, "unmatched": 0}
    for employee in employees:
        for name, value in upsert_page(conn, tenant_id, run_id, [employee], mapping).items():
            totals[name] += value
    return totals


def mark_departed(conn: psycopg.Connection, tenant_id: str, run_id: str) -> int:
    """Every employee the full run ``run_id`` did not see is departed (kept, with their context)."""
    return conn.execute(
        "WITH gone AS (UPDATE hrms_employees SET status = 'departed', departed_at = now(), changed_at = now()"
        " WHERE tenant_id = %s AND seen_run IS DISTINCT FROM %s AND departed_at IS NULL RETURNING 1)"
        " SELECT count(*) FROM gone", [tenant_id, run_id]).fetchone()[0]


def context_of(conn: psycopg.Connection, tenant_id: str, user_id: str) -> dict[str, Any] | None:
    """The HRMS record of a user (the most recently seen one when the HRMS has several), with its manager."""
    row = conn.execute(
        "SELECT e.hrms_id, e.profile, e.context, e.status, e.seen_at, e.changed_at, e.departed_at,"
        " m.user_id::text FROM hrms_employees e"
        " LEFT JOIN hrms_employees m ON m.tenant_id = e.tenant_id AND m.hrms_id = e.profile ->> 'manager_hrms_id'"
        " WHERE e.tenant_id = %s AND e.user_id = %s ORDER BY e.departed_at IS NULL DESC, e.seen_at DESC LIMIT 1",
        [tenant_id, user_id]).fetchone()
    if row is None:
        return None
    hrms_id, profile, context, status, seen_at, changed_at, departed_at, manager_user = row
    has_manager = profile.get("manager_hrms_id") or profile.get("manager_email")
    return {
        "hrms_id": hrms_id, "status": status, "email": profile.get("email"),
        "first_name": profile.get("first_name"), "last_name": profile.get("last_name"),
        "job_title": profile.get("job_title"), "department": profile.get("department"),
        "location": profile.get("location"), "start_date": profile.get("start_date"),
        "employment_status": profile.get("status"),
        "manager": {"hrms_id": profile.get("manager_hrms_id"), "email": profile.get("manager_email"),
                    "user_id": manager_user} if has_manager else None,
        "context": context, "seen_at": seen_at.isoformat(), "changed_at": changed_at.isoformat(),
        "departed_at": departed_at.isoformat() if departed_at else None,
    }

