"""A tiny tenant app for ``make dev``: what a tenant's app instance does on the hand-over from Enterprise Connections.

Contract (tests/local_stack/test_demo_app.py):

- ``GET /`` remembers a fresh random ``app_state`` in a cookie (HttpOnly, SameSite=Lax, 10 minutes, named
  after the port because cookies do not tell ports apart) and shows a "Sign in" link to
  ``{connect}/api/auth/login?tenant=<tenant>&app=<app>&app_state=<that value>``.
- ``GET /sso/handover?code=CODE`` redeems the code server to server: ``POST {connect}/api/auth/handoff/redeem``
  with HTTP Basic ``client_id:client_secret`` and ``{"code": CODE}``. On 200 the answer's ``app_state`` must
  equal the cookie's (login-CSRF protection: a hand-over this browser did not start here is refused, 400);
  then the page reads "Signed in to <app> of <tenant>", lists the claims and links "Sign out" to
  ``{connect}/api/auth/logout?app=<app>&tenant=<slug>``, and the cookie is cleared (one sign-in per state).
  An error answer (``{"error", "message"}``, 400/401) is shown with its status, error and message, as 400.
  Connect unreachable or an answer of another shape -> 502; no code -> 400.
- Everything shown is HTML-escaped; an ``admin_token`` (admin apps) is never shown, only that one came.
- Anything else -> 404.

Command line: ``python -m local.demo_app --port 7090 --connect http://127.0.0.1:7071 --client-id ID
--client-secret SECRET [--tenant demo] [--app coach]``. Standard library HTTP server on 127.0.0.1;
httpx for the redeem call.
"""

from __future__ import annotations

import argparse
import hmac
import html
import secrets
import sys
from collections.abc import Mapping, Sequence
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from local.serving import ServedOnAThread, serve_in_foreground

DEFAULT_PORT = 7090
DEFAULT_CONNECT = "http://127.0.0.1:7071"
DEFAULT_TENANT = "demo"  # what local/seed.py creates
DEFAULT_APP = "coach"
STATE_COOKIE_SECONDS = 600
REDEEM_PATH = "/api/auth/handoff/redeem"


class DemoApp(ServedOnAThread):
    """The demo tenant app on 127.0.0.1; see the module docstring for what it answers."""

    thread_name = "demo app"

    def __init__(self, port: int, connect_url: str, client_id: str, client_secret: str, *,
                 tenant: str = DEFAULT_TENANT, app: str = DEFAULT_APP, timeout: float = 10.0) -> None:
        self.port = port
        self.connect_url = connect_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenant = tenant
        self.app = app
        self.timeout = timeout
        self.base_url = f"http://127.0.0.1:{port}" if port else ""
        self._log_requests = False

    def _make_server(self) -> _Server:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.demo = self
        self.port = server.server_address[1]
        return server

    @property
    def cookie_name(self) -> str:
        return f"demo_app_state_{self.port}"

    # pages

    def _handle(self, method: str, target: str, headers: Mapping[str, str]) -> _Page:
        url = urlsplit(target)
        if method == "GET" and url.path == "/":
            return self._home()
        if method == "GET" and url.path == "/sso/handover":
            code = (parse_qs(url.query).get("code") or [""])[-1]
            return self._handover(code, _cookie(headers.get("Cookie"), self.cookie_name))
        return _page(404, "Not found", f"<p>Nothing at {html.escape(url.path)}.</p>")

    def _home(self) -> _Page:
        app_state = secrets.token_urlsafe(24)
        login = f"{self.connect_url}/api/auth/login?" + urlencode(
            {"tenant": self.tenant, "app": self.app, "app_state": app_state})
        page = _page(200, f"{self.app} of {self.tenant} (demo tenant app)",
                     f'<p>Not signed in. <a id="sign-in" href="{html.escape(login)}">Sign in</a></p>')
        page.cookie = (f"{self.cookie_name}={app_state}; Path=/; Max-Age={STATE_COOKIE_SECONDS}; HttpOnly; "
                       "SameSite=Lax")
        return page

    def _handover(self, code: str, expected_state: str | None) -> _Page:
        if not code:
            return _page(400, "Sign-in failed", "<p>The hand-over has no code.</p>")
        try:
            answer = httpx.post(f"{self.connect_url}{REDEEM_PATH}", json={"code": code},
                                auth=httpx.BasicAuth(self.client_id, self.client_secret), timeout=self.timeout)
        except httpx.TransportError as error:
            return _page(502, "Sign-in failed", f"<p>Cannot reach {html.escape(self.connect_url)}: "
                                                f"{html.escape(str(error))}</p>")
        body = _json_or_none(answer)
        if answer.status_code != 200:
            error, message = (body.get("error"), body.get("message")) if isinstance(body, dict) else (None, None)
            detail = html.escape(f"{error}: {message}" if error or message else answer.text[:500])
            return _page(400, "Sign-in refused",
                         f'<p id="error">The hand-over was refused: {answer.status_code} {detail}</p>')
        if not (isinstance(body, dict) and isinstance(body.get("user"), dict) and isinstance(body.get("tenant"), dict)):
            return _page(502, "Sign-in failed", "<p>The redeem answer is not the expected JSON object.</p>")
        returned_state = body.get("app_state")
        # Compare the state this browser started with to the one the code carries: a hand-over started
        # elsewhere (login CSRF: someone else's code planted in this browser) stops here.
        if not (expected_state and isinstance(returned_state, str)
                and hmac.compare_digest(expected_state.encode(), returned_state.encode())):
            return _page(400, "Sign-in refused",
                         '<p id="error">The app_state of this hand-over does not match the one this browser '
                         "started with: sign in again from the start page.</p>")
        page = self._signed_in(body)
        page.cookie = f"{self.cookie_name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        return page

    def _signed_in(self, body: Mapping[str, Any]) -> _Page:
        user, tenant = body["user"], body["tenant"]
        app, slug = str(body.get("app") or self.app), str(tenant.get("slug") or self.tenant)
        rows = [(f"user.{name}", value) for name, value in user.items()]
        rows += [(f"tenant.{name}", value) for name, value in tenant.items()]
        rows += [("app", body.get("app")), ("app_state", body.get("app_state"))]
        if "admin_token" in body:
            rows.append(("admin_token", "issued (not shown)"))
        table = "".join(f"<tr><th>{html.escape(name)}</th><td>{html.escape(_text(value))}</td></tr>"
                        for name, value in rows)
        logout = f"{self.connect_url}/api/auth/logout?" + urlencode({"app": app, "tenant": slug})
        return _page(200, f"Signed in to {app} of {slug}",
                     f'<table id="claims">{table}</table><p><a id="sign-out" href="{html.escape(logout)}">'
                     "Sign out</a></p>")


