"""The Personio stand-in (local/personio.py) on the wire: v1 auth and employees (shapes, paging limits, filters,
the whitelist), v2 token, persons, employments and org units, error bodies, faults, throttling, the control
endpoints and the command line."""

from __future__ import annotations

import json
import socket
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from local.hrms_people import Workforce
from local.personio import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, PersonioStandIn, parse_moment
from tests.stack import PROJECT_ROOT, PYTHON, base_environment, wait_until

CREDENTIAL = {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}
WRAPPER_KEYS = {"label", "value", "type", "universal_id"}


@pytest.fixture
def standin():
    with PersonioStandIn(Workforce(130)) as running:
        yield running


@pytest.fixture
def http(standin):
    with httpx.Client(base_url=standin.base_url, timeout=10) as client:
        yield client


def bearer(http: httpx.Client) -> dict[str, str]:
    token = http.post("/v1/auth", json=CREDENTIAL).json()["data"]["token"]
    return {"Authorization": f"Bearer {token}"}


def v1_error(response: httpx.Response) -> dict:
    body = response.json()
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message"}
    return body["error"]


def problem(response: httpx.Response) -> dict:
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"personio_trace_id", "timestamp", "errors"} <= set(body)
    return body["errors"][0]


# --- v1 auth --------------------------------------------------------------------------------------------------


def test_v1_auth_takes_the_credential_in_a_json_or_form_body(http):
    answer = http.post("/v1/auth", json=CREDENTIAL)
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert answer.json()["success"] is True
    assert data["token"].startswith("papi-")
    assert data["expires_in"] == 86400
    # The token is stable for its lifetime, as Personio's is.
    assert http.post("/v1/auth", data=CREDENTIAL).json()["data"]["token"] == data["token"]


def test_v1_auth_refuses_query_string_missing_and_wrong_credentials(http):
    in_query = http.post("/v1/auth", params=CREDENTIAL)
    assert in_query.status_code == 403
    assert "query string" in v1_error(in_query)["message"]
    assert http.post("/v1/auth", params=CREDENTIAL, json=CREDENTIAL).status_code == 403
    assert http.post("/v1/auth", json={"client_id": DEFAULT_CLIENT_ID}).status_code == 400
    wrong = http.post("/v1/auth", json={**CREDENTIAL, "client_secret": "nope"})
    assert wrong.status_code == 401
    assert v1_error(wrong) == {"code": 401, "message": "Wrong credentials"}


def test_v1_auth_allows_60_requests_a_minute(http):
    assert {http.post("/v1/auth", json=CREDENTIAL).status_code for _ in range(60)} == {200}
    throttled = http.post("/v1/auth", json=CREDENTIAL)
    assert throttled.status_code == 429
    assert "Retry-After" not in throttled.headers
    v1_error(throttled)


def test_revoked_tokens_are_refused_and_replaced(standin, http):
    headers = bearer(http)
    standin.revoke_tokens()
    refused = http.get("/v1/company/employees", headers=headers)
    assert refused.status_code == 401
    assert bearer(http) != headers


# --- v1 employees ------------------------------------------------------------------------------------------------


def test_v1_employees_need_a_valid_token(http):
    missing = http.get("/v1/company/employees")
    assert missing.status_code == 401
    assert v1_error(missing)["message"] == "Authorization is not provided"
    assert http.get("/v1/company/employees", headers={"Authorization": "Bearer papi-unknown"}).status_code == 401
    assert http.get("/v1/company/employees", headers={"Authorization": "Basic abc"}).status_code == 401


