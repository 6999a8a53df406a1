"""shared/http.py: retries, Retry-After, pacing, the user agent and the SSRF guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from shared import http
from shared.http import BlockedDestination, OutboundClient, OutboundError, RetryLater, RetryPolicy
from tests.scripted_server import Reply, scripted_server


class FakeTime:
    """A clock that only moves when the client sleeps: waits are recorded, never spent."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def local_stand_ins_allowed(monkeypatch):
    monkeypatch.setenv("OUTBOUND_ALLOWED_LOCAL_HOSTS", "127.0.0.1")
    http.PACER.reset()


def _client(server, fake: FakeTime, **options) -> OutboundClient:
    return OutboundClient("test", base_url=server.base_url, clock=fake.clock, sleep=fake.sleep, **options)


def test_a_429_is_retried_after_the_seconds_retry_after_asks_for(local_stand_ins_allowed):
    fake = FakeTime()
    with scripted_server(Reply(429, {"Retry-After": "7"}), Reply(200, body=b"done")) as server:
        with _client(server, fake) as client:
            response = client.post("/things", json={"a": 1})
    assert (response.status_code, response.text) == (200, "done")
    assert fake.sleeps == [7.0]
    assert [request[0] for request in server.requests] == ["POST", "POST"]


def test_a_retry_after_http_date_is_honoured():
    moment = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(moment + timedelta(seconds=30), usegmt=True)
    assert http.parse_retry_after(header, now=moment) == 30.0
    assert http.parse_retry_after("garbage") is None


def test_a_retry_after_longer_than_worth_waiting_raises_retry_later_at_once(local_stand_ins_allowed):
    fake = FakeTime()
    with scripted_server(Reply(429, {"Retry-After": "3600"})) as server, _client(server, fake) as client:
        with pytest.raises(RetryLater) as error:
            client.get("/slow")
    assert (error.value.retry_after, error.value.retryable, fake.sleeps) == (3600.0, True, [])


def test_server_errors_back_off_with_jitter_and_give_up_after_the_bound(local_stand_ins_allowed):
    fake = FakeTime()
    policy = RetryPolicy(max_attempts=4, backoff_base=1.0, backoff_cap=3.0)
    with scripted_server(*[Reply(503)] * 4) as server, _client(server, fake, retry=policy) as client:
        with pytest.raises(OutboundError) as error:
            client.get("/flaky")
    assert (error.value.status, error.value.retryable) == (503, True)
    assert len(server.requests) == 4
    assert len(fake.sleeps) == 3
    for attempt, wait in enumerate(fake.sleeps, start=1):
        assert 0 <= wait <= min(3.0, 2 ** (attempt - 1))


def test_a_post_is_not_retried_on_a_503_unless_marked_idempotent(local_stand_ins_allowed):
    fake = FakeTime()
    with scripted_server(Reply(503), Reply(503), Reply(201)) as server, _client(server, fake) as client:
        assert client.post("/records").status_code == 503
        assert client.post("/records", idempotent=True, headers={"Idempotency-Key": "k"}).status_code == 201


def test_client_errors_are_returned_not_retried(local_stand_ins_allowed):
    fake = FakeTime()
    with scripted_server(Reply(404, body=b"no such employee")) as server, _client(server, fake) as client:
        assert client.get("/employees/9").status_code == 404
    assert len(server.requests) == 1


def test_pacing_spaces_requests_to_a_host_across_clients(local_stand_ins_allowed):
    fake = FakeTime()
    with scripted_server(*[Reply(200)] * 3) as server:
        with _client(server, fake, requests_per_minute=120) as first, _client(
                server, fake, requests_per_minute=120) as second:
            first.get("/a")
            second.get("/b")
            first.get("/c")
    assert fake.sleeps == [0.5, 0.5]


def test_requests_carry_a_clear_user_agent(local_stand_ins_allowed):
    with scripted_server(Reply(200)) as server, _client(server, FakeTime()) as client:
        client.get("/")
    assert server.requests[0][2]["User-Agent"].startswith("EnterpriseConnections/")


def test_production_refuses_plain_http():
    with pytest.raises(BlockedDestination, match="only https"):
        OutboundClient("test", base_url="http://api.example.com")


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/", "https://localhost/", "https://10.1.2.3/", "https://169.254.169.254/latest/meta-data",
    "https://[::1]/", "https://[::ffff:127.0.0.1]/", "https://192.168.0.10/", "https://100.64.0.1/",
    "https://0.0.0.0/",
])
def test_the_guard_refuses_private_loopback_and_link_local_addresses(url):
    with OutboundClient("test", sleep=lambda _: None) as client, pytest.raises(BlockedDestination) as error:
        client.get(url)
    assert error.value.retryable is False


def test_the_guard_checks_the_address_a_name_resolves_to_when_connecting(monkeypatch):
    # A public-looking name that resolves to loopback (as a rebinding DNS answer would) is refused.
    import socket

    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        return real("127.0.0.1", *args, **kwargs) if host == "innocent.example.com" else real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with OutboundClient("test") as client, pytest.raises(BlockedDestination, match="non-public address"):
        client.get("https://innocent.example.com/")


def test_local_stand_ins_are_reachable_only_when_listed(monkeypatch):
    with scripted_server(Reply(200, body=b"stand-in")) as server:
        with pytest.raises(BlockedDestination):
            OutboundClient("test", base_url=server.base_url)
        monkeypatch.setenv("OUTBOUND_ALLOWED_LOCAL_HOSTS", "127.0.0.1,localhost")
        with OutboundClient("test", base_url=server.base_url) as client:
            assert client.get("/").text == "stand-in"


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("10.0.0.1", False), ("172.16.5.4", False),
    ("fe80::1", False), ("fd00::1", False), ("224.0.0.1", False), ("::ffff:10.0.0.1", False)])
def test_address_classification(address, public):
    assert http.address_is_public(address) is public
