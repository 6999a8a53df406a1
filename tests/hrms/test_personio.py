"""The Personio connectors (shared/hrms/connectors/personio.py: v1, personio_v2.py: v2) against the Personio
stand-in (local/personio.py): paging, resuming, incremental syncs, restricted attributes, the mapping, tokens,
retries and the errors they end in. Waits are recorded, not slept (the connectors take a ``sleep``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from local.hrms_people import Workforce
from local.personio import PersonioStandIn
from shared import config
from shared.hrms.connectors import personio, personio_v2
from shared.hrms.connectors.base import TOKENS, ConnectorError, ConnectorSettings, Employee
from shared.hrms.connectors.personio import PersonioConnector, employee_from_v1
from shared.hrms.connectors.personio_v2 import PersonioV2Connector
from shared.http import PACER, RetryLater


@pytest.fixture(autouse=True)
def loopback_allowed(monkeypatch):
    """The outbound client may reach the stand-in over http; no token or pacing survives a test."""
    monkeypatch.setenv("OUTBOUND_ALLOWED_LOCAL_HOSTS", "127.0.0.1")
    config.reset()
    TOKENS.forget()
    PACER.reset()
    yield
    TOKENS.forget()
    PACER.reset()


def serve(size: int, **options) -> PersonioStandIn:
    return PersonioStandIn(Workforce(size), **options).start()


@pytest.fixture
def standin():
    running = serve(250)
    yield running
    running.stop()


def settings_for(standin: PersonioStandIn, *, secret: str | None = None, pace: bool = False,
                 base_url: str | None = None) -> ConnectorSettings:
    credential = json.dumps({"client_id": standin.client_id, "client_secret": secret or standin.client_secret})
    return ConnectorSettings(base_url or standin.base_url, credential, pace=pace)


def v1(standin: PersonioStandIn, sleeps: list[float] | None = None, **options) -> PersonioConnector:
    return PersonioConnector(settings_for(standin, **options.pop("settings", {})),
                             sleep=(sleeps if sleeps is not None else []).append, **options)


def v2(standin: PersonioStandIn, sleeps: list[float] | None = None, **options) -> PersonioV2Connector:
    return PersonioV2Connector(settings_for(standin, **options.pop("settings", {})),
                               sleep=(sleeps if sleeps is not None else []).append, **options)


def sync(connector, *, changed_since: datetime | None = None, cursor: str | None = None) -> tuple[list[Employee], int]:
    """Every page from ``cursor`` on: the employees and how many pages it took."""
    employees, pages = [], 0
    while True:
        page = connector.page(cursor, changed_since=changed_since)
        employees.extend(page.employees)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return employees, pages


def requests_to(standin: PersonioStandIn, fragment: str, method: str | None = None) -> list[tuple[str, str, int]]:
    return [entry for entry in standin.requests_log if fragment in entry[1] and method in (None, entry[0])]


# --- v1: paging -------------------------------------------------------------------------------------------------


def test_a_full_sync_pages_through_every_employee_once(standin):
    connector = v1(standin)
    employees, pages = sync(connector)
    assert [employee.hrms_id for employee in employees] == [str(1000 + index) for index in range(250)]
    assert pages == 3
    listed = requests_to(standin, "/v1/company/employees")
    assert [entry[1] for entry in listed] == [f"/v1/company/employees?limit=100&offset={offset}"
                                              for offset in (0, 100, 200)]
    connector.close()


@pytest.mark.parametrize(("size", "page_size", "pages"), [(300, 100, 3), (0, 100, 1), (1, 100, 1), (7, 3, 3)])
def test_the_last_page_ends_the_sync_without_an_extra_request(size, page_size, pages):
    with PersonioStandIn(Workforce(size)) as standin:
        connector = v1(standin, page_size=page_size)
        employees, taken = sync(connector)
        assert sorted(int(employee.hrms_id) for employee in employees) == [1000 + index for index in range(size)]
        assert taken == pages
        assert len(requests_to(standin, "/v1/company/employees")) == pages


def test_a_stored_cursor_continues_in_a_new_connector(standin):
    first = v1(standin).page(None)
    assert first.next_cursor == "100"
    TOKENS.forget()  # another process: no token either
    rest, pages = sync(v1(standin), cursor=first.next_cursor)
    assert [employee.hrms_id for employee in first.employees + rest] == [str(1000 + i) for i in range(250)]
    assert pages == 2


def test_a_cursor_that_is_no_offset_is_refused(standin):
    with pytest.raises(ConnectorError) as refused:
        v1(standin).page("cur_abc")
    assert not refused.value.retryable


def test_departed_employees_are_gone_from_a_full_sync(standin):
    standin.depart([10, 249])
    employees, _ = sync(v1(standin))
    ids = {employee.hrms_id for employee in employees}
    assert len(employees) == 248
    assert "1010" not in ids
    assert "1249" not in ids


def test_a_base_url_with_the_version_is_accepted(standin):
    connector = PersonioConnector(settings_for(standin, base_url=standin.base_url + "/v1/"))
    assert len(connector.page(None).employees) == 100


# --- v1: incremental ----------------------------------------------------------------------------------------------


def test_an_incremental_sync_returns_only_the_changed_employees(standin):
    before = datetime.now(UTC) - timedelta(seconds=5)
    standin.change([5, 150, 249])
    connector = v1(standin, page_size=2)
    employees, pages = sync(connector, changed_since=before)
    assert [employee.hrms_id for employee in employees] == ["1005", "1150", "1249"]
    assert pages == 2
    listed = requests_to(standin, "/v1/company/employees")
    assert len(listed) == 2
    assert all("updated_since=" in entry[1] for entry in listed)
    # Naive moments are UTC; nothing changed after now.
    assert sync(v1(standin), changed_since=datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=2))[0] == []


def test_an_incremental_sync_handles_a_personio_that_ignores_limit_and_offset():
    with PersonioStandIn(Workforce(40), paged_updated_since=False) as standin:
        before = datetime.now(UTC) - timedelta(seconds=5)
        standin.change([1, 2, 3, 30, 31])
        connector = v1(standin, page_size=2)
        page = connector.page(None, changed_since=before)
        assert [employee.hrms_id for employee in page.employees] == ["1001", "1002", "1003", "1030", "1031"]
        assert page.next_cursor is None
        resumed = connector.page("2", changed_since=before)  # a cursor stored before: what precedes it is skipped
        assert [employee.hrms_id for employee in resumed.employees] == ["1003", "1030", "1031"]
        assert resumed.next_cursor is None


# --- v1: mapping and attributes ------------------------------------------------------------------------------------


def test_every_employee_field_is_mapped(standin):
    workforce = standin.workforce
    employees, _ = sync(v1(standin))
    assert {employee.status for employee in employees} == {"onboarding", "active", "leave", "inactive"}
    for employee in employees:
        person = workforce.person(int(employee.hrms_id) - 1000)
        manager = workforce.person(person.manager_index) if person.manager_index is not None else None
        assert employee.profile() == {
            "hrms_id": str(person.id), "email": person.email, "first_name": person.first_name,
            "last_name": person.last_name, "job_title": person.title, "department": person.department,
            "location": person.office, "manager_hrms_id": str(manager.id) if manager else None,
            "manager_email": manager.email if manager else None, "status": person.status,
            # Local midnight with its offset (+01:00 / +02:00): the day itself, not the UTC day before.
            "start_date": person.hire_date}
        assert employee.attributes["dynamic_1001"] == person.competencies
        assert employee.attributes["dynamic_1002"] == person.review_rating
        assert employee.attributes["department"] == {"id": person.department_id, "name": person.department}
        assert employee.attributes["office"] == {"id": person.office_id, "name": person.office}
        assert employee.attributes["supervisor"] == ({"id": manager.id, "first_name": manager.first_name,
                                                      "last_name": manager.last_name, "email": manager.email}
                                                     if manager else None)
        assert employee.attributes["contract_end_date"] is None
        assert employee.attributes["hire_date"].startswith(person.hire_date + "T00:00:00+0")


def test_attributes_lists_exactly_what_pages_carry(standin):
    connector = v1(standin)
    names = connector.attributes()
    assert names[0] == "id"
    assert {"dynamic_1001", "dynamic_1002", "supervisor", "department", "office", "email"} <= set(names)
    employee = connector.page(None).employees[1]
    assert list(employee.attributes) == names


def test_restricted_attributes_are_none_and_unlisted():
    with PersonioStandIn(Workforce(20), readable=["first_name", "status", "department", "supervisor"]) as standin:
        connector = v1(standin)
        assert connector.attributes() == ["id", "first_name", "status", "supervisor", "department"]
        employee = connector.page(None).employees[9]
        assert employee.email is None
        assert employee.last_name is None
        assert employee.job_title is None
        assert employee.location is None
        assert employee.start_date is None
        assert employee.department is not None
        assert employee.manager_hrms_id == "1001"
        assert employee.manager_email is None  # the supervisor's email is as restricted as anyone's
        assert set(employee.attributes) == {"id", "first_name", "status", "department", "supervisor"}
        assert employee.attributes["supervisor"] == {"id": 1001, "first_name": standin.workforce.person(1).first_name}


def test_status_is_normalized_and_missing_fields_never_raise():
    def item(**attributes):
        return {"type": "Employee", "attributes": {"id": {"label": "ID", "value": 7, "type": "integer",
                                                           "universal_id": "id"},
                                                    **{key: {"label": key, "value": value, "type": "standard",
                                                             "universal_id": key}
                                                       for key, value in attributes.items()}}}

    assert employee_from_v1(item(status="LEAVE")).status == "leave"
    assert employee_from_v1(item(status="Onboarding")).status == "onboarding"
    assert employee_from_v1(item(status="suspended")).status == "active"
    bare = employee_from_v1(item())
    assert bare.profile() == {"hrms_id": "7", "email": None, "first_name": None, "last_name": None,
                              "job_title": None, "department": None, "location": None, "manager_hrms_id": None,
                              "manager_email": None, "status": "active", "start_date": None}
    nulls = employee_from_v1(item(email=None, supervisor=None, department=None, hire_date=None, status=None))
    assert (nulls.email, nulls.manager_hrms_id, nulls.department, nulls.start_date) == (None, None, None, None)
    # Wrappers without a value, and lists of typed objects, are unwrapped as far as they go.
    odd = employee_from_v1({"attributes": {"id": {"value": 8}, "team": {"label": "Team"},
                                           "cost_centers": {"value": [{"type": "CostCenter", "attributes": {
                                               "id": 1, "name": "CC", "percentage": 100}}]}}})
    assert odd.attributes == {"id": 8, "team": None, "cost_centers": [{"id": 1, "name": "CC", "percentage": 100}]}
    with pytest.raises(ConnectorError):
        employee_from_v1({"type": "Employee", "attributes": {"first_name": {"value": "x"}}})


# --- v1: tokens ------------------------------------------------------------------------------------------------


def test_one_token_serves_every_page_and_every_connector(standin):
    sync(v1(standin))
    v1(standin).attributes()
    assert len(requests_to(standin, "/v1/auth")) == 1


def test_a_refused_token_is_forgotten_and_renewed_once(standin):
    connector = v1(standin)
    first = connector.page(None)
    standin.revoke_tokens()
    second = connector.page(first.next_cursor)
    assert len(second.employees) == 100
    statuses = [(entry[0], entry[2]) for entry in standin.requests_log]
    assert statuses == [("POST", 200), ("GET", 200), ("GET", 401), ("POST", 200), ("GET", 200)]


def test_a_token_refused_twice_is_a_refused_credential(standin):
    connector = v1(standin)
    connector.page(None)
    standin.fail_next(403, count=2, path_contains="/company/employees")
    with pytest.raises(ConnectorError) as refused:
        connector.page("100")
    assert not refused.value.retryable
    assert len(requests_to(standin, "/v1/auth")) == 2


def test_a_wrong_secret_is_a_refused_credential_without_the_secret_in_the_message(standin):
    with pytest.raises(ConnectorError) as refused:
        v1(standin, settings={"secret": "papi-wrong-secret-value"}).page(None)
    assert not refused.value.retryable
    assert "credential" in str(refused.value)
    assert "papi-wrong-secret-value" not in str(refused.value)
    assert len(standin.requests_log) == 1


def test_a_credential_that_is_not_json_is_refused_before_any_request(standin):
    with pytest.raises(ConnectorError) as refused:
        personio.connect(ConnectorSettings(standin.base_url, "client-id:secret"))
    assert not refused.value.retryable
    assert standin.requests_count == 0


# --- v1: throttling, retries, failures ------------------------------------------------------------------------------


def test_a_429_with_retry_after_is_waited_out(standin):
    sleeps: list[float] = []
    connector = v1(standin, sleeps)
    connector.page(None)
    standin.fail_next(429, retry_after=1, path_contains="/company/employees")
    assert len(connector.page("100").employees) == 100
    assert sleeps == [1.0]
    assert [entry[2] for entry in requests_to(standin, "offset=100")] == [429, 200]


def test_a_429_without_retry_after_waits_at_least_a_second(standin):
    sleeps: list[float] = []
    connector = v1(standin, sleeps)
    standin.limit_rate(2)  # auth is not counted: two pages pass, the third is throttled until the limit lifts
    connector.page(None)
    connector.page("100")
    standin.fail_next(429, count=2, path_contains="/company/employees")
    standin.limit_rate(None)
    assert len(connector.page("200").employees) == 50
    assert len(sleeps) == 2
    assert all(wait >= 1.0 for wait in sleeps)


def test_server_errors_and_dropped_connections_are_retried(standin):
    sleeps: list[float] = []
    connector = v1(standin, sleeps)
    standin.fail_next(503)  # the token request: retried too (it is safe to repeat)
    standin.drop_next()
    employees, _ = sync(connector)
    assert len(employees) == 250
    assert len(sleeps) == 2
    assert [entry[2] for entry in standin.requests_log[:3]] == [0, 503, 200]  # a drop comes first


@pytest.mark.parametrize("fault", ["status", "drop"])
def test_retries_end_in_a_retryable_error(standin, fault):
    connector = v1(standin)
    connector.page(None)
    if fault == "status":
        standin.fail_next(502, count=10, path_contains="/company/employees")
    else:
        standin.drop_next(10)
    with pytest.raises(ConnectorError) as failed:
        connector.page("100")
    assert failed.value.retryable
    assert str(failed.value).startswith("Personio: GET /v1/company/employees")
    assert len(requests_to(standin, "offset=100")) == 4  # RetryPolicy.max_attempts, then it stops


def test_an_unretried_server_error_is_retryable_and_a_client_error_is_not(standin):
    connector = v1(standin)
    standin.fail_next(500, path_contains="/company/employees")
    with pytest.raises(ConnectorError) as failed:
        connector.page(None)
    assert failed.value.retryable
    assert "500" in str(failed.value)
    standin.fail_next(404, path_contains="/company/employees")
    with pytest.raises(ConnectorError) as missing:
        connector.page(None)
    assert not missing.value.retryable


def test_a_long_retry_after_is_left_to_the_caller(standin):
    connector = v1(standin)
    standin.fail_next(429, retry_after=120, path_contains="/company/employees")
    with pytest.raises(RetryLater) as later:
        connector.page(None)
    assert later.value.retry_after == 120


def test_pacing_uses_the_documented_limit(standin):
    paced = PersonioConnector(settings_for(standin, pace=True))
    assert PersonioConnector.requests_per_minute == 300
    assert paced.outbound().interval == pytest.approx(60 / 300)
    assert paced.outbound() is paced.outbound()  # one client per connector
    assert v1(standin).outbound().interval == 0
    paced.close()
    assert standin.requests_count == 0


# --- v2 ------------------------------------------------------------------------------------------------------


@pytest.fixture
def small():
    running = serve(120)
    yield running
    running.stop()


def test_v2_full_sync_pages_with_personio_cursors(small):
    connector = v2(small)
    employees, pages = sync(connector)
    assert [employee.hrms_id for employee in employees] == [str(1000 + index) for index in range(120)]
    assert pages == 3
    assert len(requests_to(small, "/v2/persons?")) == 3
    assert len(requests_to(small, "/employments")) == 120
    assert connector._pool is not None  # employments were fetched on the pool
    # Each department name once per connector instance, however many pages name it.
    units = requests_to(small, "/v2/org-units/")
    assert len(units) == len({entry[1] for entry in units}) == 6
    assert len(requests_to(small, "/v2/auth/token")) == 1
    connector.close()


@pytest.mark.parametrize(("size", "pages"), [(100, 2), (0, 1), (1, 1)])
def test_v2_last_pages(size, pages):
    with PersonioStandIn(Workforce(size)) as standin:
        employees, taken = sync(v2(standin))
        assert [employee.hrms_id for employee in employees] == [str(1000 + index) for index in range(size)]
        assert taken == pages
        assert len(requests_to(standin, "/v2/persons?")) == pages


def test_v2_a_stored_cursor_continues_in_a_new_connector(small):
    first = v2(small).page(None)
    assert first.next_cursor.startswith("cur_")
    TOKENS.forget()
    rest, pages = sync(v2(small), cursor=first.next_cursor)
    assert [employee.hrms_id for employee in first.employees + rest] == [str(1000 + i) for i in range(120)]
    assert pages == 2


def test_v2_a_cursor_personio_refuses_is_not_retryable(small):
    with pytest.raises(ConnectorError) as refused:
        v2(small).page("cur_not-a-cursor")
    assert not refused.value.retryable


def test_v2_incremental_sync(small):
    before = datetime.now(UTC) - timedelta(seconds=5)
    small.change([3, 77])
    employees, _ = sync(v2(small), changed_since=before)
    assert [employee.hrms_id for employee in employees] == ["1003", "1077"]
    assert all("updated_at.gt=" in entry[1] for entry in requests_to(small, "/v2/persons?"))


def test_v2_mapping(small):
    workforce = small.workforce
    employees, _ = sync(v2(small))
    assert {employee.status for employee in employees} == {"onboarding", "active", "leave", "inactive"}
    for employee in employees:
        person = workforce.person(int(employee.hrms_id) - 1000)
        manager = workforce.person(person.manager_index) if person.manager_index is not None else None
        assert employee.profile() == {
            "hrms_id": str(person.id), "email": person.email, "first_name": person.first_name,
            "last_name": person.last_name, "job_title": person.title, "department": person.department,
            "location": None, "manager_hrms_id": str(manager.id) if manager else None, "manager_email": None,
            "status": person.status, "start_date": person.hire_date}
        attributes = employee.attributes
        assert attributes["dynamic_1001"] == person.competencies.split(",")
        assert attributes["dynamic_1002"] == person.review_rating  # sent as a string, typed INT
        assert attributes["employment.office.id"] == str(person.office_id)
        assert attributes["employment.org_units"] == [{"type": "department", "id": str(person.department_id)}]
        assert attributes["employment.supervisor.id"] == (str(manager.id) if manager else None)
        assert attributes["employment.position.title"] == person.title
    # Index 3 has an older INACTIVE employment listed second: the current one is used.
    assert employees[3].attributes["employment.status"] == workforce.person(3).status.upper()


def test_v2_attributes_lists_what_pages_carry(small):
    connector = v2(small)
    names = connector.attributes()
    assert {"id", "email", "first_name", "dynamic_1001", "dynamic_1002", "employment.position.title",
            "employment.supervisor.id", "employment.org_units", "employment.status"} <= set(names)
    for employee in connector.page(None).employees:
        assert set(employee.attributes) <= set(names)


def test_v2_restricted_persons_map_to_none():
    with PersonioStandIn(Workforce(12), readable=["first_name"]) as standin:
        connector = v2(standin)
        employee = connector.page(None).employees[5]
        assert employee.first_name == standin.workforce.person(5).first_name
        assert (employee.email, employee.job_title, employee.department, employee.manager_hrms_id,
                employee.start_date) == (None, None, None, None, None)
        assert employee.status == "active"  # neither the employment's nor the person's status is readable
        assert set(employee.attributes) == {"id", "first_name", "employment.id"}
        assert set(connector.attributes()) == {"id", "first_name", "employment.id"}
        assert requests_to(standin, "/org-units/") == []


def test_v2_tokens_are_cached_and_renewed_once(small):
    connector = v2(small, page_size=10)
    first = connector.page(None)
    small.revoke_tokens()
    connector.page(first.next_cursor)
    assert len(requests_to(small, "/v2/auth/token")) == 2
    assert len(requests_to(small, "/v2/persons?", "GET")) == 3  # the refused one and its repetition


def test_v2_a_wrong_secret_is_refused(small):
    with pytest.raises(ConnectorError) as refused:
        v2(small, settings={"secret": "papi-not-it"}).page(None)
    assert not refused.value.retryable
    assert "papi-not-it" not in str(refused.value)


def test_v2_retries_and_their_bound(small):
    sleeps: list[float] = []
    connector = v2(small, sleeps, page_size=5)
    small.fail_next(429, retry_after=1, path_contains="/employments")
    small.drop_next()
    page = connector.page(None)
    assert len(page.employees) == 5
    assert 1.0 in sleeps
    small.fail_next(503, count=10, path_contains="/v2/persons")
    with pytest.raises(ConnectorError) as failed:
        connector.page(page.next_cursor)
    assert failed.value.retryable


def test_v2_without_workers_fetches_sequentially(small):
    connector = v2(small, workers=1, page_size=7)
    assert len(connector.page(None).employees) == 7
    assert connector._pool is None


def test_v2_pacing_uses_its_limit(small):
    paced = personio_v2.connect(settings_for(small, pace=True))
    assert paced.kind == "personio-v2"
    assert paced.outbound().interval == pytest.approx(60 / PersonioV2Connector.requests_per_minute)
    paced.close()
