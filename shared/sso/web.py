"""What the sign-in endpoints answer, free of any transport: a status, headers, cookies and an HTML body.

Pages are plain, escaped HTML with no script and no third-party resource, answered with a strict
Content-Security-Policy and ``no-store``: they show a reason and who to contact, never internals.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class WebResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    cookies: tuple[str, ...] = ()  # whole Set-Cookie values


def redirect(location: str, *, cookies: tuple[str, ...] = ()) -> WebResponse:
    return WebResponse(302, {"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
                       None, cookies)


def page(status: int, title: str, message: str, *, contact: str | None = None,
         cookies: tuple[str, ...] = ()) -> WebResponse:
    contact_line = f"<p>If this keeps happening, contact {html.escape(contact)}.</p>" if contact else ""
    body = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}</style>"
            f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{contact_line}</body></html>")
    return WebResponse(status, dict(PAGE_HEADERS), body, cookies)


def login_cookie_name(secure: bool) -> str:
    # __Host-: only set over https, for this host, path / — no subdomain can plant or read it.
    return "__Host-ec_login" if secure else "ec_login"


def login_cookie(value: str, *, secure: bool, max_age: int) -> str:
    attributes = f"; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
    return f"{login_cookie_name(secure)}={value}{attributes}{'; Secure' if secure else ''}"


def clear_login_cookie(*, secure: bool) -> str:
    return login_cookie("", secure=secure, max_age=0)


def read_cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None
