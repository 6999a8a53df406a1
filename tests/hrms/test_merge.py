"""The Merge connector (shared/hrms/connectors/merge.py) against its stand-in (local/merge.py): Merge's cursor
paging and resuming, incremental syncs and deletions, the mapping, Scopes, retries and refusals, pacing."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from local.hrms_people import Workforce
from local.merge import MergeStandIn
from shared import config
from shared.hrms import connectors
from shared.hrms.connectors import merge
from shared.hrms.connectors.base import ConnectorError, ConnectorSettings, Employee
from shared.hrms.connectors.merge import FIXED_ATTRIBUTES, MergeConnector, connect
from shared.http import PACER, RetryLater, RetryPolicy

EXPECTED_STATUS = {"onboarding": "onboarding", "active": "active", "leave": "active", "inactive": "inactive"}


@pytest.fixture(autouse=True)
def loopback(isolated_settings, monkeypatch):
    """The outbound client may reach the stand-in over http; retries wait milliseconds, not seconds."""
    monkeypatch.setenv("OUTBOUND_ALLOWED_LOCAL_HOSTS", "127.0.0.1")
    config.reset()
    PACER.reset()
    monkeypatch.setattr(merge, "RETRY", RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02))


def serve(size: int, **options) -> MergeStandIn:
    return MergeStandIn(Workforce(size), **options)


def settings(standin: MergeStandIn, *, api_key: str | None = None, account_token: str | None = None,
             pace: bool = False) -> ConnectorSettings:
    credential = json.dumps({"api_key": api_key or standin.api_key,
                             "account_token": account_token or standin.account_token})
    return ConnectorSettings(standin.hris_base_url, credential, pace=pace)


def make(standin: MergeStandIn, **options) -> MergeConnector:
    return connect(settings(standin, **options))


def sync(connector: MergeConnector, *, cursor: str | None = None,
         changed_since: datetime | None = None) -> tuple[list[Employee], int]:
    employees, pages = [], 0
    while True:
        page = connector.page(cursor, changed_since=changed_since)
        employees += page.employees
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return employees, pages


def listings(standin: MergeStandIn) -> list[dict[str, list[str]]]:
    """The query of every employees listing the stand-in answered."""
    return [parse_qs(urlsplit(target).query) for _, target, _ in standin.requests_log
            if urlsplit(target).path.endswith("/employees")]


def merge_ids(standin: MergeStandIn, indexes) -> list[str]:
    return [standin.employee_id(standin.workforce.first_id + index) for index in indexes]


# --- paging ---------------------------------------------------------------------------------------------------


def test_a_full_sync_follows_merges_cursor_and_returns_every_employee_once():
    with serve(260) as standin:
        employees, pages = sync(make(standin))
    assert pages == 3
    assert [employee.hrms_id for employee in employees] == merge_ids(standin, range(260))
    queries = listings(standin)
    assert [query.get("cursor") is None for query in queries] == [True, False, False]
    for query in queries:
        assert query["page_size"] == ["100"]
        assert query["include_deleted_data"] == ["true"]
        assert query["expand"] == ["employments,groups,manager,work_location"]


def test_a_size_that_is_an_exact_multiple_of_the_page_size_ends_without_an_empty_page():
    with serve(200) as standin:
        employees, pages = sync(make(standin))
    assert (len(employees), len({employee.hrms_id for employee in employees}), pages) == (200, 200, 2)


def test_an_empty_hrms_and_a_single_employee():
    with serve(0) as empty:
        page = make(empty).page(None)
    assert (page.employees, page.next_cursor) == ([], None)
    with serve(1) as single:
        page = make(single).page(None)
    assert len(page.employees) == 1
    assert page.next_cursor is None
    assert page.employees[0].manager_hrms_id is None


def test_a_stored_cursor_continues_in_a_new_connector():
    with serve(230) as standin:
        first = make(standin).page(None)
        rest, pages = sync(make(standin), cursor=first.next_cursor)
    assert pages == 2
    assert [employee.hrms_id for employee in first.employees + rest] == merge_ids(standin, range(230))


def test_a_stored_cursor_is_valid_for_another_stand_in_process_with_the_same_people():
    with serve(150) as standin:
        cursor = make(standin).page(None).next_cursor
    with serve(150) as restarted:
        page = make(restarted).page(cursor)
    assert [employee.hrms_id for employee in page.employees] == merge_ids(restarted, range(100, 150))


# --- incremental ----------------------------------------------------------------------------------------------


def test_an_incremental_sync_returns_only_the_changed_employees_passing_modified_after_on_every_page():
    assert MergeConnector.supports_incremental is True
    assert connectors.supports_incremental("merge") is True
    with serve(300) as standin:
        since = datetime.now(UTC) - timedelta(seconds=1)
        changed = [3, *range(100, 230)]
        standin.change(changed)
        employees, pages = sync(make(standin), changed_since=since)
        queries = listings(standin)
    assert pages == 2
    assert sorted(employee.hrms_id for employee in employees) == sorted(merge_ids(standin, changed))
    assert all(query["modified_after"] == [since.isoformat(timespec="microseconds").replace("+00:00", "Z")]
               for query in queries)


def test_departed_employees_come_back_deleted_as_inactive_in_full_and_incremental_syncs():
    with serve(30) as standin:
        since = datetime.now(UTC) - timedelta(seconds=1)
        standin.depart([5])
        full = {employee.hrms_id: employee for employee in sync(make(standin))[0]}
        changed = sync(make(standin), changed_since=since)[0]
    [departed_id] = merge_ids(standin, [5])
    assert len(full) == 30
    assert full[departed_id].status == "inactive"
    assert full[departed_id].attributes["remote_was_deleted"] is True
    assert [employee.hrms_id for employee in changed] == [departed_id]


def test_a_naive_changed_since_is_taken_as_utc():
    with serve(5) as standin:
        make(standin).page(None, changed_since=datetime(2026, 1, 2, 3, 4, 5))
        [query] = listings(standin)
    assert query["modified_after"] == ["2026-01-02T03:04:05.000000Z"]


# --- mapping --------------------------------------------------------------------------------------------------


def test_every_employee_field_is_mapped_from_the_expanded_relations():
    with serve(40) as standin:
        employees = {employee.hrms_id: employee for employee in sync(make(standin))[0]}
    workforce = standin.workforce
    person = workforce.person(17)
    manager = workforce.person(person.manager_index)
    [employee_id, manager_id] = merge_ids(standin, [17, person.manager_index])
    employee = employees[employee_id]
    assert employee.profile() == {
        "hrms_id": employee_id, "email": person.email, "first_name": person.first_name,
        "last_name": person.last_name, "job_title": person.title, "department": person.department,
        "location": person.office, "manager_hrms_id": manager_id, "manager_email": manager.email,
        "status": EXPECTED_STATUS[person.status], "start_date": person.hire_date}
    attributes = employee.attributes
    assert attributes["manager"] == manager_id
    assert attributes["groups"] == [standin.group_id("team", (person.office_id, person.department_id)),
                                    standin.group_id("department", person.department_id)]
    assert len(attributes["employments"]) == 1
    assert isinstance(attributes["employments"][0], str)
    assert attributes["work_location"] == standin._account(None).derived_id("location", person.office_id)
    assert attributes["custom_fields.competencies"] == person.competencies
    assert attributes["custom_fields.review_rating"] == person.review_rating
    assert (attributes["remote_id"], attributes["remote_was_deleted"]) == (str(person.id), False)
    assert attributes["start_date"] == f"{person.hire_date}T00:00:00Z"
    # Null fields are left out, so that a page never names a field Scopes may have turned off.
    assert "preferred_name" not in attributes
    assert "ssn" not in attributes
    assert "remote_data" not in attributes


def test_statuses_are_normalized_leave_being_active_in_merges_model():
    with serve(300) as standin:
        employees = sync(make(standin))[0]
    expected = dict(zip(merge_ids(standin, range(300)),
                        (EXPECTED_STATUS[person.status] for person in standin.workforce.people()), strict=True))
    assert {employee.hrms_id: employee.status for employee in employees} == expected
    assert set(expected.values()) == {"onboarding", "active", "inactive"}


@pytest.mark.parametrize(("raw", "expected"), [
    ({"employment_status": "PENDING"}, "onboarding"),
    ({"employment_status": "INACTIVE"}, "inactive"),
    ({"employment_status": "ACTIVE", "remote_was_deleted": True}, "inactive"),
    ({"employment_status": None, "termination_date": "2001-01-01T00:00:00Z"}, "inactive"),
    ({"employment_status": None, "termination_date": "2999-01-01T00:00:00Z"}, "active"),
    ({}, "active"),
])
def test_status_normalization(raw, expected):
    assert merge._status(raw) == expected


def test_unexpanded_or_odd_relations_map_to_none_without_raising():
    raw = {"id": "e-1", "work_email": 5, "first_name": "Ada", "employments": ["emp-1"], "groups": ["g-1"],
           "manager": "e-0", "work_location": "loc-1", "start_date": "someday", "custom_fields": None,
           "employment_status": "ACTIVE"}
    employee = MergeConnector._employee(raw)
    assert employee.profile() == {
        "hrms_id": "e-1", "email": None, "first_name": "Ada", "last_name": None, "job_title": None,
        "department": None, "location": None, "manager_hrms_id": "e-0", "manager_email": None,
        "status": "active", "start_date": None}
    assert employee.attributes == {"id": "e-1", "first_name": "Ada", "employments": ["emp-1"], "groups": ["g-1"],
                                   "manager": "e-0", "work_location": "loc-1", "start_date": "someday",
                                   "employment_status": "ACTIVE", "work_email": 5}
    latest = merge._job_title([{"job_title": "Old", "effective_date": "2020-01-01T00:00:00Z"},
                               {"job_title": "New", "effective_date": "2024-01-01T00:00:00Z"},
                               {"job_title": "Gone", "effective_date": "2025-01-01T00:00:00Z",
                                "remote_was_deleted": True}])
    assert latest == "New"
    assert MergeConnector._employee({"first_name": "no id"}) is None


def test_attributes_are_the_fixed_fields_and_the_custom_field_keys():
    with serve(20) as standin:
        connector = make(standin)
        attributes = connector.attributes()
        employees = sync(connector)[0]
    assert attributes == [*FIXED_ATTRIBUTES, "custom_fields.competencies", "custom_fields.review_rating"]
    for employee in employees:
        assert set(employee.attributes) <= set(attributes)


def test_fields_turned_off_in_scopes_are_none_and_not_listed():
    disabled = {"employments", "groups", "manager", "custom_fields", "work_email"}
    with serve(20, disabled_fields=disabled) as standin:
        connector = make(standin)
        attributes = connector.attributes()
        employees = sync(connector)[0]
    assert attributes == [name for name in FIXED_ATTRIBUTES if name not in disabled]
    for employee in employees:
        assert (employee.job_title, employee.department, employee.manager_hrms_id, employee.email) == (None,) * 4
        assert employee.location is not None
        assert set(employee.attributes) <= set(attributes)


def test_a_plan_without_scopes_means_no_field_is_off():
    with serve(5) as standin:
        standin.fail_next(403, path_contains="scopes")
        attributes = make(standin).attributes()
    assert attributes[:len(FIXED_ATTRIBUTES)] == list(FIXED_ATTRIBUTES)


# --- failures -------------------------------------------------------------------------------------------------


def test_a_429_with_retry_after_is_waited_out_and_retried():
    with serve(10) as standin:
        standin.fail_next(429, retry_after=1)
        started = time.monotonic()
        page = make(standin).page(None)
        elapsed = time.monotonic() - started
    assert len(page.employees) == 10
    assert [entry[2] for entry in standin.requests_log] == [429, 200]
    assert elapsed >= 0.9


def test_server_errors_and_dropped_connections_are_retried():
    with serve(10) as standin:
        standin.drop_next()
        standin.fail_next(502)
        page = make(standin).page(None)
    assert len(page.employees) == 10
    assert [entry[2] for entry in standin.requests_log] == [0, 502, 200]


def test_the_retries_are_bounded_and_end_in_a_retryable_error():
    with serve(10) as standin:
        standin.fail_next(503, count=10)
        with pytest.raises(ConnectorError) as error:
            make(standin).page(None)
        assert standin.requests_count == merge.RETRY.max_attempts
    assert error.value.retryable is True


def test_a_500_is_retryable():
    with serve(10) as standin:
        standin.fail_next(500)
        with pytest.raises(ConnectorError) as error:
            make(standin).page(None)
    assert error.value.retryable is True


@pytest.mark.parametrize("wrong", ["api_key", "account_token"])
def test_a_refused_credential_is_not_retryable_and_says_what_to_check(wrong):
    with serve(10) as standin:
        with pytest.raises(ConnectorError) as error:
            make(standin, **{wrong: "not-the-secret"}).page(None)
        assert standin.requests_count == 1
    assert error.value.retryable is False
    assert "401" in str(error.value)
    assert "account_token" in str(error.value)
    assert "api_key" in str(error.value)
    assert "not-the-secret" not in str(error.value)
    assert standin.api_key not in str(error.value)


def test_a_forbidden_account_is_not_retryable():
    with serve(10) as standin:
        standin.fail_next(403)
        with pytest.raises(ConnectorError) as error:
            make(standin).page(None)
    assert error.value.retryable is False
    assert "403" in str(error.value)


def test_a_cursor_merge_does_not_accept_is_not_retryable():
    with serve(10) as standin:
        with pytest.raises(ConnectorError) as error:
            make(standin).page("bm90IGEgY3Vyc29y")
    assert error.value.retryable is False
    assert "Invalid cursor" in str(error.value)
    with pytest.raises(ConnectorError):
        make(standin).page("")


def test_a_long_retry_after_propagates_as_retry_later():
    with serve(10) as standin:
        standin.fail_next(429, retry_after=600)
        with pytest.raises(RetryLater) as error:
            make(standin).page(None)
    assert error.value.retry_after == 600


def test_a_credential_without_its_fields_is_refused_before_any_request():
    with pytest.raises(ConnectorError) as error:
        connect(ConnectorSettings("https://api.merge.dev/api/hris/v1", json.dumps({"api_key": "k"})))
    assert error.value.retryable is False
    assert "account_token" in str(error.value)


# --- pacing and the registry ----------------------------------------------------------------------------------


def test_pacing_builds_the_client_with_the_lowest_plans_limit():
    with serve(1) as standin:
        paced, unpaced = make(standin, pace=True), make(standin, pace=False)
        assert paced._http().interval == pytest.approx(60 / 100)
        assert unpaced._http().interval == 0
        paced.close()
        unpaced.close()
    assert MergeConnector.requests_per_minute == 100


def test_the_registry_connects_merge():
    with serve(3) as standin:
        connector = connectors.connect("merge", settings(standin))
        assert isinstance(connector, MergeConnector)
        assert len(connector.page(None).employees) == 3
        connector.close()
