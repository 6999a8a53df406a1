"""The BambooHR connector (shared/hrms/connectors/bamboohr.py) against its stand-in (local/bamboohr.py): paging
and resuming, incremental syncs, the mapping, restricted fields, retries and refusals, pacing."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from local.bamboohr import BambooHRStandIn
from local.hrms_people import Workforce
from shared import config
from shared.hrms import connectors
from shared.hrms.connectors import base
from shared.hrms.connectors.bamboohr import BambooHRConnector, connect, normalize_status
from shared.hrms.connectors.base import ConnectorError, ConnectorSettings
from shared.http import PACER, RetryLater


@pytest.fixture(autouse=True)
def loopback(monkeypatch):
    """The outbound client may reach the stand-in over http; no token or pacing state crosses tests."""
    monkeypatch.setenv("OUTBOUND_ALLOWED_LOCAL_HOSTS", "127.0.0.1")
    config.reset()
    base.TOKENS.forget()
    PACER.reset()
    yield
    base.TOKENS.forget()


def serve(size: int, **options) -> BambooHRStandIn:
    return BambooHRStandIn(Workforce(size), **options).start()


@pytest.fixture
def standin(request):
    running = serve(getattr(request, "param", 60))
    yield running
    running.stop()


def settings(standin: BambooHRStandIn, *, api_key: str | None = None, pace: bool = False) -> ConnectorSettings:
    return ConnectorSettings(standin.base_url, json.dumps({"api_key": api_key or standin.api_key}), pace=pace)


def make(standin: BambooHRStandIn, *, page_size: int = 25, waits: list[float] | None = None,
         **options) -> BambooHRConnector:
    """A connector whose retry waits are recorded instead of slept (``waits``)."""
    sleep = waits.append if waits is not None else (lambda seconds: None)
    return BambooHRConnector(settings(standin, **options), page_size=page_size, sleep=sleep)


def sync(connector: BambooHRConnector, *, changed_since: datetime | None = None, cursor: str | None = None):
    """Every page of a sync: (employees, number of pages)."""
    employees, pages = [], 0
    while True:
        page = connector.page(cursor, changed_since=changed_since)
        employees += page.employees
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return employees, pages


def list_calls(standin: BambooHRStandIn) -> list[tuple[str, str, int]]:
    return [entry for entry in standin.requests_log if entry[1].startswith("/api/v1/employees?")]


def detail_calls(standin: BambooHRStandIn) -> list[tuple[str, str, int]]:
    return [entry for entry in standin.requests_log
            if entry[1].split("?")[0].removeprefix("/api/v1/employees/").isdigit()]


# --- paging ---------------------------------------------------------------------------------------------------


def test_a_full_sync_returns_every_employee_exactly_once():
    with serve(260) as standin:
        employees, pages = sync(make(standin, page_size=40))
    ids = [employee.hrms_id for employee in employees]
    assert len(ids) == 260
    assert set(ids) == {str(1000 + index) for index in range(260)}
    assert ids == sorted(ids, key=int)  # listed in employeeId order, which resuming relies on
    assert pages == 7
    assert len(list_calls(standin)) == 7


def test_a_size_that_is_a_multiple_of_the_page_size_ends_without_an_empty_page():
    with serve(120) as standin:
        connector = make(standin, page_size=40)
        first = connector.page(None)
        second = connector.page(first.next_cursor)
        third = connector.page(second.next_cursor)
    assert [len(page.employees) for page in (first, second, third)] == [40, 40, 40]
    assert third.next_cursor is None
    assert len(list_calls(standin)) == 3


def test_an_empty_hrms_is_one_empty_page():
    with serve(0) as standin:
        connector = make(standin)
        page = connector.page(None)
        names = connector.attributes()
    assert page.employees == []
    assert page.next_cursor is None
    assert {"employeeId", "workEmail", "customCompetencies", "supervisorEmail"} <= set(names)


def test_a_single_employee():
    with serve(1) as standin:
        page = make(standin).page(None)
    assert page.next_cursor is None
    [only] = page.employees
    assert only.hrms_id == "1000"
    assert only.manager_hrms_id is None
    assert only.manager_email is None


def test_a_stored_cursor_resumes_in_a_new_connector():
    with serve(100) as standin:
        first = make(standin, page_size=30).page(None)
        stored = json.loads(json.dumps(first.next_cursor))  # what the engine keeps is a plain string
        rest, _ = sync(make(standin, page_size=30), cursor=stored)
    seen = [employee.hrms_id for employee in first.employees + rest]
    assert len(seen) == 100
    assert set(seen) == {str(1000 + index) for index in range(100)}


def test_a_cursor_whose_boundary_employee_was_deleted_still_continues_after_it():
    with serve(100) as standin:
        first = make(standin, page_size=30).page(None)
        assert first.employees[-1].hrms_id == "1029"
        standin.depart([29, 3])  # BambooHR now refuses the cursor (400 BadPage): its boundary is gone
        resumed = make(standin, page_size=30)
        rest, _ = sync(resumed, cursor=first.next_cursor)
    assert ["GET", 400] in [[method, status] for method, _, status in list_calls(standin)]
    ids = [employee.hrms_id for employee in rest]
    assert ids[0] == "1030"
    assert len(ids) == len(set(ids)) == 70  # 1030..1099, none of the first page again


def test_a_cursor_that_is_not_ours_is_refused_without_retry(standin):
    with pytest.raises(ConnectorError) as refused:
        make(standin).page("page-2")
    assert refused.value.retryable is False


# --- incremental ------------------------------------------------------------------------------------------------


def test_an_incremental_sync_returns_only_the_changed_employees():
    with serve(200) as standin:
        before = datetime.now(UTC) - timedelta(seconds=1)
        standin.change([3, 77, 150, 151, 199])
        standin.depart([10])
        standin.change([10])  # changed, then deleted: skipped (a full sync notices departures)
        connector = make(standin, page_size=2)
        first = connector.page(None, changed_since=before)
        assert [employee.hrms_id for employee in first.employees] == ["1003", "1077"]
        rest, pages = sync(make(standin, page_size=2), changed_since=before, cursor=first.next_cursor)
        changed_title = standin.workforce.person(77).title
    assert [employee.hrms_id for employee in rest] == ["1150", "1151", "1199"]
    assert pages == 2
    assert first.employees[1].job_title == changed_title
    for _, target, _ in list_calls(standin):
        assert "filter%5Bids%5D%5B%5D=" in target  # fetched by id, not by listing everyone


def test_an_incremental_cursor_keeps_the_list_it_was_made_for():
    with serve(150) as standin:
        before = datetime.now(UTC) - timedelta(seconds=1)
        standin.change([5, 50, 120])
        first = make(standin, page_size=1).page(None, changed_since=before)
        # The engine resumes later and passes another changed_since: the cursor's own since still rules.
        rest, _ = sync(make(standin, page_size=1), changed_since=datetime.now(UTC) + timedelta(days=1),
                       cursor=first.next_cursor)
    assert [employee.hrms_id for employee in first.employees + rest] == ["1005", "1050", "1120"]


def test_an_incremental_sync_with_nothing_changed_is_one_empty_page(standin):
    page = make(standin).page(None, changed_since=datetime.now(UTC) + timedelta(minutes=5))
    assert page.employees == []
    assert page.next_cursor is None
    assert list_calls(standin) == []


def test_a_naive_changed_since_is_utc(standin):
    standin.change([4])
    page = make(standin).page(None, changed_since=datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1))
    assert [employee.hrms_id for employee in page.employees] == ["1004"]
    assert any("since=" in target and target.endswith("Z") for _, target, _ in standin.requests_log)


# --- mapping ----------------------------------------------------------------------------------------------------


def test_every_employee_field_is_mapped(standin):
    connector = make(standin, page_size=100)
    employees = {employee.hrms_id: employee for employee in sync(connector)[0]}
    workforce = standin.workforce
    person = workforce.person(20)
    manager = workforce.person(person.manager_index)
    employee = employees[str(person.id)]
    assert employee.profile() == {
        "hrms_id": str(person.id), "email": person.email, "first_name": person.first_name,
        "last_name": person.last_name, "job_title": person.title, "department": person.department,
        "location": person.office, "manager_hrms_id": str(manager.id), "manager_email": manager.email,
        "status": person.status, "start_date": person.hire_date,
    }
    attributes = employee.attributes
    assert attributes["customCompetencies"] == person.competencies
    assert attributes["customReviewRating"] == str(person.review_rating)  # BambooHR sends numbers as text
    assert attributes["departmentId"] == str(person.department_id)
    assert attributes["reportsToName"] == f"{manager.first_name} {manager.last_name}"
    assert attributes["supervisorEmail"] == manager.email
    assert attributes["homePhone"] is None  # readable but empty: present, null
    assert not any(name.startswith("_") for name in attributes)
    assert set(attributes) == set(connector.attributes())


def test_statuses_are_normalized(standin):
    employees = sync(make(standin, page_size=100))[0]
    expected = {str(person.id): person.status for person in standin.workforce.people()}
    assert {employee.hrms_id: employee.status for employee in employees} == expected
    assert {"active", "inactive"} <= {employee.status for employee in employees}


def test_status_rules():
    today = date(2026, 11, 27)
    assert normalize_status("Active", "Full-Time", "2020-01-01", today=today) == "active"
    assert normalize_status("Inactive", "Full-Time", "2020-01-01", today=today) == "inactive"
    assert normalize_status("Inactive", "Terminated", "2020-01-01", today=today) == "inactive"
    assert normalize_status("Active", "On Leave", "2020-01-01", today=today) == "leave"
    assert normalize_status("Inactive", "Full-Time", "2027-01-04", today=today) == "onboarding"  # a future hire
    assert normalize_status("Active", "Pre-Hire", None, today=today) == "onboarding"
    assert normalize_status(None, None, None, today=today) == "active"


def test_an_empty_bamboohr_date_is_no_date(standin, monkeypatch):
    record = standin.record

    def without_hire_date(person):
        return {**record(person), "hireDate": "0000-00-00"}

    monkeypatch.setattr(standin, "record", without_hire_date)
    employee = make(standin).page(None).employees[0]
    assert employee.start_date is None
    assert employee.attributes["hireDate"] is None


def test_restricted_fields_are_none_and_not_listed():
    with serve(30, restricted={"workEmail", "reportsToId", "customReviewRating", "supervisorEmail"}) as standin:
        connector = make(standin)
        employees = sync(connector)[0]
        names = connector.attributes()
    someone = next(employee for employee in employees if employee.hrms_id == "1009")
    assert someone.email is None
    assert someone.manager_hrms_id is None
    assert someone.manager_email is None
    assert someone.first_name is not None
    for name in ("workEmail", "reportsToId", "customReviewRating", "supervisorEmail"):
        assert name not in names
        assert name not in someone.attributes
    assert {"customCompetencies", "firstName", "departmentName"} <= set(names)
    assert someone.attributes["customCompetencies"] == standin.workforce.person(9).competencies


def test_custom_fields_come_from_get_employee_unless_the_list_serves_them():
    with serve(12) as documented:
        from_details = sync(make(documented, page_size=5))[0]
    assert len(detail_calls(documented)) == 12  # List Employees ignores custom fields, as its spec says
    with serve(12, list_custom_fields=True) as generous:
        from_list = sync(make(generous, page_size=5))[0]
    assert detail_calls(generous) == []

    def comparable(employees):  # the photo URL names each stand-in's own port
        return [{**employee.attributes, "photoUrl": None} for employee in employees]

    assert comparable(from_details) == comparable(from_list)
    assert from_list[3].attributes["customCompetencies"] == generous.workforce.person(3).competencies


def test_an_employee_hidden_from_get_employee_keeps_the_listed_fields(standin):
    standin.fail_next(403, path_contains="/api/v1/employees/1002?")
    employees = make(standin, page_size=5).page(None).employees
    hidden = employees[2]
    assert hidden.hrms_id == "1002"
    assert hidden.email == standin.workforce.person(2).email
    assert hidden.manager_email is None
    assert "customCompetencies" not in hidden.attributes
    assert employees[3].attributes["customCompetencies"] == standin.workforce.person(3).competencies


# --- retries and refusals -------------------------------------------------------------------------------------------


def test_a_429_waits_as_long_as_retry_after_says(standin):
    waits: list[float] = []
    standin.fail_next(429, retry_after=1, path_contains="/api/v1/employees?")
    page = make(standin, waits=waits).page(None)
    assert len(page.employees) == 25
    assert waits == [1.0]
    assert [status for _, _, status in list_calls(standin)] == [429, 200]


def test_the_legacy_503_throttle_is_waited_out_for_real(standin):
    standin.throttle_status = 503
    standin.fail_next(503, retry_after=1, path_contains="/api/v1/meta/fields")
    connector = BambooHRConnector(settings(standin), page_size=5)  # real sleeping
    started = time.monotonic()
    page = connector.page(None)
    assert time.monotonic() - started >= 1.0
    assert len(page.employees) == 5
    assert [status for _, target, status in standin.requests_log if target == "/api/v1/meta/fields"] == [503, 200]


def test_gateway_errors_and_dropped_connections_are_retried(standin):
    waits: list[float] = []
    standin.fail_next(502, path_contains="/api/v1/employees?")
    standin.fail_next(504, path_contains="/api/v1/employees/1001?")
    page = make(standin, waits=waits, page_size=5).page(None)
    standin.drop_next(1)
    second = make(standin, waits=waits, page_size=5).page(page.next_cursor)
    assert [employee.hrms_id for employee in page.employees + second.employees] == \
        [str(1000 + index) for index in range(10)]
    assert len(waits) == 3  # a backoff before each retry
    assert ("GET", "/api/v1/meta/fields", 0) in standin.requests_log


def test_retries_end_with_a_retryable_error(standin):
    waits: list[float] = []
    standin.fail_next(503, count=50, path_contains="/api/v1/employees?")
    with pytest.raises(ConnectorError) as failed:
        make(standin, waits=waits).page(None)
    assert failed.value.retryable is True
    assert len(list_calls(standin)) == 4  # the retry policy's bound, not an endless loop
    assert len(waits) == 3


def test_a_500_is_retryable_later(standin):
    standin.fail_next(500, path_contains="/api/v1/employees?")
    with pytest.raises(ConnectorError) as failed:
        make(standin).page(None)
    assert failed.value.retryable is True
    assert len(list_calls(standin)) == 1


def test_a_long_retry_after_is_left_to_the_queue(standin):
    standin.fail_next(429, retry_after=600)
    with pytest.raises(RetryLater) as later:
        make(standin).page(None)
    assert later.value.retry_after == 600


def test_a_refused_api_key_is_not_retried(standin):
    with pytest.raises(ConnectorError) as refused:
        make(standin, api_key="not-the-key-9f8e7d").page(None)
    assert refused.value.retryable is False
    assert "API key" in str(refused.value)
    assert "not-the-key-9f8e7d" not in str(refused.value)
    assert standin.requests_count == 1


def test_a_forbidden_listing_is_not_retried(standin):
    standin.fail_next(403, path_contains="/api/v1/employees?")
    with pytest.raises(ConnectorError) as refused:
        make(standin).page(None)
    assert refused.value.retryable is False
    assert "access" in str(refused.value)


def test_a_credential_without_an_api_key_is_refused(standin):
    with pytest.raises(ConnectorError) as refused:
        connect(ConnectorSettings(standin.base_url, json.dumps({"key": "x"})))
    assert refused.value.retryable is False
    assert "api_key" in str(refused.value)


def test_plain_http_outside_the_local_allowance_is_refused(standin, monkeypatch):
    monkeypatch.delenv("OUTBOUND_ALLOWED_LOCAL_HOSTS")
    config.reset()
    with pytest.raises(ConnectorError) as refused:
        make(standin).page(None)
    assert refused.value.retryable is False
    assert standin.requests_count == 0


# --- pacing and registration ------------------------------------------------------------------------------------


def test_pacing_uses_the_requests_per_minute(standin):
    paced = connect(settings(standin, pace=True))
    assert paced._http().interval == pytest.approx(60 / BambooHRConnector.requests_per_minute)
    unpaced = connect(settings(standin, pace=False))
    assert unpaced._http().interval == 0
    paced.close()
    unpaced.close()
    assert standin.requests_count == 0  # building the client sends nothing


def test_the_connector_is_registered_as_bamboohr(standin):
    connector = connectors.connect("bamboohr", settings(standin))
    assert isinstance(connector, BambooHRConnector)
    assert connector.kind == "bamboohr"
    assert connectors.supports_incremental("bamboohr") is True
    connector.close()
    connector.close()  # closing twice is harmless
