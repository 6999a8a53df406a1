"""The demo tenant app (local/demo_app.py) against a fake redeem endpoint: it redeems the hand-over code with
its own credentials, shows the claims escaped, refuses a hand-over whose app_state this browser did not
start, and shows what the redeem endpoint refuses."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from local.demo_app import DemoApp
from tests.stack import PROJECT_ROOT, PYTHON, base_environment

CLIENT_ID = "app_coach_demo"
CLIENT_SECRET = "s3cr:et/é"  # a colon and a non-ASCII letter: Basic must carry them intact


@dataclass
class FakeConnect:
    """``POST /api/auth/handoff/redeem`` answering ``reply`` and recording each request."""

    base_url: str = ""
    reply: tuple[int, dict] = (500, {})
    received: list[dict] = field(default_factory=list)


@pytest.fixture
def connect() -> Iterator[FakeConnect]:
    fake = FakeConnect()

    class Redeem(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fake.received.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                                  "content_type": self.headers.get("Content-Type"), "body": body})
            status, payload = fake.reply
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redeem)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def demo(connect: FakeConnect) -> Iterator[DemoApp]:
    with DemoApp(0, connect.base_url, CLIENT_ID, CLIENT_SECRET, tenant="demo", app="coach") as running:
        yield running


def claims(app_state: str, **extra) -> dict:
    return {
        "user": {"id": "user_1", "email": "ada@demo.example", "given_name": "Ada", "family_name": "Lovelace",
                 "display_name": "Ada <script>alert(1)</script>", "roles": ["coach", "admin"],
                 "groups": ["Coaches & Mentors"]},
        "tenant": {"id": "tenant_1", "slug": "demo"},
        "app": "coach",
        "app_state": app_state,
        **extra,
    }


def start_sign_in(browser: httpx.Client, demo: DemoApp, connect: FakeConnect) -> str:
    """Open the start page as a browser; returns the app_state its Sign in link carries."""
    home = browser.get(demo.base_url + "/")
    assert home.status_code == 200
    link = unescape(re.search(r'id="sign-in" href="([^"]+)"', home.text).group(1))
    assert link.startswith(f"{connect.base_url}/api/auth/login?")
    query = parse_qs(urlsplit(link).query)
    assert (query["tenant"], query["app"]) == (["demo"], ["coach"])
    assert browser.cookies[demo.cookie_name] == query["app_state"][0]
    assert "HttpOnly" in home.headers["Set-Cookie"]
    assert "SameSite=Lax" in home.headers["Set-Cookie"]
    return query["app_state"][0]


def test_a_hand_over_with_the_matching_app_state_shows_the_claims(demo, connect):
    with httpx.Client() as browser:
        app_state = start_sign_in(browser, demo, connect)
        connect.reply = (200, claims(app_state, admin_token="tok_secret_value"))

        page = browser.get(demo.base_url + "/sso/handover", params={"code": "code-1"})

    assert page.status_code == 200
    assert "Signed in to coach of demo" in page.text
    assert "Ada &lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>" not in page.text
    assert "ada@demo.example" in page.text
    assert "coach, admin" in page.text
    assert "Coaches &amp; Mentors" in page.text
    assert "tok_secret_value" not in page.text
    assert "issued (not shown)" in page.text
    sign_out = unescape(re.search(r'id="sign-out" href="([^"]+)"', page.text).group(1))
    assert sign_out == f"{connect.base_url}/api/auth/logout?app=coach&tenant=demo"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert demo.cookie_name not in browser.cookies  # the state served its one sign-in
    [request] = connect.received
    assert request["path"] == "/api/auth/handoff/redeem"
    assert json.loads(request["body"]) == {"code": "code-1"}
    assert request["content_type"] == "application/json"


def test_the_basic_credentials_sent_are_the_configured_ones(demo, connect):
    connect.reply = (400, {"error": "invalid_grant", "message": "nope"})

    httpx.get(demo.base_url + "/sso/handover", params={"code": "c"})

    [request] = connect.received
    scheme, _, encoded = request["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode("utf-8") == f"{CLIENT_ID}:{CLIENT_SECRET}"


def test_a_mismatching_app_state_is_refused(demo, connect):
    with httpx.Client() as browser:
        start_sign_in(browser, demo, connect)
        connect.reply = (200, claims("a state another browser started"))
        mismatched = browser.get(demo.base_url + "/sso/handover", params={"code": "planted"})
    assert mismatched.status_code == 400
    assert "does not match" in mismatched.text
    assert "ada@demo.example" not in mismatched.text

    # A browser that never opened the start page has no state at all: refused too.
    connect.reply = (200, claims("whatever"))
    cookieless = httpx.get(demo.base_url + "/sso/handover", params={"code": "planted"})
    assert cookieless.status_code == 400
    assert "Signed in" not in cookieless.text


@pytest.mark.parametrize(("status", "error", "message"), [
    (400, "invalid_grant", "the code is unknown, expired, already used or for another app"),
    (401, "unauthorized", "unknown client id or secret <&>"),
])
def test_a_redeem_error_is_shown(demo, connect, status, error, message):
    connect.reply = (status, {"error": error, "message": message})

    page = httpx.get(demo.base_url + "/sso/handover", params={"code": "c"})

    assert page.status_code == 400
    shown = unescape(re.search(r'<p id="error">(.*?)</p>', page.text).group(1))
    assert shown == f"The hand-over was refused: {status} {error}: {message}"


def test_no_code_and_an_unreachable_connect(connect):
    with DemoApp(0, "http://127.0.0.1:9", CLIENT_ID, CLIENT_SECRET) as unreachable:
        assert httpx.get(unreachable.base_url + "/sso/handover", params={"code": "c"}).status_code == 502
        assert httpx.get(unreachable.base_url + "/sso/handover").status_code == 400
        assert httpx.get(unreachable.base_url + "/elsewhere").status_code == 404
    assert connect.received == []


def test_the_command_line_serves_the_start_page(connect):
    process = subprocess.Popen(
        [PYTHON, "-m", "local.demo_app", "--port", "0", "--connect", connect.base_url, "--client-id", CLIENT_ID,
         "--client-secret", CLIENT_SECRET, "--tenant", "acme", "--app", "portal", "--quiet"],
        cwd=PROJECT_ROOT, env=base_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline()
        base_url = re.search(r"on (http://127\.0\.0\.1:\d+)", banner).group(1)
        home = httpx.get(base_url + "/")
        assert "tenant=acme&amp;app=portal&amp;app_state=" in home.text
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert process.returncode == 0
