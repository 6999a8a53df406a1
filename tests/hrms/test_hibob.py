"""The HiBob connector (shared/hrms/connectors/hibob.py) against its stand-in (local/hibob.py): one search handed
out in pages, resuming from a stored cursor, the mapping, unreadable fields, retries and refusals, pacing."""

from __future__ import annotations

import json
import time

import pytest

from local.hibob import HiBobStandIn
from local.hrms_people import Workforce
from shared import config
from shared.hrms import connectors
from shared.hrms.connectors import hibob
from shared.hrms.connectors.base import ConnectorError, ConnectorSettings, Employee
from shared.hrms.connectors.hibob import HiBobConnector, connect
from shared.http import PACER, RetryLater, RetryPolicy


@pytest.fixture(autouse=True)
def loopback(isolated_settings, monkeypatch):
    """The outbound client may reach the stand-in over http; retries wait milliseconds, not seconds."""
    monkeypatch.setenv("OUTBOUND_ALLOWED_LOCAL_HOSTS", "127.0.0.1")
    config.reset()
    PACER.reset()
    monkeypatch.setattr(hibob, "RETRY", RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02))


def serve(size: int, **options) -> HiBobStandIn:
    return HiBobStandIn(Workforce(size), **options)


def settings(standin: HiBobStandIn, *, token: str | None = None, pace: bool = False) -> ConnectorSettings:
    credential = json.dumps({"service_user_id": standin.service_user_id, "token": token or standin.token})
    return ConnectorSettings(standin.base_url, credential, pace=pace)


def make(standin: HiBobStandIn, *, page_size: int = 100, **options) -> HiBobConnector:
    return connect(settings(standin, **options), page_size=page_size)


def sync(connector: HiBobConnector, cursor: str | None = None) -> tuple[list[Employee], list[str | None]]:
    """Every page from ``cursor`` on: the employees and the cursors handed out."""
    employees, cursors = [], []
    while True:
        page = connector.page(cursor)
        employees += page.employees
        cursors.append(page.next_cursor)
        cursor = page.next_cursor
        if cursor is None:
            return employees, cursors


def searches(standin: HiBobStandIn) -> list[tuple[str, str, int]]:
    return [entry for entry in standin.requests_log if entry[1] == "/v1/people/search"]


def expected_ids(standin: HiBobStandIn) -> list[str]:
    return sorted((str(person.id) for person in standin.workforce.people()), key=int)


# --- paging ---------------------------------------------------------------------------------------------------


def test_a_full_sync_hands_out_one_search_in_pages_with_every_employee_once_in_id_order():
    with serve(260) as standin:
        connector = make(standin)
        employees, cursors = sync(connector)
    assert [employee.hrms_id for employee in employees] == expected_ids(standin)
    assert len(cursors) == 3
    assert cursors[-1] is None
    assert all(cursor.startswith("after:") for cursor in cursors[:-1])
    # One metadata call and one search for the whole run: the answer is kept for the following pages.
    assert [entry[:2] for entry in standin.requests_log] == [("GET", "/v1/company/people/fields"),
                                                            ("POST", "/v1/people/search")]


def test_a_size_that_is_an_exact_multiple_of_the_page_size_ends_without_an_empty_page():
    with serve(300) as standin:
        employees, cursors = sync(make(standin))
    assert len(employees) == 300 == len({employee.hrms_id for employee in employees})
    assert len(cursors) == 3
    assert cursors[-1] is None


def test_the_default_page_size_is_500():
    with serve(501) as standin:
        connector = connect(settings(standin))
        first = connector.page(None)
        second = connector.page(first.next_cursor)
    assert (len(first.employees), len(second.employees), second.next_cursor) == (500, 1, None)


def test_an_empty_hrms_is_one_empty_page():
    with serve(0) as standin:
        connector = make(standin)
        page = connector.page(None)
        attributes = connector.attributes()
    assert (page.employees, page.next_cursor) == ([], None)
    # Nobody to tell the readable fields by: every field asked for is listed.
    assert "custom.competencies" in attributes
    assert "root.id" in attributes


def test_a_single_employee_is_one_page_without_a_manager():
    with serve(1) as standin:
        page = make(standin).page(None)
    [employee] = page.employees
    assert page.next_cursor is None
    assert (employee.hrms_id, employee.manager_hrms_id, employee.manager_email) == ("1000", None, None)


def test_a_stored_cursor_continues_in_a_new_connector_which_fetches_the_answer_again():
    with serve(250) as standin:
        first = make(standin).page(None)
        resumed, _ = sync(make(standin), first.next_cursor)
        assert len(searches(standin)) == 2
    ids = [employee.hrms_id for employee in first.employees + resumed]
    assert ids == expected_ids(standin)
    assert first.next_cursor == "after:1099"


def test_resuming_stays_exact_when_people_join_and_leave_between_the_two_fetches():
    with serve(200) as standin:
        first = make(standin).page(None)
        standin.depart([0, 150])  # one already handed out, one not yet
        hired = standin.hire(2)
        rest, _ = sync(make(standin), first.next_cursor)
    ids = [employee.hrms_id for employee in first.employees + rest]
    assert len(ids) == len(set(ids))
    assert "1150" not in ids
    assert "1000" in ids
    assert {str(1000 + index) for index in hired} <= set(ids)
    assert set(ids) == {str(1000 + index) for index in range(202)} - {"1150"}


