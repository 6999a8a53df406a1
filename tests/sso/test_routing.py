"""Routing rules, the app asked for, and return paths (shared/sso/routing.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.sso.routing import RoutingRefused, choose_app, safe_return_to
from shared.tenants.models import App, AppKind, Routing, RoutingRule


def _app(name: str, kind: AppKind = AppKind.INSTANCE, roles: tuple[str, ...] = ()) -> App:
    return App("id-" + name, "tenant", name, kind, f"https://{name}.example", "/sso/handover", None, roles,
               "ecc_" + name, {}, 1, datetime.now(UTC))


APPS = {app.name: app for app in (_app("school", AppKind.THINKIFIC), _app("insights", roles=("leader",)),
                                  _app("dashboard", AppKind.ADMIN, roles=("admin",)), _app("coach"))}
ROUTING = Routing(rules=(RoutingRule("role", "admin", "dashboard"), RoutingRule("role", "leader", "insights"),
                         RoutingRule("group", "Learners", "school")), default_app="coach")


@pytest.mark.parametrize(("roles", "groups", "expected"), [
    ({"admin"}, set(), "dashboard"),
    ({"leader"}, {"learners"}, "insights"),  # rules in order: the role rule comes first
    (set(), {"LEARNERS"}, "school"),  # groups compare case-insensitively
    ({"member"}, {"Sales"}, "coach"),  # no rule: the default
])
def test_rules_then_the_default(roles, groups, expected):
    assert choose_app(ROUTING, APPS, roles, groups, None).name == expected


def test_an_app_asked_for_is_honoured_only_when_the_role_allows_it():
    assert choose_app(ROUTING, APPS, {"leader"}, set(), "insights").name == "insights"
    with pytest.raises(RoutingRefused) as refused:
        choose_app(ROUTING, APPS, {"member"}, set(), "dashboard")
    assert refused.value.reason == "role_not_allowed"
    with pytest.raises(RoutingRefused, match="no app"):
        choose_app(ROUTING, APPS, {"member"}, set(), "nonexistent")


def test_no_rule_and_no_default_is_refused():
    with pytest.raises(RoutingRefused) as refused:
        choose_app(Routing(), APPS, {"member"}, set(), None)
    assert refused.value.reason == "no_route"


@pytest.mark.parametrize("value", ["/", "/courses/42?tab=notes#top", "/a%20b", "/caf%C3%A9"])
def test_relative_paths_are_kept(value):
    assert safe_return_to(value) == value


@pytest.mark.parametrize("value", [
    "https://evil.example/", "//evil.example", "/\\evil.example", "\\\\evil.example", "evil", "javascript:alert(1)",
    "/%2F%2Fevil.example", "%2F%2Fevil.example", "/%5Cevil.example", "/%252F%252Fevil.example", "/a\nb",
    "/%0d%0aSet-Cookie:x", "/%09/evil.example", "/ok\x00", "/" + "a" * 3000, "", "/%2525252F%2525252Fevil",
])
def test_anything_that_could_leave_the_app_is_refused(value):
    assert safe_return_to(value) is None
