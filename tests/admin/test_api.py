"""The admin API (shared/admin/api.py) and admin keys: scopes, 401s, 404s, and the audit."""

from __future__ import annotations

import pytest

from shared import db
from shared.admin import api, keys
from shared.admin.audit import recent


@pytest.fixture
def tenants(make_tenant):
    return make_tenant("acme"), make_tenant("beta")


def _key(scope: str) -> str:
    with db.transaction() as conn:
        return keys.create_admin_key(conn, scope, "test", created_by="test")[1]


def _call(action, handler, key=None, **params):
    return api.handle(action, handler, authorization=f"Bearer {key}" if key else None, source="203.0.113.7",
                      params=params)


def test_an_operator_key_lists_every_tenant(tenants):
    response = _call("tenants.list", api.list_tenants, _key("operator"))
    assert response.status == 200
    assert [tenant["slug"] for tenant in response.body["tenants"]] == ["acme", "beta"]


def test_a_tenant_key_lists_only_its_own_tenant(tenants):
    response = _call("tenants.list", api.list_tenants, _key("tenant:acme"))
    assert [tenant["slug"] for tenant in response.body["tenants"]] == ["acme"]


def test_a_tenant_key_cannot_read_another_tenant_which_looks_like_it_does_not_exist(tenants):
    key = _key("tenant:acme")
    assert _call("tenants.show", api.show_tenant, key, slug="acme").status == 200
    foreign = _call("tenants.show", api.show_tenant, key, slug="beta")
    missing = _call("tenants.show", api.show_tenant, key, slug="nope")
    assert (foreign.status, foreign.body["message"]) == (404, "no tenant 'beta'")
    assert (missing.status, missing.body["message"]) == (404, "no tenant 'nope'")


@pytest.mark.parametrize("authorization", [None, "Bearer", "Basic abc", "Bearer eca_unknown", "Bearer ecs_scim"])
def test_missing_or_unknown_keys_get_401(tenants, authorization):
    response = api.handle("tenants.list", api.list_tenants, authorization=authorization, source="x")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_key_stops_working(tenants):
    with db.transaction() as conn:
        key, value = keys.create_admin_key(conn, "operator", "ops", created_by="test")
        keys.revoke_admin_key(conn, key.id)
    assert _call("tenants.list", api.list_tenants, value).status == 401


def test_every_call_is_audited_with_who_what_where_and_outcome(tenants):
    key = _key("tenant:acme")
    _call("tenants.show", api.show_tenant, key, slug="acme")
    _call("tenants.show", api.show_tenant, key, slug="beta")
    _call("tenants.list", api.list_tenants, None)
    with db.transaction() as conn:
        rows = recent(conn, limit=3)
    assert [(row["action"], row["outcome"], row["target"]) for row in reversed(rows)] == [
        ("tenants.show", "ok", "acme"), ("tenants.show", "refused 404", "beta"), ("tenants.list", "refused 401", None)]
    assert rows[-1]["actor"].startswith("admin-key:test")
    assert rows[-1]["source"] == "203.0.113.7"
    assert rows[0]["actor"] == "anonymous"


@pytest.mark.parametrize(("header", "address"), [
    ("203.0.113.7:52314", "203.0.113.7"), ("203.0.113.7, 10.0.0.1", "203.0.113.7"),
    ("[2001:db8::1]:443", "2001:db8::1"), ("2001:db8::1", "2001:db8::1"), (None, "unknown")])
def test_the_client_address_comes_from_x_forwarded_for(header, address):
    assert api.client_address(header) == address


def test_a_key_scope_must_name_an_existing_tenant(tenants):
    from shared.tenants.models import InvalidValue

    for scope in ("tenant:nope", "tenant:", "root", "tenant:Acme"):
        with pytest.raises(InvalidValue), db.transaction() as conn:
            keys.create_admin_key(conn, scope, "x", created_by="test")


@pytest.fixture
def people(tenants):
    from shared.identity import store
    from shared.identity.models import Actor, ActorKind, Channel, PersonClaims

    acme, beta = tenants
    actor = Actor(ActorKind.SYSTEM, "test")
    with db.transaction() as conn:
        ann = store.sync_person(conn, acme, PersonClaims(Channel.SCIM, "scim", "a", email="ann@acme.example",
                                                         given_name="Ann", family_name="Berg"), actor).user
        store.sync_person(conn, acme, PersonClaims(Channel.SCIM, "scim", "b", email="bo@acme.example",
                                                   given_name="Bo", active=False), actor)
        group, _ = store.upsert_group(conn, acme, Channel.SCIM, "scim", "g", "Sales", actor)
        store.add_members(conn, acme, group.id, [ann.id], Channel.SCIM, actor)
        store.sync_person(conn, beta, PersonClaims(Channel.SCIM, "scim", "c", email="cy@beta.example"), actor)
    return ann


def test_users_are_searched_by_email_or_name_and_filtered(people):
    key = _key("tenant:acme")
    found = _call("users.list", api.list_users, key, slug="acme", q="BERG")
    assert [user["primary_email"] for user in found.body["users"]] == ["ann@acme.example"]
    inactive = _call("users.list", api.list_users, key, slug="acme", status="inactive")
    assert [user["primary_email"] for user in inactive.body["users"]] == ["bo@acme.example"]
    by_channel = _call("users.list", api.list_users, key, slug="acme", channel="workos")
    assert by_channel.body["users"] == []
    first = _call("users.list", api.list_users, key, slug="acme", limit="1")
    second = _call("users.list", api.list_users, key, slug="acme", limit="1", after=first.body["next_after"])
    assert {first.body["users"][0]["id"], second.body["users"][0]["id"]} != {None}
    assert first.body["users"][0]["id"] != second.body["users"][0]["id"]


def test_a_user_is_shown_with_identities_groups_and_last_change(people):
    shown = _call("users.show", api.show_user, _key("tenant:acme"), slug="acme", user_id=people.id)
    assert shown.status == 200
    assert [identity["channel"] for identity in shown.body["identities"]] == ["scim"]
    assert [group["display_name"] for group in shown.body["groups"]] == ["Sales"]
    assert (shown.body["last_change"]["entity"], shown.body["last_change"]["action"]) == ("membership", "added")


def test_a_tenant_key_cannot_see_another_tenants_users(people):
    key = _key("tenant:beta")
    assert _call("users.list", api.list_users, key, slug="acme").status == 404
    assert _call("users.show", api.show_user, key, slug="acme", user_id=people.id).status == 404
    assert _call("users.show", api.show_user, key, slug="beta", user_id=people.id).status == 404


@pytest.mark.parametrize("params", [{"status": "gone"}, {"channel": "csv"}, {"limit": "0"}, {"limit": "x"},
                                    {"after": "not-an-id"}])
def test_bad_user_list_parameters_get_400(people, params):
    answer = _call("users.list", api.list_users, _key("operator"), slug="acme", **params)
    assert (answer.status, answer.body["error"]) == (400, "invalid_parameter")