def test_v1_employees_shape_and_paging_limits(standin, http):
    headers = bearer(http)
    answer = http.get("/v1/company/employees", headers=headers)
    assert answer.headers["Authorization"] == headers["Authorization"]
    body = answer.json()
    assert body["success"] is True
    assert body["metadata"] == {"total_elements": 130, "current_page": 0, "total_pages": 3}
    assert (body["offset"], body["limit"], len(body["data"])) == (0, 50, 50)  # the default limit
    first = body["data"][0]
    assert first["type"] == "Employee"
    assert all(set(wrapper) == WRAPPER_KEYS for wrapper in first["attributes"].values())
    assert first["attributes"]["id"] == {"label": "ID", "value": 1000, "type": "integer", "universal_id": "id"}
    assert first["attributes"]["supervisor"]["value"] is None  # the top of the tree
    ninth = body["data"][9]["attributes"]
    assert ninth["supervisor"]["value"]["type"] == "Employee"
    assert ninth["supervisor"]["value"]["attributes"]["id"]["value"] == 1001
    assert ninth["department"]["value"]["type"] == "Department"
    assert set(ninth["office"]["value"]["attributes"]) == {"id", "name"}
    assert ninth["dynamic_1001"]["universal_id"] is None
    assert ninth["hire_date"]["type"] == "date"
    capped = http.get("/v1/company/employees", params={"limit": 500, "offset": 120}, headers=headers).json()
    assert (capped["limit"], len(capped["data"]), capped["metadata"]["current_page"]) == (100, 10, 1)
    beyond = http.get("/v1/company/employees", params={"limit": 100, "offset": 500}, headers=headers).json()
    assert beyond["data"] == []
    for params in ({"limit": 0}, {"offset": -1}, {"limit": "ten"}):
        refused = http.get("/v1/company/employees", params=params, headers=headers)
        assert refused.status_code == 400
        v1_error(refused)


def test_v1_filters(standin, http):
    headers = bearer(http)
    person = standin.workforce.person(42)
    by_email = http.get("/v1/company/employees", params={"email": person.email.upper()}, headers=headers).json()
    assert [item["attributes"]["id"]["value"] for item in by_email["data"]] == [person.id]
    before = datetime.now(UTC) - timedelta(seconds=5)
    standin.change([7, 99, 100])
    since = before.strftime("%Y-%m-%dT%H:%M:%S")
    changed = http.get("/v1/company/employees", params={"updated_since": since, "limit": 2, "email": person.email},
                       headers=headers).json()  # email is ignored with updated_since
    assert changed["metadata"] == {"total_elements": 3, "current_page": 0, "total_pages": 2}
    assert [item["attributes"]["id"]["value"] for item in changed["data"]] == [1007, 1099]
    rest = http.get("/v1/company/employees", params={"updated_since": since, "limit": 2, "offset": 2},
                    headers=headers).json()
    assert [item["attributes"]["id"]["value"] for item in rest["data"]] == [1100]
    by_day = http.get("/v1/company/employees", params={"updated_since": "2024-01-01"}, headers=headers).json()
    assert by_day["metadata"]["total_elements"] == 129  # every one updated after midnight: all but index 0
    malformed = http.get("/v1/company/employees", params={"updated_since": "yesterday"}, headers=headers)
    assert malformed.status_code == 400
    standin.paged_updated_since = False  # as Personio's reference describes it: limit and offset ignored
    unpaged = http.get("/v1/company/employees", params={"updated_since": since, "limit": 1, "offset": 2},
                       headers=headers).json()
    assert (unpaged["offset"], unpaged["limit"], len(unpaged["data"])) == (0, 3, 3)
    assert unpaged["metadata"] == {"total_elements": 3, "current_page": 0, "total_pages": 1}


def test_v1_single_employee_and_attributes(standin, http):
    headers = bearer(http)
    one = http.get("/v1/company/employees/1005", headers=headers).json()
    assert one["data"]["attributes"]["id"]["value"] == 1005
    assert http.get("/v1/company/employees/9999", headers=headers).status_code == 404
    listed = http.get("/v1/company/employees/attributes", headers=headers).json()["data"]
    keys = [entry["key"] for entry in listed]
    assert "id" not in keys
    assert {"email", "supervisor", "dynamic_1001", "dynamic_1002"} <= set(keys)
    competencies = next(entry for entry in listed if entry["key"] == "dynamic_1001")
    assert competencies["label"] == "Competencies"
    assert competencies["type"] == "tags"
    assert "coaching" in competencies["options"]
    alias = http.get("/v1/company/employees/custom-attributes", headers=headers).json()["data"]
    assert alias == listed


