"""The BambooHR stand-in (local/bamboohr.py) on the wire: List Employees (shape, fields, cursors, limits,
filters, sorting, restricted fields), Get Employee, changed employees, the field metadata, authentication,
faults and throttling, the control endpoints and the command line."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from local.bamboohr import LIST_BASE_FIELDS, BambooHRStandIn, encode_cursor
from local.hrms_people import Workforce
from tests.stack import PROJECT_ROOT, PYTHON, base_environment, wait_until

API_KEY = "test-api-key"
JSON = {"Accept": "application/json"}


@pytest.fixture
def standin():
    with BambooHRStandIn(Workforce(30), api_key=API_KEY) as running:
        yield running


@pytest.fixture
def http(standin):
    with httpx.Client(base_url=standin.base_url, auth=(API_KEY, "x"), headers=JSON, timeout=10) as client:
        yield client


def employees(http, **params):
    response = http.get("/api/v1/employees", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --- List Employees -------------------------------------------------------------------------------------------


def test_list_employees_has_the_documented_shape(http, standin):
    body = employees(http, **{"page[limit]": 2, "fields": "workEmail,departmentName,reportsToId,hireDate"})
    assert set(body) == {"data", "meta", "_links"}
    assert body["meta"]["total"] == 30
    assert body["meta"]["page"]["limit"] == 2
    assert body["meta"]["page"]["prevCursor"] is None
    first, second = body["data"]
    assert list(first) == [*LIST_BASE_FIELDS, "workEmail", "hireDate", "departmentName", "reportsToId",
                           "_restrictedFields"]
    person = standin.workforce.person(1)
    assert second["employeeId"] == str(person.id)
    assert second["workEmail"] == person.email
    assert second["reportsToId"] == str(standin.workforce.person(0).id)
    assert second["hireDate"] == person.hire_date
    assert second["status"] in ("Active", "Inactive")
    assert second["_restrictedFields"] == []
    assert body["_links"]["self"]["href"].startswith(f"{standin.base_url}/api/v1/employees?")
    assert "page%5Bafter%5D=" in body["_links"]["next"]["href"]


def test_custom_fields_are_ignored_by_the_list_unless_asked_to_serve_them(http):
    record = employees(http, fields="customCompetencies,supervisorEmail,nonsense,workEmail")["data"][0]
    assert "customCompetencies" not in record
    assert "supervisorEmail" not in record
    assert "nonsense" not in record
    assert "workEmail" in record
    with BambooHRStandIn(Workforce(3), api_key=API_KEY, list_custom_fields=True) as generous:
        served = httpx.get(f"{generous.base_url}/api/v1/employees", auth=(API_KEY, ""), headers=JSON,
                           params={"fields": "customCompetencies,customReviewRating,supervisorEmail"}).json()
    assert served["data"][1]["customReviewRating"] == str(generous.workforce.person(1).review_rating)
    assert served["data"][1]["supervisorEmail"] == generous.workforce.person(0).email


def test_cursors_walk_every_employee_once(http):
    seen, after, pages = [], None, 0
    while True:
        params = {"page[limit]": 7, **({"page[after]": after} if after else {})}
        body = employees(http, **params)
        seen += [record["employeeId"] for record in body["data"]]
        pages += 1
        after = body["meta"]["page"]["nextCursor"]
        if after is None:
            assert "next" not in body["_links"]
            break
    assert seen == [str(1000 + index) for index in range(30)]
    assert pages == 5


def test_the_last_full_page_has_no_next_cursor(http):
    first = employees(http, **{"page[limit]": 15})
    last = employees(http, **{"page[limit]": 15, "page[after]": first["meta"]["page"]["nextCursor"]})
    assert len(last["data"]) == 15
    assert last["meta"]["page"]["nextCursor"] is None


def test_cursors_name_their_boundary_employee(http):
    body = employees(http, **{"page[limit]": 3})
    assert json.loads(base64.b64decode(body["meta"]["page"]["nextCursor"])) == {"cursor": "after-1002"}
    second = employees(http, **{"page[limit]": 3, "page[after]": body["meta"]["page"]["nextCursor"]})
    back = employees(http, **{"page[limit]": 3, "page[before]": second["meta"]["page"]["prevCursor"]})
    assert [record["employeeId"] for record in back["data"]] == ["1000", "1001", "1002"]


def test_the_default_and_maximum_page_limits(http):
    assert len(employees(http)["data"]) == 30
    assert employees(http)["meta"]["page"]["limit"] == 250
    with BambooHRStandIn(Workforce(2600), api_key=API_KEY) as big:
        client = httpx.Client(base_url=big.base_url, auth=(API_KEY, "x"), headers=JSON)
        assert len(client.get("/api/v1/employees").json()["data"]) == 250
        assert len(client.get("/api/v1/employees", params={"page[limit]": 2500}).json()["data"]) == 2500
        client.close()
    for limit in (0, 2501, "ten"):
        refused = http.get("/api/v1/employees", params={"page[limit]": limit})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "BadRequest"


def test_bad_cursors_are_bad_pages(http, standin):
    cursor = employees(http, **{"page[limit]": 5})["meta"]["page"]["nextCursor"]
    for after in ("garbage", encode_cursor("before", "1004")):
        refused = http.get("/api/v1/employees", params={"page[after]": after})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "BadPage"
    standin.depart([4])  # the boundary employee is deleted
    gone = http.get("/api/v1/employees", params={"page[after]": cursor})
    assert gone.status_code == 400
    assert gone.json()["error"]["code"] == "BadPage"


def test_filters_and_sorting(http, standin):
    by_ids = employees(http, **{"filter[ids][]": ["1003", "1001"], "fields": "workEmail"})
    assert [record["employeeId"] for record in by_ids["data"]] == ["1001", "1003"]
    assert by_ids["meta"]["total"] == 2
    comma = employees(http, **{"filter[ids]": "1005,1006"})
    assert [record["employeeId"] for record in comma["data"]] == ["1005", "1006"]
    inactive = employees(http, **{"filter[status]": "inactive"})["data"]
    assert all(record["status"] == "Inactive" for record in inactive)
    name = standin.workforce.person(7).last_name
    assert "1007" in [record["employeeId"] for record in employees(http, **{"filter[lastName]": name.upper()})["data"]]
    descending = employees(http, sort="-employeeId")["data"]
    assert descending[0]["employeeId"] == "1029"
    by_name = [record["lastName"] for record in employees(http, sort="lastName")["data"]]
    assert by_name == sorted(by_name)
    for params in ({"sort": "workEmail"}, {"filter[status]": "gone"}, {"filter[ids][]": "x"},
                   {"filter[email]": "a"}):
        assert http.get("/api/v1/employees", params=params).status_code == 400


def test_restricted_fields_are_null_and_listed(http, standin):
    standin.restricted = {"workEmail", "jobTitleName", "customCompetencies"}
    record = employees(http, fields="workEmail,departmentName")["data"][0]
    assert record["workEmail"] is None
    assert record["jobTitleName"] is None
    assert record["departmentName"] is not None
    assert record["_restrictedFields"] == ["jobTitleName", "workEmail"]
    assert employees(http, **{"filter[jobTitleName]": "e"})["data"] == []  # filtering on it leaks nothing
    single = http.get("/api/v1/employees/1001", params={"fields": "workEmail,customCompetencies,lastName"}).json()
    assert single == {"id": "1001", "lastName": standin.workforce.person(1).last_name}


# --- Get Employee, changed, fields ------------------------------------------------------------------------------


def test_get_employee(http, standin):
    person, manager = standin.workforce.person(9), standin.workforce.person(1)
    assert http.get("/api/v1/employees/1009").json() == {"id": "1009", "firstName": person.first_name,
                                                         "lastName": person.last_name}
    fields = "customCompetencies,customReviewRating,supervisorEmail,department,employmentStatus,4001,unknown"
    body = http.get("/api/v1/employees/1009/", params={"fields": fields}).json()
    assert body == {"id": "1009", "customCompetencies": person.competencies,
                    "customReviewRating": str(person.review_rating), "supervisorEmail": manager.email,
                    "department": person.department, "employmentStatus": body["employmentStatus"],
                    "4001": person.competencies}
    assert http.get("/api/v1/employees/0").json()["id"] == "1000"
    assert http.get("/api/v1/employees/9999").status_code == 404
    assert http.get("/api/v1/employees/1009", params={"fields": ",".join(["firstName"] * 401)}).status_code == 400
    xml = http.get("/api/v1/employees/1009", headers={"Accept": "*/*"})
    assert xml.headers["Content-Type"] == "text/xml"
    assert xml.text.startswith("<?xml")
    legacy = http.get("/api/gateway.php/acme/v1/employees/1009")
    assert legacy.json()["id"] == "1009"


def test_changed_employees(http, standin):
    before = datetime.now(UTC) - timedelta(seconds=1)
    standin.change([2, 4])
    standin.depart([6])
    [hired] = standin.hire(1)
    body = http.get("/api/v1/employees/changed", params={"since": before.isoformat()}).json()
    assert set(body) == {"latest", "employees"}
    changes = body["employees"]
    assert {key: change["action"] for key, change in changes.items()} == {
        "1002": "Updated", "1004": "Updated", "1006": "Deleted", str(1000 + hired): "Inserted"}
    assert changes["1002"]["id"] == "1002"
    assert datetime.fromisoformat(changes["1002"]["lastChanged"]) >= before.replace(microsecond=0)
    assert body["latest"] == max(change["lastChanged"] for change in changes.values())
    only_deleted = http.get("/api/v1/employees/changed", params={"since": before.isoformat(), "type": "deleted"})
    assert list(only_deleted.json()["employees"]) == ["1006"]
    later = http.get("/api/v1/employees/changed", params={"since": "2099-01-01T00:00:00Z"}).json()
    assert later == {"latest": None, "employees": {}}
    assert http.get("/api/v1/employees/changed").status_code == 400
    assert http.get("/api/v1/employees/changed", params={"since": "yesterday"}).status_code == 400
    assert http.get("/api/v1/employees/changed", params={"since": "2026-01-01T00:00:00Z", "type": "x"}) \
        .status_code == 400


def test_field_metadata(http):
    fields = http.get("/api/v1/meta/fields").json()
    assert all({"id", "name", "type"} <= set(item) for item in fields)
    aliases = {item.get("alias") for item in fields}
    assert {"customCompetencies", "customReviewRating", "supervisorEmail", "department"} <= aliases
    assert any("alias" not in item for item in fields)  # subfields come without one
    assert http.get("/api/v1/meta/fields", headers={"Accept": "application/xml"}).text.startswith("<?xml")


# --- authentication, errors, faults ---------------------------------------------------------------------------


def test_authentication_is_the_api_key_as_basic_user(standin):
    url = f"{standin.base_url}/api/v1/employees"
    assert httpx.get(url, auth=(API_KEY, "any password at all")).status_code == 200
    for auth in (None, ("wrong", "x")):
        refused = httpx.get(url, auth=auth)
        assert refused.status_code == 401
        assert refused.content == b""
        assert refused.headers["X-BambooHR-Error-Message"]
    assert httpx.get(url, headers={"Authorization": "Bearer " + API_KEY}).status_code == 401


def test_unknown_paths_and_methods(http):
    assert http.get("/api/v1/nothing").status_code == 404
    assert http.get("/elsewhere").status_code == 404
    assert http.post("/api/v1/employees/changed").status_code == 405


def test_fail_next_answers_bamboohr_errors(http, standin):
    standin.fail_next(429, retry_after=2)
    throttled = http.get("/api/v1/employees")
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "2"
    assert throttled.json()["error"]["code"] == 429
    standin.fail_next(503)
    unavailable = http.get("/api/v1/employees")
    assert unavailable.status_code == 503
    assert "Retry-After" not in unavailable.headers
    standin.fail_next(500, count=2, path_contains="/meta/")
    assert http.get("/api/v1/employees").status_code == 200
    assert http.get("/api/v1/meta/fields").status_code == 500
    assert http.get("/api/v1/meta/fields").content == b""
    assert http.get("/api/v1/meta/fields").status_code == 200
    standin.fail_next(400)
    assert http.get("/api/v1/employees").json()["error"]["code"] == "BadRequest"
    assert [status for _, _, status in standin.requests_log] == [429, 503, 200, 500, 500, 200, 400]
    assert standin.requests_count == 7


def test_drop_next_closes_the_connection_unanswered(http, standin):
    standin.drop_next()
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/api/v1/employees")
    assert http.get("/api/v1/employees").status_code == 200
    assert [status for _, _, status in standin.requests_log] == [0, 200]


@pytest.mark.parametrize("status", [429, 503])
def test_limit_rate_throttles_with_retry_after(status):
    with BambooHRStandIn(Workforce(3), api_key=API_KEY, throttle_status=status) as standin:
        client = httpx.Client(base_url=standin.base_url, auth=(API_KEY, "x"), headers=JSON)
        standin.limit_rate(2)
        answers = [client.get("/api/v1/employees") for _ in range(3)]
        assert [answer.status_code for answer in answers] == [200, 200, status]
        assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
        standin.limit_rate(None)
        assert client.get("/api/v1/employees").status_code == 200
        client.close()
    with pytest.raises(ValueError):
        BambooHRStandIn(Workforce(1), throttle_status=500)


# --- control endpoints and the command line -----------------------------------------------------------------------


def test_control_endpoints(http, standin):
    control = httpx.Client(base_url=standin.base_url, timeout=10)  # no auth needed
    assert control.post("/_standin/fail", json={"status": 502, "count": 1, "retry_after": 1,
                                                "path_contains": "/meta"}).status_code == 200
    failed = http.get("/api/v1/meta/fields")
    assert (failed.status_code, failed.headers["Retry-After"]) == (502, "1")
    assert control.post("/_standin/drop", json={"count": 1}).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/api/v1/employees")
    assert control.post("/_standin/rate", json={"per_minute": 1}).status_code == 200
    assert http.get("/api/v1/employees").status_code == 200
    assert http.get("/api/v1/employees").status_code == 429
    assert control.post("/_standin/rate", json={"per_minute": None}).status_code == 200
    assert control.post("/_standin/fail", json={"status": 500, "count": 5}).status_code == 200
    assert control.delete("/_standin/fail").status_code == 200
    assert http.get("/api/v1/employees").status_code == 200
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert control.post("/_standin/change", json={"indexes": [1]}).status_code == 200
    assert control.post("/_standin/depart", json={"indexes": [2]}).status_code == 200
    assert control.post("/_standin/hire", json={"count": 2}).json() == {"indexes": [30, 31]}
    changed = http.get("/api/v1/employees/changed", params={"since": before.isoformat()}).json()["employees"]
    assert {key: change["action"] for key, change in changed.items()} == {
        "1001": "Updated", "1002": "Deleted", "1030": "Inserted", "1031": "Inserted"}
    assert control.post("/_standin/restrict", json={"fields": ["workEmail"]}).status_code == 200
    assert employees(http, fields="workEmail")["data"][0]["_restrictedFields"] == ["workEmail"]
    logged = control.get("/_standin/requests").json()["requests"]
    assert ["GET", "/api/v1/meta/fields", 502] in logged
    assert all(not target.startswith("/_standin") for _, target, _ in logged)
    assert control.post("/_standin/fail", json={"count": 1}).status_code == 400
    assert control.post("/_standin/fail", content=b"[1]").status_code == 400
    assert control.post("/_standin/nothing", json={}).status_code == 404
    control.close()


def test_the_command_line_serves_the_stand_in():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**base_environment(), "MY_BAMBOO_KEY": "key-from-the-environment"}
    process = subprocess.Popen(
        [PYTHON, "-m", "local.bamboohr", "serve", "--port", str(port), "--employees", "12", "--domain",
         "acme.example", "--api-key-env", "MY_BAMBOO_KEY", "--restricted", "homeEmail"],
        cwd=PROJECT_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/employees"

        def listing():
            if process.poll() is not None:
                raise AssertionError(f"the stand-in exited: {process.stdout.read()}")
            try:
                return httpx.get(url, params={"fields": "workEmail,homeEmail"}, timeout=2,
                                 auth=("key-from-the-environment", "x"))
            except httpx.TransportError:
                return None

        body = wait_until(listing, message="the stand-in's employee list").json()
        assert body["meta"]["total"] == 12
        assert body["data"][0]["workEmail"].endswith("@acme.example")
        assert body["data"][0]["_restrictedFields"] == ["homeEmail"]
        assert httpx.get(url, auth=("bamboohr-local-api-key", "x"), timeout=2).status_code == 401
    finally:
        process.terminate()
        process.wait(10)


# --- training (the write-back) ----------------------------------------------------------------------------------


def test_training_types_are_an_object_keyed_by_id(standin):
    types = {12: "Coaching programme", 14: {"name": "First aid", "renewable": True, "frequency": 12,
                                            "category": {"id": 3, "name": "Safety"}}}
    with BambooHRStandIn(Workforce(3), api_key=API_KEY, training_types=types) as custom:
        answer = httpx.get(custom.base_url + "/api/v1/training/type", auth=(API_KEY, "x"))
    assert answer.status_code == 200
    body = answer.json()
    assert list(body) == ["12", "14"]
    assert body["12"] == {"id": 12, "name": "Coaching programme", "renewable": False, "frequency": None,
                          "dueFromHireDate": None, "required": None, "category": [], "linkUrl": None,
                          "description": None, "allowEmployeesToMarkComplete": False}
    assert body["14"]["category"] == {"id": 3, "name": "Safety"}
    assert body["14"]["frequency"] == 12
    assert set(standin.training_types) == {12, 13}  # the default types
    with pytest.raises(ValueError, match="training type 5"):
        BambooHRStandIn(Workforce(3), training_types={5: {"title": "no name"}})


def test_training_records_are_created_with_an_integer_type_and_listed_with_a_string_one(http, standin):
    path = "/api/v1/training/record/employee/1002"
    none = http.get(path)
    assert none.status_code == 200
    assert none.json() == []  # BambooHR's empty map
    created = http.post(path, json={"completed": "2026-03-12", "type": 12, "hours": 16, "credits": 2.5,
                                    "notes": "sample note", "instructor": "Bob Jones",
                                    "cost": {"currency": "USD", "amount": "100.00"}})
    assert created.status_code == 201
    record = created.json()
    assert record == {"id": record["id"], "employeeId": "1002", "completed": "2026-03-12", "notes": "sample note",
                      "instructor": "Bob Jones", "credits": "2.5", "hours": "16", "cost": "100.00 USD", "type": 12}
    assert type(record["id"]) is int
    # The spec's own example sends numbers as strings: taken too.
    second = http.post(path, json={"completed": "2026-03-13", "type": "13", "hours": "1.5"}).json()
    assert second["type"] == 13
    listed = http.get(path).json()
    assert list(listed) == [str(record["id"]), str(second["id"])]
    assert listed[str(record["id"])] == {**record, "type": "12"}
    assert listed[str(second["id"])]["hours"] == "1.5"
    assert listed[str(second["id"])]["credits"] is None
    assert http.get(path, params={"type": 13}).json() == {str(second["id"]): {**second, "type": "13"}}
    assert http.get(path, params={"type": 99}).json() == []
    assert http.get(path, params={"type": "coaching"}).status_code == 400
    assert standin.training_records(1002) == list(listed.values())
    assert standin.training_records(1003) == []


def test_creating_a_training_record_refuses_what_the_spec_does_not_allow(http, standin):
    path = "/api/v1/training/record/employee/1002"
    refused = http.post(path, json={"type": 99, "hours": "many", "notes": 5})
    assert refused.status_code == 400
    assert refused.content == b""
    reason = refused.headers["X-BambooHR-Error-Message"]
    for fragment in ("completed is required", "type 99 is not an existing training type", "hours must be a number",
                     "notes must be a string"):
        assert fragment in reason
    for body in ({"completed": "12.03.2026", "type": 12}, {"completed": "2026-02-30", "type": 12},
                 {"completed": "2026-03-12"}, {"completed": "2026-03-12", "type": True},
                 {"completed": "2026-03-12", "type": 12, "cost": {"amount": "5"}}, [1]):
        assert http.post(path, json=body).status_code == 400, body
    assert http.post(path, content=b"not json", headers={"Content-Type": "application/json"}).status_code == 400
    assert http.post("/api/v1/training/record/employee/9999", json={"completed": "2026-03-12", "type": 12}) \
        .status_code == 404
    assert http.get("/api/v1/training/record/employee/abc").status_code == 404
    assert http.delete(path).status_code == 405
    assert http.post("/api/v1/training/type", json={"name": "x"}).status_code == 405
    assert http.get("/api/v1/training/other").status_code == 404
    standin.depart([2])
    assert http.get(path).status_code == 404
    assert standin.training_records(1002) == []


def test_a_faulted_training_record_is_not_created(http, standin):
    path = "/api/v1/training/record/employee/1004"
    standin.fail_next(503, retry_after=1, path_contains="/training/record")
    failed = http.post(path, json={"completed": "2026-03-12", "type": 12})
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "1"
    assert standin.training_records(1004) == []
    assert http.post(path, json={"completed": "2026-03-12", "type": 12}).status_code == 201
    assert len(standin.training_records(1004)) == 1
    assert http.get(path, auth=("wrong", "x")).status_code == 401
