"""Where a signed-in user goes: the tenant's routing rules, the app asked for, and a safe return path.

Contract (tests/sso/test_routing.py):
- rules are tried in order; a ``role`` rule matches one of the user's role slugs, a ``group`` rule
  one of their groups (case-insensitively); the first match names the app, else the default app;
- ``app=`` is honoured only when that app admits one of the user's roles (an app with no allowed
  roles admits everyone) — otherwise the sign-in is refused, never silently rerouted;
- the chosen app must admit the user too;
- ``return_to`` is accepted only as a path on the app: it must start with one ``/``, and neither it
  nor any percent-decoding of it may hold a scheme, ``//``, a backslash or a control character.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from shared.tenants.models import App, Routing

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_RETURN_TO = 2048


class RoutingRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def safe_return_to(value: str | None) -> str | None:
    """The path, or None when it is absent or not a safe relative path."""
    if not value or len(value) > MAX_RETURN_TO:
        return None
    candidate = value
    for _ in range(4):  # encoded, doubly encoded...: check every decoding
        if (not candidate.startswith("/") or candidate.startswith("//") or "\\" in candidate
                or _CONTROL.search(candidate) or re.match(r"/*[a-zA-Z][a-zA-Z0-9+.-]*:", candidate)):
            return None
        decoded = unquote(candidate)
        if decoded == candidate:
            return value
        candidate = decoded
    return None


def choose_app(routing: Routing, apps: dict[str, App], roles: set[str], groups: set[str],
               requested: str | None) -> App:
    if requested:
        app = apps.get(requested)
        if app is None:
            raise RoutingRefused("unknown_app", f"there is no app {requested!r} here")
        if not app.admits_role(roles):
            raise RoutingRefused("role_not_allowed", f"your role does not give access to {requested!r}")
        return app
    lowered_groups = {group.lower() for group in groups}
    for rule in routing.rules:
        matched = rule.value in roles if rule.match == "role" else rule.value.lower() in lowered_groups
        if matched and rule.app in apps:
            app = apps[rule.app]
            break
    else:
        if not routing.default_app or routing.default_app not in apps:
            raise RoutingRefused("no_route", "no app is set up for you here")
        app = apps[routing.default_app]
    if not app.admits_role(roles):
        raise RoutingRefused("role_not_allowed", f"your role does not give access to {app.name!r}")
    return app
