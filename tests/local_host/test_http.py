"""HTTP behaviours of the local host, probed over HTTP like the real host."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from local.host.routes import RouteTemplate, RouteTemplateError


def test_route_parameters_are_passed_decoded_with_an_optional_one_absent(fixture_host):
    response = fixture_host.host.get("/api/items/42")
    assert response.status_code == 200
    assert response.json()["route"] == {"id": "42"}


def test_an_optional_route_parameter_is_passed_when_present(fixture_host):
    response = fixture_host.host.request("POST", "/api/items/42/some%20detail", content=b"payload")
    body = response.json()
    assert body["route"] == {"id": "42", "detail": "some detail"}
    assert (body["method"], body["body"]) == ("POST", "payload")


def test_a_route_constraint_that_fails_is_a_404(fixture_host):
    response = fixture_host.host.get("/api/items/not-a-number")
    assert (response.status_code, response.content) == (404, b"")


def test_a_catch_all_parameter_takes_the_rest_of_the_path_or_nothing(fixture_host):
    assert fixture_host.host.get("/api/files/a/b/c.txt").json()["route"] == {"path": "a/b/c.txt"}
    assert fixture_host.host.get("/api/files").json()["route"] == {}


def test_a_literal_route_wins_over_a_catch_all(fixture_host):
    assert fixture_host.host.get("/api/files/readme").text == "the literal route wins"


def test_literal_segments_match_case_insensitively(fixture_host):
    assert fixture_host.host.get("/API/Items/7").json()["route"] == {"id": "7"}


def test_a_method_the_function_does_not_declare_gets_an_empty_404(fixture_host):
    response = fixture_host.host.request("DELETE", "/api/items/42")
    assert (response.status_code, response.content) == (404, b"")


def test_an_unknown_path_gets_an_empty_404(fixture_host):
    for path in ("/api/nothing-here", "/elsewhere", "/api"):
        response = fixture_host.host.get(path)
        assert (response.status_code, response.content) == (404, b""), path


def test_a_function_key_is_required_at_function_level(fixture_host):
    keys = fixture_host.host.keys
    assert fixture_host.host.get("/api/keyed/function").status_code == 401
    assert fixture_host.host.get("/api/keyed/function", params={"code": "wrong"}).status_code == 401
    function_key = keys["functionKeys"]["default"]
    assert fixture_host.host.get("/api/keyed/function", params={"code": function_key}).status_code == 200
    assert fixture_host.host.get("/api/keyed/function", headers={"x-functions-key": keys["master"]}).status_code == 200


def test_only_the_master_key_passes_admin_level(fixture_host):
    keys = fixture_host.host.keys
    function_key = {"x-functions-key": keys["functionKeys"]["default"]}
    assert fixture_host.host.get("/api/keyed/admin", headers=function_key).status_code == 401
    master_key = {"x-functions-key": keys["master"]}
    assert fixture_host.host.get("/api/keyed/admin", headers=master_key).text == "master key accepted"


def test_every_set_cookie_header_reaches_the_client(fixture_host):
    response = fixture_host.host.get("/api/cookies")
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 2
    session = next(cookie for cookie in cookies if cookie.startswith("session=abc"))
    assert {"path=/", "secure", "samesite=lax", "httponly"} <= {part.strip().lower() for part in session.split(";")}
    assert any(cookie.startswith("theme=dark") and "max-age=60" in cookie for cookie in cookies)


def test_a_function_that_raises_gets_an_empty_500_and_leaks_nothing(fixture_host):
    response = fixture_host.host.get("/api/boom")
    assert (response.status_code, response.content) == (500, b"")
    assert "secret internals" in fixture_host.host.log()  # logged by the host, not sent


def test_repeated_query_parameters_and_headers_are_joined_with_commas(fixture_host):
    response = fixture_host.host.get("/api/items/1?tag=a&tag=b&single=x", headers=[("X-Multi", "1"), ("X-Multi", "2")])
    body = response.json()
    assert body["params"] == {"tag": "a,b", "single": "x"}
    assert body["headers"]["x-multi"] == "1, 2"
    assert body["url"].endswith("/api/items/1?tag=a&tag=b&single=x")


def test_a_text_response_gets_a_content_type_with_its_charset(fixture_host):
    assert fixture_host.host.get("/api/files/readme").headers["content-type"] == "text/plain; charset=utf-8"


def test_sync_functions_run_concurrently_on_worker_threads(fixture_host):
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda _: fixture_host.host.get("/api/threads/sync"), range(2)))
    assert [response.status_code for response in responses] == [200, 200]
    assert all(response.text.startswith("worker") for response in responses)


def test_async_functions_run_on_one_event_loop_in_the_main_thread(fixture_host):
    first, second = (fixture_host.host.get("/api/threads/async").json() for _ in range(2))
    assert first["thread"] == second["thread"] == "MainThread"
    assert first["loop"] == second["loop"]


def test_a_function_that_declares_context_receives_one(fixture_host):
    body = fixture_host.host.get("/api/context").json()
    assert body["name"] == "with_context"
    assert len(body["id"]) == 36


def test_the_host_ping_answers(fixture_host):
    assert httpx.get(fixture_host.host.base_url + "/admin/host/ping").status_code == 200


@pytest.mark.parametrize("template", ["a/{*rest}/b", "a/{x?}/b", "a/{x:nope}", "a/{x}/{x}", "a/{x"])
def test_route_templates_the_real_host_refuses_are_refused(template):
    with pytest.raises(RouteTemplateError):
        RouteTemplate.compile(template)


def test_complex_segments_match_right_to_left_like_aspnet():
    assert RouteTemplate.compile("dl/{name}.{ext}").match("/dl/archive.tar.gz") == {"name": "archive.tar", "ext": "gz"}


@pytest.mark.parametrize(("constraint", "good", "bad"), [
    ("int", "-12", "2147483648"), ("guid", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "nope"),
    ("alpha", "abc", "ab1"), ("bool", "True", "yes"), ("length(2,3)", "abc", "abcd"),
    ("range(1,5)", "5", "6"), ("regex(^a\\d$)", "a1", "a12"), ("minlength(2)", "ab", "a"),
])
def test_inline_constraints(constraint, good, bad):
    template = RouteTemplate.compile(f"c/{{v:{constraint}}}")
    assert template.match(f"/c/{good}") == {"v": good}
    assert template.match(f"/c/{bad}") is None


def test_the_host_lists_its_functions_at_start(fixture_host):
    log = fixture_host.host.log()
    assert "items: [GET,POST] http://127.0.0.1:" in log
    assert "worker: queueTrigger" in log


def test_a_route_starting_with_admin_is_in_error_and_not_served_as_in_azure(fixture_host):
    assert fixture_host.host.get("/api/administration/tools").status_code == 404
    assert "reserved_route: The specified route conflicts with one or more built in routes." in fixture_host.host.log()


def test_a_route_repeating_another_for_a_shared_method_is_in_error(fixture_host):
    assert fixture_host.host.request("PUT", "/api/items/1").status_code == 404
    assert "items_again: The route specified conflicts with the route defined by function 'items'." in (
        fixture_host.host.log())


def test_a_regex_constrained_first_segment_serves_api_admin_paths(fixture_host):
    response = fixture_host.host.get("/api/admin/reports")
    assert response.status_code == 200
    assert response.json()["route"] == {"area": "admin"}
    assert fixture_host.host.get("/api/administrator/reports").status_code == 404