def test_the_whitelist_omits_attributes_everywhere(standin, http):
    standin.set_readable(["first_name", "supervisor", "dynamic_1002"])
    headers = bearer(http)
    attributes = http.get("/v1/company/employees", params={"limit": 10}, headers=headers).json()["data"][9][
        "attributes"]
    assert set(attributes) == {"id", "first_name", "supervisor", "dynamic_1002"}
    assert set(attributes["supervisor"]["value"]["attributes"]) == {"id", "first_name"}
    listed = http.get("/v1/company/employees/attributes", headers=headers).json()["data"]
    assert [entry["key"] for entry in listed] == ["first_name", "supervisor", "dynamic_1002"]
    person = http.post("/v2/persons", headers=headers)  # only GET is served
    assert person.status_code == 405
    v2_person = http.get("/v2/persons", params={"limit": 1}, headers=headers).json()["_data"][0]
    assert set(v2_person) == {"id", "first_name", "custom_attributes", "employments", "_meta"}
    standin.set_readable([])
    nothing = http.get("/v2/persons", params={"limit": 1}, headers=headers).json()["_data"][0]
    assert set(nothing) == {"id", "employments", "_meta"}  # as Personio documents it
    with pytest.raises(ValueError, match="unknown attributes"):
        standin.set_readable(["salary"])


# --- v2 --------------------------------------------------------------------------------------------------------------


def v2_token(http: httpx.Client, **overrides) -> httpx.Response:
    return http.post("/v2/auth/token", data={"grant_type": "client_credentials", **CREDENTIAL, **overrides})