def test_changed_since_is_ignored_every_run_is_a_full_one():
    from datetime import UTC, datetime

    assert HiBobConnector.supports_incremental is False
    assert connectors.supports_incremental("hibob") is False
    with serve(20) as standin:
        standin.change([3])
        page = make(standin).page(None, changed_since=datetime.now(UTC))
    assert len(page.employees) == 20


def test_a_cursor_that_is_not_hibobs_is_refused():
    with serve(3) as standin:
        connector = make(standin)
        for cursor in ("42", "after:", "cD0yMDI0"):
            with pytest.raises(ConnectorError) as error:
                connector.page(cursor)
            assert error.value.retryable is False
        assert standin.requests_count == 0


# --- mapping --------------------------------------------------------------------------------------------------


def test_every_employee_field_is_mapped_with_the_manager_from_the_same_answer():
    with serve(40) as standin:
        employees = {employee.hrms_id: employee for employee in sync(make(standin))[0]}
    workforce = standin.workforce
    person = workforce.person(17)
    manager = workforce.person(person.manager_index)
    employee = employees[str(person.id)]
    assert employee.profile() == {
        "hrms_id": str(person.id), "email": person.email, "first_name": person.first_name,
        "last_name": person.last_name, "job_title": person.title, "department": person.department,
        "location": person.office, "manager_hrms_id": str(manager.id), "manager_email": manager.email,
        "status": person.status, "start_date": person.hire_date}
    assert employee.attributes == {
        "root.id": str(person.id), "root.email": person.email, "root.firstName": person.first_name,
        "root.surname": person.last_name, "root.displayName": f"{person.first_name} {person.last_name}",
        "work.title": person.title, "work.department": person.department, "work.site": person.office,
        "work.siteId": str(person.office_id), "work.reportsTo": f"{manager.first_name} {manager.last_name}",
        "work.startDate": person.hire_date, "internal.status": "Inactive" if person.status == "inactive" else "Active",
        "internal.lifecycleStatus": {"onboarding": "Hired", "active": "Employed", "leave": "On leave",
                                     "inactive": "Terminated"}[person.status],
        "custom.competencies": person.competencies, "custom.reviewRating": str(person.review_rating)}


def test_statuses_are_normalized_and_inactive_employees_are_included():
    with serve(300) as standin:
        employees = sync(make(standin))[0]
    by_id = {employee.hrms_id: employee.status for employee in employees}
    expected = {str(person.id): person.status for person in standin.workforce.people()}
    assert by_id == expected
    assert set(by_id.values()) == {"onboarding", "active", "leave", "inactive"}


@pytest.mark.parametrize(("lifecycle", "name", "status", "expected"), [
    ("hired", "Hired", "Active", "onboarding"),
    ("employed", "Employed", "Active", "active"),
    (None, "Garden leave", "Active", "leave"),
    ("terminated", "Terminated", "Inactive", "inactive"),
    (None, None, "Inactive", "inactive"),
    (None, None, "Active", "active"),
    (None, None, None, "active"),
])
def test_status_normalization_falls_back_to_internal_status(lifecycle, name, status, expected):
    assert hibob._status(lifecycle, name, status) == expected


def test_a_manager_given_as_an_object_and_unusable_values_map_without_raising():
    answer = hibob._Answer(["1", "2"], [(0, 1, "1"), (0, 2, "2")], [{}, {}], {"1": "boss@example.com", "2": None},
                           [])
    record = {"root.id": ("2", "2"), "work.reportsTo": ({"id": "1", "email": "b@example.com"}, "Boss"),
              "work.startDate": ("10/03/2020", "10/03/2020"), "root.email": (17, 17),
              "root.firstName": ({"odd": True}, {"odd": True})}
    employee = HiBobConnector._employee("2", record, answer)
    assert (employee.manager_hrms_id, employee.manager_email) == ("1", "b@example.com")
    assert (employee.start_date, employee.email, employee.first_name, employee.last_name) == (None, "17", None, None)
    bare = HiBobConnector._employee("2", {"work.reportsTo": ("1", "Boss")}, answer)
    assert (bare.manager_hrms_id, bare.manager_email, bare.status) == ("1", "boss@example.com", "active")


def test_unreadable_fields_are_none_and_left_out_of_the_attributes():
    with serve(30, unreadable={"work.title", "work.reportsTo", "custom.reviewRating"}) as standin:
        connector = make(standin)
        employees = sync(connector)[0]
        attributes = connector.attributes()
    assert all(employee.job_title is None and employee.manager_hrms_id is None for employee in employees)
    assert all(employee.department is not None for employee in employees)
    assert not {"work.title", "work.reportsTo", "custom.reviewRating"} & set(attributes)
    assert {"custom.competencies", "work.department", "root.email", "internal.lifecycleStatus"} <= set(attributes)
    for employee in employees:
        assert set(employee.attributes) <= set(attributes)
        assert "work.title" not in employee.attributes


