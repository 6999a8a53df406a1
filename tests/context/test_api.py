"""The context API for tenant apps: the change log, behind the apps' own credentials."""

from __future__ import annotations

import base64

import pytest

from shared import db
from shared.context.api import changes
from shared.tenants.apps import AppSpec, add_app, create_app_secret


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _app(tenant) -> tuple[str, str]:
    with db.transaction() as conn:
        add_app(conn, tenant, "coach", AppSpec(kind="instance", base_url="https://x.coach.example"))
        app, _, secret = create_app_secret(conn, tenant, "coach", created_by="test")
    return app.client_id, secret


@pytest.fixture
def provisioned(scim, make_tenant):
    """acme, provisioned by SCIM, with an app; and beta with an app of its own."""
    from shared.tenants.registry import get_tenant

    with db.transaction() as conn:
        acme = get_tenant(conn, "acme")
    ann = scim.create_user("ann@acme.com")
    scim.patch(f"/Users/{ann['id']}", {"op": "replace", "path": "active", "value": False})
    scim.create_user("bo@acme.com")
    return _app(acme), _app(make_tenant("beta")), ann


def test_a_tenant_app_follows_the_change_log_in_order(provisioned):
    (client_id, secret), _, ann = provisioned
    first = changes("acme", _basic(client_id, secret), {"limit": "2"})
    assert first.status == 200
    assert [(c["seq"], c["entity_id"], c["action"]) for c in first.body["changes"]] == [
        (1, ann["id"], "created"), (2, ann["id"], "deactivated")]
    assert (first.body["next_after"], first.body["has_more"]) == (2, True)
    rest = changes("acme", _basic(client_id, secret), {"after": "2"})
    assert [c["seq"] for c in rest.body["changes"]] == [3]
    assert (rest.body["next_after"], rest.body["has_more"]) == (3, False)
    empty = changes("acme", _basic(client_id, secret), {"after": "3"})
    assert (empty.body["changes"], empty.body["next_after"]) == ([], 3)


def test_another_tenants_app_a_wrong_secret_or_an_unknown_tenant_get_the_same_401(provisioned):
    (client_id, secret), (beta_id, beta_secret), _ = provisioned
    answers = [changes("acme", _basic(beta_id, beta_secret), {}), changes("acme", _basic(client_id, "wrong"), {}),
               changes("nope", _basic(client_id, secret), {}), changes("acme", None, {}),
               changes("acme", "Basic !!!", {}), changes("acme", f"Bearer {secret}", {})]
    assert {(answer.status, answer.body["error"]) for answer in answers} == {(401, "unauthorized")}
    assert answers[0].headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(("params", "name"), [({"after": "-1"}, "after"), ({"after": "x"}, "after"),
                                              ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit")])
def test_malformed_parameters_get_a_400_naming_them(provisioned, params, name):
    (client_id, secret), _, _ = provisioned
    answer = changes("acme", _basic(client_id, secret), params)
    assert answer.status == 400
    assert answer.body["message"].startswith(name)
