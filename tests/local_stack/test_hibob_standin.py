"""The HiBob stand-in (local/hibob.py) on the wire: the search's shapes and rules, the fields metadata,
authentication, faults, the rate limit, the control endpoints and the command line."""

from __future__ import annotations

import base64
import json
import subprocess

import httpx
import pytest

from local.azurite import free_port
from local.hibob import FIELDS, CustomTable, HiBobStandIn, TableColumn
from local.hrms_people import Workforce
from tests.stack import PROJECT_ROOT, PYTHON, base_environment, wait_until


def basic(user: str, token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


@pytest.fixture
def standin():
    with HiBobStandIn(Workforce(40)) as running:
        yield running


@pytest.fixture
def http(standin):
    with httpx.Client(base_url=standin.base_url, headers=basic(standin.service_user_id, standin.token),
                      timeout=10) as client:
        yield client


def search(http: httpx.Client, **body) -> httpx.Response:
    return http.post("/v1/people/search", json=body)


def test_the_search_answers_everyone_at_once_with_slash_keys_and_nested_objects(http, standin):
    answer = search(http, fields=["root.id", "work.department", "custom.reviewRating"], showInactive=True)
    assert answer.status_code == 200
    employees = answer.json()["employees"]
    assert len(employees) == 40
    assert [employee["id"] for employee in employees] == [str(1000 + index) for index in range(40)]
    first = standin.workforce.person(0)
    department, rating = str(first.department_id), first.review_rating
    assert employees[0] == {"/root/id": "1000", "id": "1000", "/work/department": department,
                            "work": {"department": department},
                            "/custom/reviewRating": rating, "custom": {"reviewRating": rating}}


def test_human_readable_replace_and_append(http, standin):
    person, manager = standin.workforce.person(9), standin.workforce.person(1)
    fields = ["root.id", "work.department", "work.reportsTo", "custom.reviewRating", "work.title"]
    replaced = search(http, fields=fields, showInactive=True, humanReadable="REPLACE").json()["employees"][9]
    assert replaced["work"] == {"department": person.department, "title": person.title,
                                "reportsTo": f"{manager.first_name} {manager.last_name}"}
    assert replaced["/custom/reviewRating"] == str(person.review_rating)
    appended = search(http, fields=fields, showInactive=True, humanReadable="APPEND").json()["employees"]
    assert appended[9]["work"]["reportsTo"] == str(manager.id)
    assert appended[9]["humanReadable"]["work"]["department"] == person.department
    # Null values have no human-readable value: the first employee reports to nobody.
    assert appended[0]["/work/reportsTo"] is None
    assert "/work/reportsTo" not in appended[0]["humanReadable"]


def test_without_fields_the_readable_non_custom_fields_come_back(standin, http):
    employee = search(http, showInactive=True).json()["employees"][0]
    keys = {key for key in employee if key.startswith("/")}
    assert keys == {field.slash_key for field in FIELDS if not field.custom}


def test_show_inactive_and_departures(http, standin):
    inactive = {str(person.id) for person in standin.workforce.people() if person.status == "inactive"}
    assert inactive, "the workforce has inactive people"
    active_only = {employee["id"] for employee in search(http, fields=["root.id"]).json()["employees"]}
    everyone = {employee["id"] for employee in search(http, fields=["root.id"], showInactive=True).json()["employees"]}
    assert active_only == everyone - inactive
    assert len(everyone) == 40
    standin.depart([5])
    after = {employee["id"] for employee in search(http, fields=["root.id"], showInactive=True).json()["employees"]}
    assert after == everyone - {"1005"}


def test_unreadable_and_unknown_fields_are_left_out_silently_but_listed_in_the_metadata():
    with HiBobStandIn(Workforce(3), unreadable={"work.title"}) as standin:
        http = httpx.Client(base_url=standin.base_url, headers=basic(standin.service_user_id, standin.token))
        answer = search(http, fields=["root.id", "work.title", "no.suchField"], showInactive=True)
        metadata = http.get("/v1/company/people/fields")
        http.close()
    assert answer.status_code == 200
    assert answer.json()["employees"][0] == {"/root/id": "1000", "id": "1000"}
    ids = [item["id"] for item in metadata.json()]
    assert "work.title" in ids
    assert ids == [field.id for field in FIELDS]
    department = next(item for item in metadata.json() if item["id"] == "work.department")
    assert department == {"id": "work.department", "category": "work", "categoryId": "work",
                          "categoryDisplayName": "Work", "name": "Department", "description": None,
                          "jsonPath": "work.department", "type": "list", "typeData": {"listId": "department"},
                          "historical": True}


def test_filters_and_request_limits(http, standin):
    person = standin.workforce.person(7)
    by_email = search(http, fields=["root.id"], showInactive=True,
                      filters=[{"fieldPath": "root.email", "operator": "equals", "values": [person.email.upper()]}])
    assert by_email.json()["employees"] == [{"/root/id": "1007", "id": "1007"}]
    by_id = search(http, fields=["root.id"], showInactive=True,
                   filters=[{"fieldPath": "root.id", "operator": "equals", "values": ["1001", "1002"]}])
    assert [employee["id"] for employee in by_id.json()["employees"]] == ["1001", "1002"]
    refused = [
        search(http, fields=["root.id"] * 401),
        search(http, fields="root.id"),
        search(http, filters=[{"fieldPath": "work.title", "operator": "equals", "values": ["x"]}]),
        search(http, filters=[{}, {}]),
        search(http, humanReadable="SOMETIMES"),
        search(http, showInactive="yes"),
        http.post("/v1/people/search", content=b"not json"),
        http.post("/v1/people/search", json=[1]),
    ]
    assert [answer.status_code for answer in refused] == [400] * len(refused)
    assert refused[0].json() == {"error": "Bad Request", "message": "At most 400 fields can be requested"}


def test_every_api_call_needs_the_service_users_basic_credentials(standin):
    for headers in ({}, basic(standin.service_user_id, "wrong"), basic("someone-else", standin.token),
                    {"Authorization": "Basic %%%"}, {"Authorization": "Bearer " + standin.token}):
        for method, path in (("POST", "/v1/people/search"), ("GET", "/v1/company/people/fields")):
            answer = httpx.request(method, standin.base_url + path, headers=headers, json={})
            assert answer.status_code == 401
            assert answer.json()["error"] == "Unauthorized"
    assert standin.requests_count == 10


def test_unknown_paths_and_methods(http):
    assert http.get("/v1/people").status_code == 404
    assert http.get("/v1/people/search").status_code == 405
    assert http.post("/v1/company/people/fields").status_code == 405


def test_faults_answer_with_the_status_and_retry_after_only_when_given(http, standin):
    standin.fail_next(503, path_contains="fields")
    standin.fail_next(429, retry_after=2, count=2, path_contains="search")
    first = search(http, fields=["root.id"])
    assert (first.status_code, first.headers["Retry-After"]) == (429, "2")
    assert first.json() == {"error": "Too Many Requests", "message": "Too Many Requests (a fault injected by the "
                                                                    "stand-in)"}
    assert search(http, fields=["root.id"]).status_code == 429
    assert search(http, fields=["root.id"]).status_code == 200
    unavailable = http.get("/v1/company/people/fields")
    assert unavailable.status_code == 503
    assert "Retry-After" not in unavailable.headers
    assert http.get("/v1/company/people/fields").status_code == 200
    with pytest.raises(ValueError):
        standin.fail_next(299 + 1000)


def test_a_dropped_request_is_read_then_the_connection_closes_without_an_answer(http, standin):
    standin.drop_next(2)
    for _ in range(2):
        with pytest.raises(httpx.RemoteProtocolError):
            search(http, fields=["root.id"])
    assert search(http, fields=["root.id"]).status_code == 200
    assert standin.requests_log == [("POST", "/v1/people/search", 0)] * 2 + [("POST", "/v1/people/search", 200)]
    assert standin.requests_count == 3


def test_the_rate_limit_counts_searches_in_the_last_minute(http, standin):
    standin.limit_rate(2)
    answers = [search(http, fields=["root.id"]) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[0].headers["X-RateLimit-Limit"] == "2"
    assert answers[0].headers["X-RateLimit-Remaining"] == "1"
    throttled = answers[2]
    assert throttled.headers["X-RateLimit-Remaining"] == "0"
    assert int(throttled.headers["X-RateLimit-Reset"]) > 0
    assert "Retry-After" not in throttled.headers
    assert http.get("/v1/company/people/fields").status_code == 200  # the limit is the search's
    standin.limit_rate(None)
    assert search(http, fields=["root.id"]).status_code == 200
    standin.limit_rate(1)
    standin.clear_faults()
    assert [search(http, fields=["root.id"]).status_code for _ in range(2)] == [200, 200]


def test_the_control_endpoints(http, standin):
    control = httpx.Client(base_url=standin.base_url, timeout=10)
    assert control.post("/_standin/fail", json={"status": 502, "count": 2}).json() == {"pending": 2}
    assert search(http, fields=["root.id"]).status_code == 502
    assert control.delete("/_standin/fail").json() == {"pending": 0}
    assert search(http, fields=["root.id"]).status_code == 200
    assert control.post("/_standin/drop", json={"count": 1}).json() == {"pending": 1}
    with pytest.raises(httpx.RemoteProtocolError):
        search(http, fields=["root.id"])
    assert control.post("/_standin/rate", json={"per_minute": 1}).json() == {"per_minute": 1}
    assert [search(http, fields=["root.id"]).status_code for _ in range(2)] == [200, 429]
    assert control.post("/_standin/rate", json={"per_minute": None}).status_code == 200
    before = standin.workforce.person(4).title
    assert control.post("/_standin/change", json={"indexes": [4]}).json() == {"change": [4]}
    assert standin.workforce.person(4).title != before
    assert control.post("/_standin/depart", json={"indexes": [4, 5]}).status_code == 200
    hired = control.post("/_standin/hire", json={"count": 2})
    assert (hired.status_code, hired.json()) == (201, {"indexes": [40, 41]})
    ids = [employee["id"] for employee in search(http, fields=["root.id"], showInactive=True).json()["employees"]]
    assert "1004" not in ids
    assert "1041" in ids
    assert len(ids) == 40
    logged = control.get("/_standin/requests").json()["requests"]
    assert logged[0] == ["POST", "/v1/people/search", 502]
    assert ["POST", "/v1/people/search", 0] in logged
    assert control.post("/_standin/fail", json={"count": 1}).status_code == 400
    assert control.post("/_standin/rate", json={"per_minute": 0}).status_code == 400
    assert control.post("/_standin/change", content=b"[]").status_code == 400
    assert control.get("/_standin/nothing").status_code == 404
    control.close()


def test_the_command_line_serves_the_stand_in_with_the_credential_from_the_environment():
    port = free_port()
    credential = {"service_user_id": "SERVICE-USER-CLI", "token": "cli-token"}
    process = subprocess.Popen(
        [PYTHON, "-m", "local.hibob", "serve", "--port", str(port), "--employees", "7", "--domain", "acme.example",
         "--unreadable", "work.title", "--credential-env", "TEST_HIBOB_CREDENTIAL"],
        cwd=PROJECT_ROOT, env={**base_environment(), "TEST_HIBOB_CREDENTIAL": json.dumps(credential)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"

        def searched():
            if process.poll() is not None:
                raise AssertionError(f"the stand-in exited: {process.stdout.read()}")
            try:
                return httpx.post(f"{base}/v1/people/search", json={"fields": ["root.email", "work.title"]},
                                  headers=basic("SERVICE-USER-CLI", "cli-token"), timeout=2)
            except httpx.TransportError:
                return None

        answer = wait_until(searched, message="the stand-in's search")
        assert answer.status_code == 200
        emails = [employee["email"] for employee in answer.json()["employees"]]
        assert emails
        assert all(email.endswith("@acme.example") for email in emails)
        assert all("work" not in employee for employee in answer.json()["employees"])
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "cli-token" not in output
    assert "SERVICE-USER-CLI" in output


# --- custom tables (the write-back) -----------------------------------------------------------------------------


def test_custom_tables_metadata_lists_the_tables_and_their_columns(http):
    tables = http.get("/v1/people/custom-tables/metadata").json()["tables"]
    assert [table["id"] for table in tables] == ["learning"]
    learning = tables[0]
    assert set(learning) == {"id", "name", "category", "description", "columns"}
    assert [(column["id"], column["type"], column["mandatory"]) for column in learning["columns"]] == [
        ("column_title", "text", True), ("column_date", "date", False), ("column_score", "number", False),
        ("column_hours", "number", False), ("column_marker", "text", False)]
    assert all(set(column) == {"id", "name", "description", "mandatory", "type"} for column in learning["columns"])
    assert http.get("/v1/people/custom-tables/metadata/learning").json() == learning
    assert http.get("/v1/people/custom-tables/metadata/other").status_code == 404
    assert http.post("/v1/people/custom-tables/metadata", json={}).status_code == 405


def test_custom_table_entries_are_made_and_listed(http, standin):
    path = "/v1/people/custom-tables/1003/learning"
    assert http.get(path).json() == {"values": []}
    made = http.post(path, json={"values": {"column_title": "Coaching", "column_date": "2026-03-12",
                                            "column_score": 87.5, "column_marker": "[ec:r1]"}})
    assert made.status_code == 200
    entry = made.json()
    assert entry == {"id": entry["id"], "column_title": "Coaching", "column_date": "2026-03-12",
                     "column_score": 87.5, "column_hours": None, "column_marker": "[ec:r1]"}
    assert type(entry["id"]) is int
    second = http.post(path, json={"values": {"column_title": "Assessment"}}).json()
    assert http.get(path).json() == {"values": [entry, second]}
    assert standin.table_entries(1003) == [entry, second]
    assert http.get("/v1/people/custom-tables/1004/learning").json() == {"values": []}
    assert standin.requests_log[-1] == ("GET", "/v1/people/custom-tables/1004/learning", 200)


def test_custom_table_entries_refuse_unknown_columns_and_bad_values(http, standin):
    path = "/v1/people/custom-tables/1003/learning"
    refused = http.post(path, json={"values": {"column_grade": "A", "column_score": "high",
                                               "column_date": "12.03.2026"}})
    assert refused.status_code == 400
    message = refused.json()["message"]
    for fragment in ("unknown column column_grade", "column_title (Programme) is mandatory",
                     "column_score (Score) must be a number", "column_date (Completed on) must be a date"):
        assert fragment in message
    for body in ({"column_title": "x"}, {"values": ["x"]}, [1]):
        assert http.post(path, json=body).status_code == 400, body
    assert http.post(path, content=b"{", headers={"Content-Type": "application/json"}).status_code == 400
    assert standin.table_entries(1003) == []
    assert http.get("/v1/people/custom-tables/9999/learning").status_code == 404
    assert http.post("/v1/people/custom-tables/1003/trainings", json={"values": {}}).status_code == 404
    assert http.delete(path).status_code == 405
    assert http.get("/v1/people/custom-tables/1003").status_code == 404
    standin.depart([3])
    assert http.get(path).status_code == 404


def test_custom_tables_need_auth_take_faults_and_may_answer_a_create_without_a_body(standin):
    path = "/v1/people/custom-tables/1002/learning"
    assert httpx.get(standin.base_url + path).status_code == 401
    headers = basic(standin.service_user_id, standin.token)
    standin.fail_next(503, path_contains="/custom-tables/")
    assert httpx.post(standin.base_url + path, headers=headers,
                      json={"values": {"column_title": "x"}}).status_code == 503
    assert standin.table_entries(1002) == []
    columns = (TableColumn("column_name", "Name", mandatory=True), TableColumn("column_tags", "Tags", "multi-list"))
    table = CustomTable("skills", "Skills", columns)
    with HiBobStandIn(Workforce(5), tables=[table], answer_created_entry=False) as quiet:
        headers = basic(quiet.service_user_id, quiet.token)
        made = httpx.post(quiet.base_url + "/v1/people/custom-tables/1001/skills", headers=headers,
                          json={"values": {"column_name": "Go", "column_tags": ["a"]}})
        assert made.status_code == 200
        assert made.content == b""
        assert quiet.table_entries(1001, "skills") == [{"id": 1, "column_name": "Go", "column_tags": ["a"]}]
        assert httpx.post(quiet.base_url + "/v1/people/custom-tables/1001/skills", headers=headers,
                          json={"values": {"column_name": "Go", "column_tags": "a"}}).status_code == 400
