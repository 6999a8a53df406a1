"""The WorkOS Admin Portal link (admin API and CLI) and `tenant add --create-workos-org`, against the
WorkOS stand-in."""

from __future__ import annotations

import httpx
import pytest

from shared import cli, db
from shared.admin import api, keys


def _key(scope: str) -> str:
    with db.transaction() as conn:
        return keys.create_admin_key(conn, scope, "test", created_by="test")[1]


def _portal(key: str | None, **params: str) -> api.AdminResponse:
    return api.handle("tenants.workos-portal", api.workos_portal, authorization=f"Bearer {key}" if key else None,
                      source="203.0.113.7", params=params)


@pytest.fixture
def acme(make_directory, workos_settings):
    tenant, _ = make_directory("acme")
    return tenant


@pytest.mark.parametrize("scope", ["operator", "tenant:acme"])
def test_an_admin_is_redirected_to_a_fresh_portal_link_that_opens(acme, standin, scope):
    response = _portal(_key(scope), slug="acme", intent="dsync")
    assert response.status == 302
    link = response.headers["Location"]
    assert link == response.body["link"]
    assert standin.portal_links[-1]["organization"] == acme.workos_organization_id
    assert standin.portal_links[-1]["intent"] == "dsync"
    assert httpx.get(link).status_code == 200


def test_another_tenants_key_gets_404_and_a_bad_intent_400(acme, make_tenant):
    make_tenant("beta")
    assert _portal(_key("tenant:beta"), slug="acme", intent="sso").status == 404
    response = _portal(_key("operator"), slug="acme", intent="audit_logs")
    assert (response.status, response.body["error"]) == (400, "invalid_parameter")
    assert _portal(None, slug="acme", intent="sso").status == 401


def test_a_tenant_without_a_workos_organization_is_told_how_to_get_one(make_tenant, workos_settings):
    make_tenant("plain")
    response = _portal(_key("operator"), slug="plain", intent="sso")
    assert response.status == 409
    assert "--create-workos-org" in response.body["message"]


def test_when_workos_refuses_the_admin_gets_502(acme, monkeypatch):
    from shared import workos_api

    monkeypatch.setenv("WORKOS_API_KEY", "sk_test_wrong")
    workos_api.reset()
    response = _portal(_key("operator"), slug="acme", intent="sso")
    assert response.status == 502
    assert "401" in response.body["message"]
    assert "sk_test_wrong" not in response.body["message"]


def _cli(capsys, *arguments: str) -> tuple[int, str, str]:
    code = cli.main(["--no-local-settings", *arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_cli_prints_a_portal_link(acme, standin, capsys):
    code, out, _ = _cli(capsys, "tenant", "portal-link", "acme", "--intent", "sso")
    assert code == 0
    assert out.strip() == standin.portal_links[-1]["link"]


def test_tenant_add_creates_the_workos_organization_with_the_domains(database, workos_settings, standin, capsys):
    code, out, _ = _cli(capsys, "tenant", "add", "globex", "--name", "Globex", "--domain", "globex.example",
                        "--provisioning", "workos", "--create-workos-org")
    assert code == 0
    with db.transaction() as conn:
        from shared.tenants.registry import get_tenant

        tenant = get_tenant(conn, "globex")
    organization = standin._organizations[tenant.workos_organization_id]
    assert [domain["domain"] for domain in organization["domains"]] == ["globex.example"]
    assert tenant.workos_organization_id in out


def test_tenant_add_leaves_no_tenant_when_workos_refuses(database, workos_settings, standin, capsys):
    standin.create_organization("Taken", ["taken.example"])  # WorkOS answers 409 for the domain
    code, _, err = _cli(capsys, "tenant", "add", "taken", "--name", "Taken", "--domain", "taken.example",
                        "--create-workos-org")
    assert code == 1
    assert "409" in err
    code, _, _ = _cli(capsys, "tenant", "show", "taken")
    assert code == 1
