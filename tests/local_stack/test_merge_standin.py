"""The Merge stand-in (local/merge.py) on the wire: the employees listing's shapes, cursors, filters and
expansions, Scopes, authentication per linked account, faults, the per-account rate limit, the control endpoints
and the command line."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from local.azurite import free_port
from local.hrms_people import Workforce
from local.merge import EMPLOYEE_FIELDS, MergeStandIn
from tests.stack import PROJECT_ROOT, PYTHON, base_environment, wait_until


def auth(api_key: str, account_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "X-Account-Token": account_token}


@pytest.fixture
def standin():
    with MergeStandIn(Workforce(40)) as running:
        yield running


@pytest.fixture
def http(standin):
    with httpx.Client(base_url=standin.hris_base_url, headers=auth(standin.api_key, standin.account_token),
                      timeout=10) as client:
        yield client


def employees(http: httpx.Client, **params) -> httpx.Response:
    return http.get("/employees", params=params)


def remote_ids(answer: httpx.Response) -> list[str]:
    return [employee["remote_id"] for employee in answer.json()["results"]]


def test_an_employee_has_merges_fields_with_related_objects_as_ids(http, standin):
    answer = employees(http, page_size=3)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"next", "previous", "results"}
    assert body["previous"] is None
    employee = body["results"][1]
    assert list(employee) == list(EMPLOYEE_FIELDS)
    person, manager = standin.workforce.person(1), standin.workforce.person(0)
    assert employee["id"] == standin.employee_id(person.id)
    assert (employee["remote_id"], employee["work_email"], employee["first_name"]) == \
        ("1001", person.email, person.first_name)
    assert employee["manager"] == standin.employee_id(manager.id)
    assert all(isinstance(value, str) for value in employee["groups"] + employee["employments"])
    assert employee["start_date"] == f"{person.hire_date}T00:00:00Z"
    assert employee["custom_fields"] == {"competencies": person.competencies, "review_rating": person.review_rating}
    assert (employee["remote_was_deleted"], employee["remote_data"], employee["ssn"]) == (False, None, None)
    assert employee["created_at"] == "2024-01-01T00:00:01Z"
    assert employee["modified_at"] == "2024-01-01T00:01:00Z"


def test_expanded_relations_become_merges_objects(http, standin):
    employee = employees(http, page_size=2, expand="employments,groups,manager,work_location,company") \
        .json()["results"][1]
    person = standin.workforce.person(1)
    [employment] = employee["employments"]
    assert (employment["job_title"], employment["employee"], employment["employment_type"]) == \
        (person.title, employee["id"], "FULL_TIME")
    team, department = employee["groups"]
    assert (team["type"], department["type"], department["name"]) == ("TEAM", "DEPARTMENT", person.department)
    assert employee["work_location"]["name"] == person.office
    assert employee["work_location"]["location_type"] == "WORK"
    assert employee["manager"]["remote_id"] == "1000"
    assert isinstance(employee["manager"]["groups"][0], str)
    assert employee["company"]["legal_name"] == "example.com"
    refused = employees(http, expand="employments,salary")
    assert refused.status_code == 400
    assert "salary" in refused.json()["expand"][0]


def test_cursors_page_forward_and_back_and_encode_the_position(http, standin):
    first = employees(http, page_size=15)
    second = employees(http, page_size=15, cursor=first.json()["next"])
    third = employees(http, page_size=15, cursor=second.json()["next"])
    assert remote_ids(first) + remote_ids(second) + remote_ids(third) == [str(1000 + i) for i in range(40)]
    assert third.json()["next"] is None
    back = employees(http, page_size=15, cursor=third.json()["previous"])
    assert remote_ids(back) == remote_ids(second)
    assert base64.b64decode(first.json()["next"]).decode() == "p=2024-01-01+00%3A00%3A14%2B00%3A00"
    # The position is all a cursor holds: another stand-in with the same people continues it.
    with MergeStandIn(Workforce(40)) as restarted:
        other = httpx.get(restarted.hris_base_url + "/employees", params={"page_size": 15,
                                                                           "cursor": first.json()["next"]},
                          headers=auth(restarted.api_key, restarted.account_token))
    assert remote_ids(other) == remote_ids(second)
    for cursor in ("garbage!", base64.b64encode(b"p=yesterday").decode(), base64.b64encode(b"q=1").decode()):
        invalid = employees(http, cursor=cursor)
        assert (invalid.status_code, invalid.json()) == (404, {"detail": "Invalid cursor"})


def test_page_size_is_at_most_100():
    with MergeStandIn(Workforce(130)) as standin:
        http = httpx.Client(base_url=standin.hris_base_url, headers=auth(standin.api_key, standin.account_token))
        sizes = [len(employees(http, **params).json()["results"])
                 for params in ({}, {"page_size": 150}, {"page_size": "x"}, {"page_size": 0}, {"page_size": 7})]
        http.close()
    assert sizes == [100, 100, 100, 100, 7]


def test_deleted_employees_only_with_include_deleted_data(http, standin):
    before = datetime.now(UTC)
    standin.depart([3])
    default = remote_ids(employees(http))
    assert "1003" not in default
    assert len(default) == 39
    everyone = employees(http, include_deleted_data="true").json()["results"]
    deleted = next(employee for employee in everyone if employee["remote_id"] == "1003")
    assert deleted["remote_was_deleted"] is True
    assert datetime.fromisoformat(deleted["modified_at"]) >= before
    # A departure through the Workforce itself is noticed too.
    standin.workforce.depart([4])
    assert [e["remote_id"] for e in employees(http, include_deleted_data="true",
                                              modified_after=before.isoformat()).json()["results"]] == ["1003", "1004"]


def test_modified_and_created_filters(http, standin):
    since = datetime.now(UTC) - timedelta(seconds=1)
    standin.change([2, 30])
    assert remote_ids(employees(http, modified_after=since.isoformat())) == ["1002", "1030"]
    assert remote_ids(employees(http, modified_after="2024-01-01T00:05:00Z", modified_before="2024-01-01T00:08:00Z")) \
        == ["1006", "1007"]
    assert remote_ids(employees(http, created_after="2024-01-01T00:00:37Z")) == ["1038", "1039"]
    assert remote_ids(employees(http, created_before="2024-01-01T00:00:01Z")) == ["1000"]
    malformed = employees(http, modified_after="last tuesday")
    assert (malformed.status_code, malformed.json()) == (400, {"modified_after": ["Enter a valid date/time."]})
    hired = standin.hire(1)
    assert remote_ids(employees(http, modified_after=since.isoformat())) == ["1002", "1030", f"{1000 + hired[0]}"]
    assert remote_ids(employees(http))[-1] == "1040"


def test_field_filters(http, standin):
    person = standin.workforce.person(12)
    assert remote_ids(employees(http, work_email=person.email.upper())) == ["1012"]
    assert remote_ids(employees(http, remote_id="1020")) == ["1020"]
    reports = remote_ids(employees(http, manager_id=standin.employee_id(1001)))
    assert reports == [str(1000 + index) for index in range(9, 17)]
    pending = {str(p.id) for p in standin.workforce.people() if p.status == "onboarding"}
    assert set(remote_ids(employees(http, employment_status="PENDING"))) == pending
    assert employees(http, employment_status="ON_LEAVE").status_code == 400


def test_one_employee_by_id_with_remote_data(http, standin):
    employee_id = standin.employee_id(1005)
    answer = http.get(f"/employees/{employee_id}", params={"include_remote_data": "true", "expand": "groups"})
    assert answer.status_code == 200
    employee = answer.json()
    person = standin.workforce.person(5)
    assert employee["remote_id"] == "1005"
    assert employee["groups"][1]["name"] == person.department
    assert employee["remote_data"] == [{"path": "/v1/employees/1005", "data": {
        "id": 1005, "email": person.email, "title": person.title,
        "status": {"onboarding": "Hired", "active": "Active", "leave": "On leave", "inactive": "Terminated"}[
            person.status]}}]
    assert http.get("/employees/00000000-0000-0000-0000-000000000000").json() == {"detail": "Not found."}


def test_scopes_turn_fields_off_everywhere():
    with MergeStandIn(Workforce(5), disabled_fields={"manager", "custom_fields", "groups"}) as standin:
        http = httpx.Client(base_url=standin.hris_base_url, headers=auth(standin.api_key, standin.account_token))
        scopes = http.get("/linked-account-scopes").json()
        employee = employees(http, expand="manager,groups,employments").json()["results"][1]
        http.close()
    [model] = scopes["common_models"]
    assert model["model_name"] == "Employee"
    assert model["model_permissions"]["READ"] == {"is_enabled": True}
    assert model["field_permissions"]["disabled_fields"] == ["custom_fields", "groups", "manager"]
    assert "manager" not in model["field_permissions"]["enabled_fields"]
    assert (employee["manager"], employee["custom_fields"], employee["groups"]) == (None, None, None)
    assert employee["employments"][0]["job_title"]
    with pytest.raises(ValueError):
        MergeStandIn(Workforce(1), disabled_fields={"salary"})


def test_authentication_per_linked_account(standin):
    base = standin.hris_base_url + "/employees"
    cases = [({}, "Authentication credentials were not provided."),
             (auth("wrong", standin.account_token), "Invalid token."),
             ({"Authorization": f"Token {standin.api_key}", "X-Account-Token": standin.account_token},
              "Invalid token."),
             ({"Authorization": f"Bearer {standin.api_key}"}, "Invalid or missing X-Account-Token."),
             (auth(standin.api_key, "another-account"), "Invalid or missing X-Account-Token.")]
    for headers, detail in cases:
        answer = httpx.get(base, headers=headers)
        assert (answer.status_code, answer.json()) == (401, {"detail": detail})
    standin.link_account("another-account", Workforce(3, domain="other.example"))
    other = httpx.get(base, headers=auth(standin.api_key, "another-account")).json()["results"]
    assert [employee["work_email"].split("@")[1] for employee in other] == ["other.example"] * 3
    assert standin.requests_count == 6


def test_unknown_paths_and_methods(http, standin):
    assert http.get("/employments").json() == {"detail": "Not found."}
    assert httpx.get(standin.base_url + "/api/ats/v1/candidates").status_code == 404
    assert http.post("/employees", json={}).status_code == 405


def test_faults_and_drops(http, standin):
    standin.fail_next(429, retry_after=3, path_contains="employees")
    standin.fail_next(503)
    throttled = employees(http)
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "3")
    assert throttled.json() == {"detail": "Request was throttled. Expected available in 3 seconds."}
    unavailable = http.get("/linked-account-scopes")
    assert unavailable.status_code == 503
    assert "Retry-After" not in unavailable.headers
    standin.drop_next()
    with pytest.raises(httpx.RemoteProtocolError):
        employees(http)
    assert employees(http).status_code == 200
    assert [entry[2] for entry in standin.requests_log] == [429, 503, 0, 200]
    with pytest.raises(ValueError):
        standin.drop_next(0)


def test_the_rate_limit_is_per_linked_account(http, standin):
    standin.link_account("second", Workforce(2))
    standin.limit_rate(2)
    statuses = [employees(http).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    throttled = employees(http)
    wait = int(throttled.headers["Retry-After"])
    assert 50 <= wait <= 60
    assert throttled.json() == {"detail": f"Request was throttled. Expected available in {wait} seconds."}
    second = httpx.get(standin.hris_base_url + "/employees", headers=auth(standin.api_key, "second"))
    assert second.status_code == 200
    standin.limit_rate(None)
    assert employees(http).status_code == 200


def test_the_control_endpoints(http, standin):
    control = httpx.Client(base_url=standin.base_url, timeout=10)
    assert control.post("/_standin/fail", json={"status": 500, "path_contains": "scopes"}).json() == {"pending": 1}
    assert employees(http).status_code == 200
    assert http.get("/linked-account-scopes").status_code == 500
    assert control.post("/_standin/drop", json={"count": 2}).json() == {"pending": 2}
    assert control.delete("/_standin/fail").json() == {"pending": 0}
    assert employees(http).status_code == 200
    assert control.post("/_standin/rate", json={"per_minute": 1}).status_code == 200
    assert [employees(http).status_code for _ in range(2)] == [200, 429]
    assert control.post("/_standin/rate", json={"per_minute": None}).status_code == 200
    since = datetime.now(UTC) - timedelta(seconds=1)
    assert control.post("/_standin/change", json={"indexes": [7]}).json() == {"change": [7]}
    assert control.post("/_standin/depart", json={"indexes": [8]}).json() == {"depart": [8]}
    assert control.post("/_standin/hire", json={"count": 1}).json() == {"indexes": [40]}
    changed = employees(http, modified_after=since.isoformat(), include_deleted_data="true").json()["results"]
    assert [(e["remote_id"], e["remote_was_deleted"]) for e in changed] == \
        [("1007", False), ("1008", True), ("1040", False)]
    logged = control.get("/_standin/requests").json()["requests"]
    assert ["GET", "/api/hris/v1/linked-account-scopes", 500] in logged
    assert control.post("/_standin/depart", json={"indexes": "x"}).status_code == 400
    assert control.post("/_standin/fail", json={"status": 1234}).status_code == 400
    assert control.put("/_standin/fail").status_code == 404
    control.close()


def test_the_command_line_serves_the_stand_in_with_the_credential_from_the_environment():
    port = free_port()
    credential = {"api_key": "cli-api-key", "account_token": "cli-account"}
    process = subprocess.Popen(
        [PYTHON, "-m", "local.merge", "serve", "--port", str(port), "--employees", "5", "--domain", "acme.example",
         "--disabled-field", "manager", "--credential-env", "TEST_MERGE_CREDENTIAL"],
        cwd=PROJECT_ROOT, env={**base_environment(), "TEST_MERGE_CREDENTIAL": json.dumps(credential)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}/api/hris/v1"

        def listed():
            if process.poll() is not None:
                raise AssertionError(f"the stand-in exited: {process.stdout.read()}")
            try:
                return httpx.get(f"{base}/employees", headers=auth("cli-api-key", "cli-account"), timeout=2)
            except httpx.TransportError:
                return None

        answer = wait_until(listed, message="the stand-in's employees")
        assert answer.status_code == 200
        results = answer.json()["results"]
        assert len(results) == 5
        assert all(e["work_email"].endswith("@acme.example") for e in results)
        assert all(employee["manager"] is None for employee in results)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "cli-api-key" not in output
    assert f"{base}" in output
