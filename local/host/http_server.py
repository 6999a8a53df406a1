"""HTTP functions behind an ASGI app, answering as the Functions host does.

- Routes are ``/<routePrefix>/<route>``; a path no function's route matches, or one whose function
  does not accept the method, gets the host's empty 404.
- Auth levels: ``anonymous`` passes; ``function`` takes a function, host or master key and
  ``admin`` only the master key, in ``?code=`` or the ``x-functions-key`` header; else an empty 401.
- The request reaches the function as a ``func.HttpRequest``: repeated query parameters and
  headers joined with commas, route values percent-decoded.
- The response: its status, its headers (the last of a repeated name wins, as the worker's
  conversion keeps one), a content type from its mimetype and charset when none is set, and every
  ``Set-Cookie`` as the worker forwards it (re-read as a cookie, keeping only the attributes the
  host knows). A function that raises gets an empty 500.
- ``GET /admin/host/ping`` answers 200, as the host's own ping does.
"""

from __future__ import annotations

import hmac
import logging
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func

from local.host.index import IndexedFunction
from local.host.invoker import HOST_API_REASON, Invoker

log = logging.getLogger("local.host")

Scope = dict[str, Any]


def _join_repeated(pairs: list[tuple[str, str]], separator: str, *, lower: bool) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        joined[key] = f"{joined[key]}{separator}{value}" if key in joined else value
    return joined


def _render_cookie(morsel: Any) -> str:
    """One Set-Cookie line from the attributes the worker forwards (RpcHttpCookie's fields)."""
    parts = [f"{morsel.key}={morsel.value}"]
    if morsel["expires"]:
        parts.append(f"expires={morsel['expires']}")
    if morsel["max-age"] != "":
        parts.append(f"max-age={int(float(morsel['max-age']))}")
    if morsel["domain"]:
        parts.append(f"domain={morsel['domain']}")
    if morsel["path"]:
        parts.append(f"path={morsel['path']}")
    if morsel["secure"]:
        parts.append("secure")
    same_site = str(morsel["samesite"]).lower()
    if same_site in ("lax", "strict", "none"):
        parts.append(f"samesite={same_site}")
    if morsel["httponly"]:
        parts.append("httponly")
    return "; ".join(parts)


def response_parts(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, header lines and body of what an HTTP function returned."""
    if response is None:
        return 204, [], b""
    if isinstance(response, (str, bytes)):
        body = response.encode("utf-8") if isinstance(response, str) else response
        return 200, [("content-type", "text/plain; charset=utf-8")], body
    if not isinstance(response, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(response).__name__}, not func.HttpResponse")
    headers = response.headers
    lines: list[tuple[str, str]] = []
    for cookie_header in headers.get_all("Set-Cookie"):
        for morsel in SimpleCookie(cookie_header).values():
            lines.append(("set-cookie", _render_cookie(morsel)))
    single = {name.lower(): value for name, value in headers.items() if name.lower() != "set-cookie"}
    if "content-type" not in single:
        mimetype = response.mimetype
        single["content-type"] = f"{mimetype}; charset={response.charset}" if mimetype.startswith("text/") else mimetype
    lines.extend(single.items())
    return response.status_code, lines, response.get_body() or b""


class HostKeys:
    """The master key and the function keys; ``allows`` says whether a key passes an auth level."""

    def __init__(self, master: str, function_keys: dict[str, str]) -> None:
        self.master = master
        self.function_keys = function_keys

    def allows(self, auth_level: str, key: str | None) -> bool:
        if auth_level == "ANONYMOUS":
            return True
        if not key:
            return False
        if hmac.compare_digest(key, self.master):
            return True
        return auth_level == "FUNCTION" and any(
            hmac.compare_digest(key, candidate) for candidate in self.function_keys.values())


class HttpFunctions:
    """The ASGI application serving the app's HTTP functions."""

    def __init__(
        self,
        functions: list[IndexedFunction],
        invoker: Invoker,
        keys: HostKeys,
        *,
        route_prefix: str = "api",
    ) -> None:
        http_functions = [function for function in functions if function.trigger_type == "httpTrigger"]
        # Most specific template first, as ASP.NET's route precedence orders them.
        self.functions = sorted(http_functions, key=lambda function: function.route.precedence)
        self.invoker = invoker
        self.keys = keys
        self.prefix = "/" + route_prefix if route_prefix else ""

    def find(self, path: str, method: str) -> tuple[IndexedFunction, dict[str, str]] | None:
        if self.prefix:
            if not path.lower().startswith(self.prefix + "/") and path.lower() != self.prefix:
                return None
            path = path[len(self.prefix):]
        for function in self.functions:
            values = function.route.match(path)
            if values is not None and (function.methods is None or method in function.methods):
                return function, values
        return None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            event = await receive()
            body.extend(event.get("body", b""))
            if not event.get("more_body"):
                break
        status, headers, payload = await self.handle(scope, bytes(body))
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
            + [(b"content-length", str(len(payload)).encode())],
        })
        await send({"type": "http.response.body", "body": payload})

    async def handle(self, scope: Scope, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        method = scope["method"].upper()
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        if path == "/admin/host/ping":
            return 200, [], b""
        found = self.find(path, method)
        if found is None:
            return 404, [], b""
        function, route_values = found
        query_pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        header_pairs = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
        params = _join_repeated(query_pairs, ",", lower=False)
        headers = _join_repeated(header_pairs, ", ", lower=True)
        key = headers.get("x-functions-key") or params.get("code")
        if not self.keys.allows(function.auth_level, key):
            return 401, [], b""
        host = headers.get("host", "127.0.0.1")
        query = scope["query_string"].decode("latin-1")
        url = f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")
        request = func.HttpRequest(
            method=method, url=url, headers=headers, params=params, route_params=route_values, body=body)
        try:
            response = await self.invoker.invoke(function, request, reason=HOST_API_REASON)
            return response_parts(response)
        except Exception:
            return 500, [], b""