def test_attributes_lists_every_key_a_page_can_hold_and_reuses_the_runs_answer():
    with serve(12) as standin:
        connector = make(standin)
        employees = sync(connector)[0]
        attributes = connector.attributes()
        assert len(searches(standin)) == 1
    assert set().union(*(employee.attributes for employee in employees)) == set(attributes)
    assert attributes[0] == "root.id"


@pytest.mark.parametrize("key_style", ["slash", "nested"])
def test_slash_keys_alone_or_nested_objects_alone_give_the_same_employees(key_style):
    with serve(25) as both, serve(25, key_style=key_style) as one_style:
        assert sync(make(both))[0] == sync(make(one_style))[0]


def test_more_fields_than_one_search_takes_are_read_in_several_searches_merged_by_id(monkeypatch):
    with serve(30) as standin:
        whole = sync(make(standin))[0]
        monkeypatch.setattr(hibob, "MAX_FIELDS", 5)
        standin.requests_log.clear()
        split = sync(make(standin))[0]
        bodies = len(searches(standin))
    assert split == whole
    assert bodies == 4  # 14 fields besides root.id, 4 a search


# --- failures -------------------------------------------------------------------------------------------------


def test_a_429_with_retry_after_is_waited_out_and_retried():
    with serve(10) as standin:
        standin.fail_next(429, retry_after=1, path_contains="search")
        started = time.monotonic()
        page = make(standin).page(None)
        elapsed = time.monotonic() - started
    assert len(page.employees) == 10
    assert [entry[2] for entry in searches(standin)] == [429, 200]
    assert elapsed >= 0.9


def test_server_errors_and_dropped_connections_are_retried_the_search_being_a_read():
    with serve(10) as standin:
        standin.fail_next(503, path_contains="search")
        standin.drop_next()
        page = make(standin).page(None)
    assert len(page.employees) == 10
    assert [entry[2] for entry in standin.requests_log] == [0, 200, 503, 200]


def test_the_retries_are_bounded_and_end_in_a_retryable_error():
    with serve(10) as standin:
        standin.fail_next(503, count=10, path_contains="search")
        with pytest.raises(ConnectorError) as error:
            make(standin).page(None)
        assert len(searches(standin)) == hibob.RETRY.max_attempts
    assert error.value.retryable is True


def test_hibobs_own_throttling_without_retry_after_ends_in_a_retryable_error():
    with serve(10, per_minute=1) as standin:
        make(standin).page(None)
        with pytest.raises(ConnectorError) as error:
            make(standin).page(None)
        statuses = [entry[2] for entry in searches(standin)]
    assert error.value.retryable is True
    assert statuses == [200] + [429] * hibob.RETRY.max_attempts


def test_a_500_is_retryable_and_not_retried_by_the_client():
    with serve(10) as standin:
        standin.fail_next(500, path_contains="fields")
        with pytest.raises(ConnectorError) as error:
            make(standin).page(None)
        assert standin.requests_count == 1
    assert error.value.retryable is True


def test_a_refused_service_user_is_not_retryable_and_says_what_to_check():
    with serve(10) as standin:
        with pytest.raises(ConnectorError) as error:
            make(standin, token="not-the-token").attributes()
        assert standin.requests_count == 1
    assert error.value.retryable is False
    assert "service user" in str(error.value)
    assert "401" in str(error.value)
    assert "not-the-token" not in str(error.value)


def test_a_service_user_without_permission_is_not_retryable():
    with serve(10) as standin:
        standin.fail_next(403, path_contains="search")
        with pytest.raises(ConnectorError) as error:
            make(standin).page(None)
    assert error.value.retryable is False
    assert "permission" in str(error.value)


def test_a_long_retry_after_propagates_as_retry_later():
    with serve(10) as standin:
        standin.fail_next(429, retry_after=3600)
        with pytest.raises(RetryLater) as error:
            make(standin).page(None)
    assert error.value.retry_after == 3600


def test_a_credential_without_its_fields_is_refused_before_any_request():
    with pytest.raises(ConnectorError) as error:
        connect(ConnectorSettings("https://api.hibob.com", json.dumps({"service_user_id": "x"})))
    assert error.value.retryable is False
    assert "token" in str(error.value)


# --- pacing and the registry ----------------------------------------------------------------------------------


def test_pacing_builds_the_client_with_hibobs_documented_limit():
    with serve(1) as standin:
        paced = connect(settings(standin, pace=True))
        unpaced = connect(settings(standin, pace=False))
        assert paced._http().interval == pytest.approx(60 / 50)
        assert unpaced._http().interval == 0
        paced.close()
        unpaced.close()
    assert HiBobConnector.requests_per_minute == 50


def test_the_registry_connects_hibob_and_a_trailing_v1_in_the_base_url_is_accepted():
    with serve(5) as standin:
        connector = connectors.connect("hibob", ConnectorSettings(standin.base_url + "/v1/", standin.credential,
                                                                   pace=False))
        assert isinstance(connector, HiBobConnector)
        assert len(connector.page(None).employees) == 5
        connector.close()