def v2_headers(http: httpx.Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {v2_token(http).json()['access_token']}"}


def test_v2_token_and_its_oauth_errors(http):
    answer = v2_token(http)
    assert answer.status_code == 200
    assert set(answer.json()) == {"access_token", "token_type", "expires_in", "scope"}
    assert answer.json()["token_type"] == "Bearer"
    assert answer.json()["expires_in"] == 86400

    def error_of(response: httpx.Response) -> str:
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert {"timestamp", "trace_id", "error", "error_description"} <= set(response.json())
        return response.json()["error"]

    assert error_of(http.post("/v2/auth/token", json={"grant_type": "client_credentials", **CREDENTIAL})) == \
        "invalid_request"
    missing = http.post("/v2/auth/token", data=CREDENTIAL)
    assert error_of(missing) == "invalid_request"
    assert missing.json()["meta"] == {"missing_parameters": ["grant_type"]}
    assert error_of(v2_token(http, grant_type="urn:ietf:params:oauth:grant-type:device_code")) == \
        "unsupported_grant_type"
    assert error_of(v2_token(http, grant_type="let_me_in")) == "invalid_grant"
    assert error_of(v2_token(http, client_id="someone")) == "invalid_client"
    assert error_of(v2_token(http, client_secret="")) == "invalid_client"
    assert error_of(v2_token(http, client_secret="wrong")) == "unauthorized_client"


def test_v2_persons_page_with_cursors(standin, http):
    headers = v2_headers(http)
    unauthorized = http.get("/v2/persons")
    assert unauthorized.status_code == 401
    assert problem(unauthorized)["title"] == "Unauthorized"
    first = http.get("/v2/persons", headers=headers).json()
    assert len(first["_data"]) == 10  # the default limit
    seen, url, pages = [], "/v2/persons?limit=50", 0
    while url:
        body = http.get(url, headers=headers).json()
        seen += [person["id"] for person in body["_data"]]
        url = body["_meta"]["links"].get("next", {}).get("href")
        pages += 1
    assert seen == [str(1000 + index) for index in range(130)]
    assert pages == 3
    person = first["_data"][0]
    assert {"id", "email", "first_name", "last_name", "preferred_name", "status", "updated_at",
            "custom_attributes", "employments", "_meta"} == set(person)
    assert person["custom_attributes"][1] == {"id": "dynamic_1002", "type": "INT", "global_id": "review_rating",
                                              "label": "Review rating",
                                              "value": str(standin.workforce.person(0).review_rating)}
    for limit in (0, 51, "x"):
        assert problem(http.get("/v2/persons", params={"limit": limit}, headers=headers))["detail"] == \
            "Provided request parameters are invalid."
    assert http.get("/v2/persons", params={"cursor": "cur_bogus"}, headers=headers).status_code == 400


def test_v2_cursors_are_not_shifted_by_departures(standin, http):
    headers = v2_headers(http)
    first = http.get("/v2/persons", params={"limit": 5}, headers=headers).json()
    standin.depart([1, 2])
    second = http.get(first["_meta"]["links"]["next"]["href"], headers=headers).json()
    assert [person["id"] for person in second["_data"]] == ["1005", "1006", "1007", "1008", "1009"]


def test_v2_persons_filters(standin, http):
    headers = v2_headers(http)
    before = datetime.now(UTC) - timedelta(seconds=5)
    standin.change([4, 120])
    changed = http.get("/v2/persons", params={"updated_at.gt": before.strftime("%Y-%m-%dT%H:%M:%SZ")},
                       headers=headers).json()
    assert [person["id"] for person in changed["_data"]] == ["1004", "1120"]
    older = http.get("/v2/persons", params={"updated_at.lt": "2024-01-01T00:02:30Z"}, headers=headers).json()
    assert [person["id"] for person in older["_data"]] == ["1000", "1001", "1002"]
    emails = ",".join(standin.workforce.person(index).email for index in (9, 3))
    assert [person["id"] for person in http.get("/v2/persons", params={"email": emails},
                                                  headers=headers).json()["_data"]] == ["1003", "1009"]
    assert [person["id"] for person in http.get("/v2/persons", params={"id": "1011,1012"},
                                                  headers=headers).json()["_data"]] == ["1011", "1012"]
    inactive = http.get("/v2/persons", params={"status": "INACTIVE", "limit": 50}, headers=headers).json()
    assert {person["status"] for person in inactive["_data"]} == {"INACTIVE"}
    assert problem(http.get("/v2/persons", params={"updated_at.gt": "soon"}, headers=headers))["detail"] == \
        "Provided request parameters are invalid."
    assert problem(http.get("/v2/persons", params={"id.nooperator": "1"}, headers=headers))["detail"] == \
        "Provided filter encoding is invalid."


def test_v2_employments_and_org_units(standin, http):
    headers = v2_headers(http)
    person = standin.workforce.person(3)
    assert http.get("/v2/persons/1003", headers=headers).json()["id"] == "1003"
    employments = http.get("/v2/persons/1003/employments", headers=headers).json()["_data"]
    assert len(employments) == 2  # index % 25 == 3: an older employment, listed second
    current, former = employments
    assert current["status"] == person.status.upper()
    assert current["position"] == {"title": person.title}
    assert current["supervisor"] == {"id": "1000"}
    assert current["org_units"] == [{"type": "department", "id": str(person.department_id)}]
    assert current["employment_start_date"] == person.hire_date
    assert current["person"] == {"id": "1003"}
    assert former["status"] == "INACTIVE"
    assert former["employment_end_date"] < current["employment_start_date"]
    top = http.get("/v2/persons/1000/employments", headers=headers).json()["_data"]
    assert len(top) == 1
    assert top[0]["supervisor"] is None
    assert problem(http.get("/v2/persons/77777/employments", headers=headers))["title"] == "Resource not found"
    unit = http.get(f"/v2/org-units/{person.department_id}", params={"type": "department"}, headers=headers).json()
    assert (unit["id"], unit["type"], unit["name"]) == (str(person.department_id), "department", person.department)
    assert http.get("/v2/org-units/1", headers=headers).status_code == 400
    assert http.get("/v2/org-units/99", params={"type": "department"}, headers=headers).status_code == 404
    assert http.get("/v2/offices/10", headers=headers).status_code == 404  # no office endpoint in v2


# --- faults, throttling, control --------------------------------------------------------------------------------


def test_fail_next_answers_with_the_vendors_error_bodies(standin, http):
    headers = bearer(http)
    standin.fail_next(503, count=2, path_contains="/company/employees")
    first = http.get("/v1/company/employees", headers=headers)
    assert first.status_code == 503
    assert "Retry-After" not in first.headers
    assert v1_error(first) == {"code": 503, "message": "Service Unavailable"}
    assert http.get("/v1/company/employees/attributes", headers=headers).status_code == 503
    assert http.get("/v1/company/employees", headers=headers).status_code == 200
    standin.fail_next(429, retry_after=1.2, path_contains="/v2/")
    throttled = http.get("/v2/persons", headers=headers)
    assert throttled.headers["Retry-After"] == "2"  # whole seconds
    problem(throttled)
    standin.fail_next(502, path_contains="/v2/auth/token")
    assert v2_token(http).json()["error"] == "server_error"
    with pytest.raises(ValueError, match="error status"):
        standin.fail_next(200)


def test_drop_next_closes_without_an_answer(standin, http):
    headers = bearer(http)
    standin.drop_next()
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/v1/company/employees", headers=headers)
    assert http.get("/v1/company/employees", headers=headers).status_code == 200
    assert standin.requests_log[-2:] == [("GET", "/v1/company/employees", 0), ("GET", "/v1/company/employees", 200)]


def test_limit_rate_throttles_data_requests_like_personio(standin, http):
    headers = bearer(http)
    standin.limit_rate(2)
    assert [http.get("/v1/company/employees", headers=headers).status_code for _ in range(3)] == [200, 200, 429]
    throttled = http.get("/v2/persons", headers=headers)
    assert throttled.status_code == 429
    assert "Retry-After" not in throttled.headers  # Personio sends none
    assert http.post("/v1/auth", json=CREDENTIAL).status_code == 200  # auth has its own limit
    standin.clear_faults()
    assert http.get("/v1/company/employees", headers=headers).status_code == 200


def test_control_endpoints(standin, http):
    headers = bearer(http)
    assert http.post("/_standin/fail", json={"status": 500, "count": 2, "path_contains": "/attributes"}).json() == \
        {"pending": 2}
    assert http.get("/v1/company/employees/attributes", headers=headers).status_code == 500
    assert http.delete("/_standin/fail").status_code == 200
    assert http.get("/v1/company/employees/attributes", headers=headers).status_code == 200
    assert http.post("/_standin/fail", json={"count": 1}).status_code == 400
    assert http.post("/_standin/drop", json={"count": 1}).json() == {"pending": 1}
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/v1/company/employees", headers=headers)
    assert http.post("/_standin/rate", json={"per_minute": 1}).json() == {"per_minute": 1}
    assert http.get("/v1/company/employees", headers=headers).status_code == 200
    assert http.get("/v1/company/employees", headers=headers).status_code == 429
    assert http.post("/_standin/rate", json={"per_minute": None}).status_code == 200
    before = datetime.now(UTC) - timedelta(seconds=5)
    assert http.post("/_standin/change", json={"indexes": [8]}).status_code == 200
    assert standin.workforce.person(8).updated_at > before
    assert http.post("/_standin/depart", json={"indexes": [9]}).status_code == 200
    assert standin.workforce.by_id(1009) is None
    assert http.post("/_standin/hire", json={"count": 2}).json() == {"indexes": [130, 131]}
    listed = http.get("/v1/company/employees", params={"limit": 100, "offset": 100}, headers=headers).json()
    assert listed["metadata"]["total_elements"] == 131
    assert http.post("/_standin/readable", json={"attributes": ["email"]}).json() == {"attributes": ["email", "id"]}
    assert http.post("/_standin/readable", json={"attributes": ["nope"]}).status_code == 400
    assert http.post("/_standin/readable", json={"attributes": None}).status_code == 200
    assert http.post("/_standin/revoke").status_code == 200
    assert http.get("/v1/company/employees", headers=headers).status_code == 401
    logged = http.get("/_standin/requests").json()["requests"]
    assert ["GET", "/v1/company/employees", 429] in logged
    assert not any(entry[1].startswith("/_standin") for entry in logged)  # control calls are not logged
    assert len(logged) == standin.requests_count
    assert http.post("/_standin/unknown", json={}).status_code == 404


def test_parse_moment():
    assert parse_moment("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_moment("2024-05-01T10:00:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_moment("2024-05-01T12:00:00+02:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_moment("2024-05-01T10:00:00Z") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_moment("2024-05-01", date_only=False)


def test_the_command_line_serves_the_stand_in():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    credential = {"client_id": "papi-cli", "client_secret": "papi-cli-secret"}
    environment = base_environment() | {"PERSONIO_CLI_CREDENTIAL": json.dumps(credential)}
    process = subprocess.Popen(
        [PYTHON, "-m", "local.personio", "serve", "--port", str(port), "--employees", "7",
         "--domain", "acme.example", "--credentials-env", "PERSONIO_CLI_CREDENTIAL"],
        cwd=PROJECT_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"

        def token():
            if process.poll() is not None:
                raise AssertionError(f"the stand-in exited: {process.stdout.read()}")
            try:
                return httpx.post(f"{base}/v1/auth", json=credential, timeout=2)
            except httpx.TransportError:
                return None

        answer = wait_until(token, message="the stand-in's auth")
        assert answer.status_code == 200
        headers = {"Authorization": f"Bearer {answer.json()['data']['token']}"}
        listed = httpx.get(f"{base}/v1/company/employees", headers=headers, timeout=5).json()
        assert listed["metadata"]["total_elements"] == 7
        assert listed["data"][0]["attributes"]["email"]["value"].endswith("@acme.example")
        assert httpx.post(f"{base}/v1/auth", json=CREDENTIAL, timeout=5).status_code == 401
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0]
    assert "papi-cli-secret" not in output


# --- v1 write-back: PATCH custom attributes --------------------------------------------------------------------


def patch(http: httpx.Client, headers: dict[str, str], employee_id: int, body: object) -> httpx.Response:
    return http.patch(f"/v1/company/employees/{employee_id}", headers=headers, json=body)


def test_patch_writes_custom_attributes_that_read_back_everywhere(standin, http):
    headers = bearer(http)
    before = datetime.now(UTC) - timedelta(seconds=1)
    attributes = http.get("/v1/company/employees/1004", headers=headers).json()["data"]["attributes"]
    assert attributes["dynamic_2001"] == {"label": "Last programme completed", "value": None, "type": "standard",
                                          "universal_id": None}
    assert attributes["dynamic_2002"]["type"] == "date"
    assert attributes["dynamic_2003"]["type"] == "decimal"
    answer = patch(http, headers, 1004, {"employee": {"email": "changed@example.com", "custom_attributes": {
        "dynamic_2001": "Coaching programme", "dynamic_2002": "2026-03-12", "dynamic_2003": 87.5,
        "dynamic_1002": "5"}}})
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "data": {"id": 1004}, "meta": []}
    assert standin.written_attributes(1004) == {"dynamic_2001": "Coaching programme", "dynamic_2002": "2026-03-12",
                                                "dynamic_2003": 87.5, "dynamic_1002": 5}
    attributes = http.get("/v1/company/employees/1004", headers=headers).json()["data"]["attributes"]
    assert attributes["dynamic_2001"]["value"] == "Coaching programme"
    assert attributes["dynamic_2002"]["value"] == "2026-03-12"
    assert attributes["dynamic_2003"]["value"] == 87.5
    assert attributes["dynamic_1002"]["value"] == 5
    assert attributes["email"]["value"] == standin.workforce.person(4).email  # email cannot change: ignored
    assert all(set(wrapper) == WRAPPER_KEYS for wrapper in attributes.values())
    changed = http.get("/v1/company/employees", headers=headers,
                       params={"updated_since": before.isoformat()}).json()["data"]
    assert [item["attributes"]["id"]["value"] for item in changed] == [1004]  # a write moves last_modified_at
    assert changed[0]["attributes"]["dynamic_2001"]["value"] == "Coaching programme"
    listed = http.get("/v1/company/employees", headers=headers, params={"limit": 5}).json()["data"]
    assert [item["attributes"]["dynamic_2003"]["value"] for item in listed] == [None, None, None, None, 87.5]
    assert patch(http, headers, 1004, {"employee": {"custom_attributes": {"dynamic_2003": 90.0,
                                                                          "dynamic_2001": None}}}).status_code == 200
    attributes = http.get("/v1/company/employees/1004", headers=headers).json()["data"]["attributes"]
    assert attributes["dynamic_2003"]["value"] == 90  # served as Personio shows a whole decimal
    assert attributes["dynamic_2001"]["value"] is None  # null clears
    token = http.post("/v2/auth/token", data={"grant_type": "client_credentials", **CREDENTIAL}).json()
    person = http.get("/v2/persons/1004", headers={"Authorization": f"Bearer {token['access_token']}"}).json()
    custom = {entry["id"]: entry for entry in person["custom_attributes"]}
    assert custom["dynamic_2003"] == {"id": "dynamic_2003", "type": "DOUBLE", "value": "90",
                                      "global_id": "assessment_score", "label": "Assessment score"}
    assert custom["dynamic_2002"]["value"] == "2026-03-12"
    other = http.get("/v2/persons/1005", headers={"Authorization": f"Bearer {token['access_token']}"}).json()
    assert [entry["id"] for entry in other["custom_attributes"]] == ["dynamic_1001", "dynamic_1002"]


def test_patch_is_all_or_nothing_and_refuses_what_it_cannot_write(standin, http):
    headers = bearer(http)
    standin.set_readable(["first_name", "dynamic_2001", "dynamic_2002", "dynamic_1001"])
    refused = patch(http, headers, 1003, {"employee": {"custom_attributes": {
        "dynamic_2001": "Coaching", "dynamic_2003": 80, "dynamic_4242": "x", "first_name": "Ann",
        "dynamic_2002": "12.03.2026", "dynamic_1001": "juggling"}}})
    assert refused.status_code == 422
    error = v1_error(refused)
    assert error["code"] == 422
    for fragment in ("dynamic_2003: the attribute is not whitelisted", "dynamic_4242: there is no such custom",
                     "first_name: there is no such custom attribute", "dynamic_2002: Last programme date must be a "
                     "date", "dynamic_1001: Competencies has no option juggling"):
        assert fragment in error["message"]
    assert standin.written_attributes(1003) == {}  # not even dynamic_2001
    for body in ({"custom_attributes": {"dynamic_2001": "x"}}, {"employee": {"custom_attributes": ["x"]}}, [1],
                 {"employee": {"first_name": "Ann"}}):
        assert patch(http, headers, 1003, body).status_code == 422, body
    assert http.patch("/v1/company/employees/1003", headers=headers, content=b"{").status_code == 422
    assert patch(http, headers, 9999, {"employee": {}}).status_code == 404
    assert v1_error(patch(http, headers, 9999, {"employee": {}}))["message"] == "The employee was not found."
    assert patch(http, {}, 1003, {"employee": {}}).status_code == 401
    assert http.patch("/v1/company/employees", headers=headers, json={}).status_code == 405
    assert http.patch("/v1/company/employees/attributes", headers=headers, json={}).status_code == 405
    assert http.patch("/v2/persons/1003", headers=headers, json={}).status_code == 405
    assert patch(http, headers, 1003, {"employee": {"custom_attributes": {}}}).status_code == 200
    standin.depart([3])
    assert patch(http, headers, 1003, {"employee": {"custom_attributes": {"dynamic_2001": "x"}}}).status_code == 404


def test_patch_takes_faults_like_every_data_request(standin, http):
    headers = bearer(http)
    standin.fail_next(503, path_contains="/v1/company/employees/1006")
    failed = patch(http, headers, 1006, {"employee": {"custom_attributes": {"dynamic_2001": "x"}}})
    assert failed.status_code == 503
    assert v1_error(failed)["code"] == 503
    assert standin.written_attributes(1006) == {}
    assert standin.requests_log[-1] == ("PATCH", "/v1/company/employees/1006", 503)
