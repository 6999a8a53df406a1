"""End to end: cross-tenant probes through the admin API, over HTTP, against the local host."""

from __future__ import annotations

import pytest

from local.azurite import free_port
from shared import db
from shared.admin import keys
from tests.stack import PROJECT_ROOT, app_environment, start_host

pytestmark = pytest.mark.e2e


@pytest.fixture
def host(database, storage, make_tenant, tmp_path):
    make_tenant("acme")
    make_tenant("beta")
    environment = app_environment(DATABASE_URL=database, AzureWebJobsStorage=storage)
    running = start_host(PROJECT_ROOT, environment, tmp_path, port=free_port())
    yield running
    running.stop()


def _key(scope: str) -> dict[str, str]:
    with db.transaction() as conn:
        return {"Authorization": f"Bearer {keys.create_admin_key(conn, scope, 'e2e', created_by='test')[1]}"}


def test_an_operator_sees_every_tenant_over_http(host):
    response = host.get("/api/admin/tenants", headers=_key("operator"))
    assert response.status_code == 200
    assert [tenant["slug"] for tenant in response.json()["tenants"]] == ["acme", "beta"]
    assert response.headers["cache-control"] == "no-store"


def test_a_tenant_key_cannot_reach_another_tenant_over_http(host):
    headers = _key("tenant:acme")
    assert [t["slug"] for t in host.get("/api/admin/tenants", headers=headers).json()["tenants"]] == ["acme"]
    assert host.get("/api/admin/tenants/acme", headers=headers).json()["slug"] == "acme"
    probe = host.get("/api/admin/tenants/beta", headers=headers)
    assert (probe.status_code, probe.json()["error"]) == (404, "not_found")


def test_no_key_gets_401_with_a_bearer_challenge(host):
    response = host.get("/api/admin/tenants")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_user_management_and_the_change_log_over_http(host):
    import base64

    from shared.identity import store
    from shared.identity.models import Actor, ActorKind, Channel, PersonClaims
    from shared.tenants.apps import AppSpec, add_app, create_app_secret
    from shared.tenants.registry import get_tenant

    with db.transaction() as conn:
        acme = get_tenant(conn, "acme")
        ann = store.sync_person(conn, acme, PersonClaims(Channel.SCIM, "scim", None, email="ann@acme.example"),
                                Actor(ActorKind.SYSTEM, "e2e")).user
        add_app(conn, acme, "coach", AppSpec(kind="instance", base_url="https://acme.coach.example"))
        app, _, secret = create_app_secret(conn, acme, "coach", created_by="e2e")
    listed = host.get("/api/admin/tenants/acme/users", params={"q": "ann"}, headers=_key("tenant:acme")).json()
    assert [user["id"] for user in listed["users"]] == [ann.id]
    shown = host.get(f"/api/admin/tenants/acme/users/{ann.id}", headers=_key("operator")).json()
    assert shown["identities"][0]["channel"] == "scim"
    basic = {"Authorization": "Basic " + base64.b64encode(f"{app.client_id}:{secret}".encode()).decode()}
    log = host.get("/api/context/acme/changes", params={"after": "0"}, headers=basic)
    assert log.status_code == 200
    assert [change["action"] for change in log.json()["changes"]] == ["created"]
    assert host.get("/api/context/beta/changes", headers=basic).status_code == 401
