"""shared/tenants/apps.py: apps, their two live secrets, and outbound references."""

from __future__ import annotations

import pytest

from shared import db
from shared.tenants import apps
from shared.tenants.apps import AppSpec, TooManySecrets
from shared.tenants.models import InvalidValue, TenantConflict
from shared.tenants.registry import TenantChanges, update_tenant


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme")


def _add(tenant, name="coach", **fields):
    spec = AppSpec(kind=fields.pop("kind", "instance"), base_url=fields.pop("base_url", "https://acme.coach.example"),
                   **fields)
    with db.transaction() as conn:
        return apps.add_app(conn, tenant, name, spec)


def test_an_app_has_a_handover_url_and_admits_its_roles(acme):
    app = _add(acme, handover_path="/auth/handover", allowed_roles=("admin", "coach"),
               post_logout_url="https://acme.coach.example/bye")
    assert app.handover_url == "https://acme.coach.example/auth/handover"
    assert app.admits_role({"coach"})
    assert not app.admits_role({"member"})
    assert _add(acme, "open").admits_role(set())
    assert app.client_id.startswith("ecc_")


@pytest.mark.parametrize(("fields", "field"), [
    ({"base_url": "http://acme.coach.example"}, "base_url"),
    ({"base_url": "https://user:pw@acme.coach.example"}, "base_url"),
    ({"handover_path": "https://elsewhere.example/x"}, "handover_path"),
    ({"handover_path": "//evil.example/x"}, "handover_path"),
    ({"kind": "portal"}, "kind"),
    ({"outbound_secret_refs": {"api-key": "not a kv name!"}}, "outbound secret api-key"),
])
def test_malformed_apps_are_refused_naming_the_field(acme, fields, field):
    with pytest.raises(InvalidValue) as error:
        _add(acme, **fields)
    assert error.value.field == field


def test_http_is_allowed_only_for_local_hosts(acme, monkeypatch):
    monkeypatch.setenv("OUTBOUND_ALLOWED_LOCAL_HOSTS", "127.0.0.1")
    assert _add(acme, base_url="http://127.0.0.1:7090").base_url == "http://127.0.0.1:7090"


def test_app_names_are_unique_per_tenant(acme, make_tenant):
    _add(acme)
    with pytest.raises(TenantConflict):
        _add(acme)
    _add(make_tenant("beta"))


def test_at_most_two_secrets_are_live_and_rotation_keeps_the_newest_old_one(acme):
    _add(acme)
    with db.transaction() as conn:
        _, first, first_value = apps.create_app_secret(conn, acme, "coach", created_by="test")
        _, _second, _ = apps.create_app_secret(conn, acme, "coach", created_by="test")
        with pytest.raises(TooManySecrets):
            apps.create_app_secret(conn, acme, "coach", created_by="test")
        _, _third, third_value, revoked = apps.rotate_app_secret(conn, acme, "coach", created_by="test")
    assert [old.id for old in revoked] == [first.id]
    with db.transaction() as conn:
        client_id = apps.get_app(conn, acme, "coach").client_id
        assert apps.authenticate_app(conn, client_id, first_value) is None
        assert apps.authenticate_app(conn, client_id, third_value).name == "coach"
        assert apps.get_app(conn, acme, "coach").live_secrets == 2


def test_a_revoked_secret_stops_working_at_once(acme):
    _add(acme)
    with db.transaction() as conn:
        app, secret, value = apps.create_app_secret(conn, acme, "coach", created_by="test")
        apps.revoke_app_secret(conn, acme, "coach", secret.id)
        assert apps.authenticate_app(conn, app.client_id, value) is None


def test_a_secret_only_works_with_its_own_client_id(acme, make_tenant):
    beta = make_tenant("beta")
    _add(acme)
    _add(beta)
    with db.transaction() as conn:
        acme_app, _, acme_secret = apps.create_app_secret(conn, acme, "coach", created_by="test")
        beta_app, _, _ = apps.create_app_secret(conn, beta, "coach", created_by="test")
        assert apps.authenticate_app(conn, beta_app.client_id, acme_secret) is None
        assert apps.authenticate_app(conn, acme_app.client_id, acme_secret).tenant_id == acme.id


def test_secrets_are_stored_only_as_hashes(acme, database):
    _add(acme)
    with db.transaction() as conn:
        _, _, value = apps.create_app_secret(conn, acme, "coach", created_by="test")
    import psycopg

    with psycopg.connect(database) as conn:
        stored = conn.execute("SELECT secret_hash, hint FROM app_secrets").fetchone()
    assert value not in stored
    assert len(stored[0]) == 64


def test_an_app_named_by_routing_cannot_be_removed(acme):
    _add(acme)
    with db.transaction() as conn:
        tenant = update_tenant(conn, "acme", TenantChanges(default_app="coach"))
    with pytest.raises(TenantConflict, match="routing"), db.transaction() as conn:
        apps.remove_app(conn, tenant, "coach")