class _Page:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body
        self.cookie: str | None = None


def _page(status: int, title: str, body_html: str) -> _Page:
    page = (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
            f"<body><h1>{html.escape(title)}</h1>{body_html}</body></html>")
    return _Page(status, page.encode())


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value)
    return "" if value is None else str(value)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _cookie(header: str | None, name: str) -> str | None:
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(header or "")
    except CookieError:
        return None
    morsel = cookies.get(name)
    return morsel.value if morsel is not None and morsel.value else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    demo: DemoApp


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: without TCP_NODELAY, Nagle holds the body back until the
    # client's delayed ACK (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        try:
            page = self.server.demo._handle(self.command, self.path, self.headers)
        except Exception:  # a bug of the demo: answer and keep serving
            import traceback

            traceback.print_exc()
            page = _page(500, "Internal error", "<p>See the demo app's output.</p>")
        self.send_response(page.status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page.body)))
        self.send_header("Cache-Control", "no-store")
        # The hand-over URL holds the code: it must not leak through Referer to the sign-out link.
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", "default-src 'none'")
        if page.cookie:
            self.send_header("Set-Cookie", page.cookie)
        self.end_headers()
        self.wfile.write(page.body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.demo._log_requests:
            sys.stderr.write(f"demo app: {format % args}\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.demo_app",
        description="A tiny tenant app: signs in through Enterprise Connections and redeems the hand-over code.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--connect", default=DEFAULT_CONNECT,
                        help=f"Enterprise Connections' base URL (default {DEFAULT_CONNECT})")
    parser.add_argument("--client-id", required=True, help="the app's client id (HTTP Basic user for redeem)")
    parser.add_argument("--client-secret", required=True, help="the app's client secret (HTTP Basic password)")
    parser.add_argument("--tenant", default=DEFAULT_TENANT,
                        help=f"the tenant slug to sign in to (default {DEFAULT_TENANT})")
    parser.add_argument("--app", default=DEFAULT_APP, help=f"this app's name in the tenant (default {DEFAULT_APP})")
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    demo = DemoApp(args.port, args.connect, args.client_id, args.client_secret, tenant=args.tenant, app=args.app)
    demo._log_requests = not args.quiet
    return serve_in_foreground(demo, args.port,
                               f"demo app {args.app} of {args.tenant} on {{base_url}}  (Ctrl-C stops it)")


if __name__ == "__main__":
    sys.exit(main())
