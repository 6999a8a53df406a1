"""The lookups IdPs repeat on every sync stay index-backed under row-level security.

Under RLS Postgres checks the tenant policy before any condition that passes a column to a function
not marked LEAKPROOF (lower(), a SQL function), so such a condition cannot be an index condition and
the lookup reads every user of the tenant. These tests record the statements the code really runs and
ask Postgres for their plans as the application role, with sequential scans priced out of reach.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from shared import db
from shared.tenants.registry import get_tenant

Recorded = list[tuple[Any, Any]]


@contextmanager
def recording(matching: str) -> Iterator[Recorded]:
    """Record every statement whose text contains ``matching``, with its arguments."""
    recorded: Recorded = []
    original = psycopg.Cursor.execute

    def execute(cursor: psycopg.Cursor, query: Any, params: Any = None, **options: Any) -> Any:
        text = query if isinstance(query, str) else query.as_string(cursor.connection)
        if matching in text:
            recorded.append((text, params))
        return original(cursor, query, params, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg.Cursor, "execute", execute)
        yield recorded


def plan_of(tenant_slug: str, query: str, params: Any) -> str:
    with db.transaction(tenant_slug=tenant_slug) as conn:
        tenant = get_tenant(conn, tenant_slug)
        db.use_tenant(conn, tenant.id)
        conn.execute("SET LOCAL enable_seqscan = off")
        rows = conn.execute(f"EXPLAIN {query}", params).fetchall()
        conn.rollback()
    return "\n".join(row[0] for row in rows)


def index_conditions(plan: str) -> list[str]:
    return re.findall(r"Index Cond: (.*)", plan)


def assert_index_backed(tenant_slug: str, recorded: Recorded, column: str) -> None:
    assert recorded, "the lookup was not run"
    for query, params in recorded:
        plan = plan_of(tenant_slug, query, params)
        assert "Seq Scan" not in plan, plan
        assert any(column in condition for condition in index_conditions(plan)), plan


@pytest.fixture
def populated(scim):
    for number in range(5):
        scim.create_user(f"user{number}@acme.com", externalId=f"ext-{number}",
                         emails=[{"type": "work", "value": f"user{number}@acme.com", "primary": True}])
    return scim


def test_scim_user_name_filter_uses_the_user_name_index(populated):
    with recording("FROM scim_users") as recorded:
        answer = populated.call("GET", "/Users", query={"filter": 'userName eq "USER3@acme.com"'})
    assert answer.body["totalResults"] == 1
    assert_index_backed("acme", recorded, "user_name_key")


def test_scim_external_id_filter_uses_the_external_id_index(populated):
    with recording("FROM scim_users") as recorded:
        answer = populated.call("GET", "/Users", query={"filter": 'externalId eq "ext-2"'})
    assert answer.body["totalResults"] == 1
    assert_index_backed("acme", recorded, "external_id")


def test_entra_work_email_filter_uses_the_email_index(populated):
    with recording("FROM scim_users") as recorded:
        answer = populated.call("GET", "/Users",
                                query={"filter": 'emails[type eq "work"].value eq "User4@acme.com"'})
    assert answer.body["totalResults"] == 1
    assert_index_backed("acme", recorded, "value_key")


def test_identity_lookup_by_email_uses_the_email_index(populated):
    with recording("primary_email_key") as recorded:
        populated.create_user("newcomer@acme.com", emails=[{"type": "work", "value": "Newcomer@acme.com"}])
    assert_index_backed("acme", recorded, "primary_email_key")


def assert_no_scan(tenant_slug: str, recorded: Recorded) -> None:
    assert recorded, "nothing was run"
    for query, params in recorded:
        plan = plan_of(tenant_slug, query, params)
        assert "Seq Scan" not in plan, plan


def test_member_changes_find_users_and_memberships_by_key(populated):
    # Before ids were compared as uuid, a member added to a group read every user of the tenant.
    users = populated.call("GET", "/Users").body["Resources"]
    group = populated.create_group("Sales", [users[0]["id"]])
    with recording("= ANY(") as recorded:
        populated.patch(f"/Groups/{group['id']}",
                        {"op": "add", "path": "members", "value": [{"value": users[1]["id"]}]},
                        {"op": "remove", "path": f'members[value eq "{users[0]["id"]}"]'})
    assert len(recorded) >= 3  # who exists, the insert, the delete
    assert_no_scan("acme", recorded)


def test_an_hrms_page_finds_users_by_the_email_index(make_tenant):
    from shared.hrms import runs, store
    from shared.hrms.connectors.base import Employee

    tenant = make_tenant("hrmsplan", domains=("hrmsplan.com",))
    with db.transaction(tenant_id=tenant.id) as conn:
        run = runs.request_run(conn, tenant.id, "full", requested_by="test")
    page = [Employee(hrms_id=str(number), email=f"p{number}@hrmsplan.com", first_name="P", last_name="Q")
            for number in range(3)]
    with recording("INSERT INTO hrms_employees") as recorded, db.transaction(tenant_id=tenant.id) as conn:
        store.upsert_page(conn, tenant.id, run.id, page, {})
    assert_index_backed("hrmsplan", recorded, "primary_email_key")
