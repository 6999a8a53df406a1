"""The sign-in flow through the WorkOS stand-in (shared/sso/signin.py): login, callback, admission,
routing, hand-over and redemption, and the ways they refuse."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from local import workos as workos_standin
from shared import db
from shared.identity import store
from shared.identity.models import Actor, ActorKind, Channel, PersonClaims
from shared.sso import handoff, signin
from shared.tenants.apps import AppSpec, add_app, create_app_secret
from shared.tenants.registry import TenantChanges, update_tenant

ORIGIN = "http://127.0.0.1:7071"
CLIENT = "203.0.113.9"


def request(params: dict[str, str], cookie: str | None = None) -> signin.SignInRequest:
    return signin.SignInRequest(params, f"ec_login={cookie}" if cookie else None, CLIENT, ORIGIN)


class TenantWithApps:
    """The tenant (its attributes read through) and its apps' client id and secret."""

    def __init__(self, tenant, credentials: dict[str, tuple[str, str]]) -> None:
        self.tenant = tenant
        self.credentials = credentials

    def __getattr__(self, name: str):
        return getattr(self.tenant, name)


@pytest.fixture
def acme(make_tenant, workos_settings, standin, monkeypatch):
    """A WorkOS-provisioned tenant with a coach instance (default), an admin dashboard and a
    Thinkific school, routed by role and group; Ann is provisioned, Dee is deactivated."""
    monkeypatch.setenv("SECRET_ACME_THINKIFIC", "thinkific-api-key-of-the-acme-school-0123")
    organization = standin.create_organization("Acme", ["acme.example"])
    tenant = make_tenant("acme", provisioning="workos", domains=("acme.example",),
                         workos_organization_id=organization["id"], support_contact="it@acme.example")
    credentials = {}
    with db.transaction() as conn:
        for name, spec in (
            ("coach", AppSpec(kind="instance", base_url="http://127.0.0.1:7090")),
            ("dashboard", AppSpec(kind="admin", base_url="http://127.0.0.1:7091", allowed_roles=("admin",))),
            ("school", AppSpec(kind="thinkific", base_url="https://acme.thinkific.com",
                               outbound_secret_refs={"api-key": "acme-thinkific"})),
        ):
            add_app(conn, tenant, name, spec)
            app, _, secret = create_app_secret(conn, tenant, name, created_by="test")
            credentials[name] = (app.client_id, secret)
        tenant = update_tenant(conn, "acme", TenantChanges(
            routes=("role:admin=dashboard", "group:Learners=school"), default_app="coach"))
        actor = Actor(ActorKind.IDP, "test")
        for key, email, active in (("u-ann", "ann@acme.example", True), ("u-dee", "dee@acme.example", False)):
            store.sync_person(conn, tenant, PersonClaims(Channel.WORKOS, "directory_1", key, email=email,
                                                         given_name=email[:3].title(), active=active), actor)
    for email in ("ann@acme.example", "dee@acme.example", "eve@acme.example"):
        standin.add_sso_user(organization["id"], email, first_name=email[:3].title(), last_name="Test")
    return TenantWithApps(tenant, credentials)


def start(params: dict[str, str]) -> tuple[str, str]:
    """Login: the IdP URL and the state cookie."""
    response = signin.login(request(params))
    assert response.status == 302, response.body
    cookie = response.cookies[0].split(";")[0].split("=", 1)[1]
    return response.headers["Location"], cookie


def sign_in(standin, params: dict[str, str], email: str, **fields) -> signin.WebResponse:
    location, cookie = start(params)
    callback_url = workos_standin.sign_in(location, email, **fields)
    return signin.callback(request(_query(callback_url), cookie))


def _query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def idp_initiated(standin, organization_id: str, email: str) -> str:
    """What the stand-in IdP sends when the user starts from the IdP's own portal (no state)."""
    response = httpx.get(f"{standin.base_url}/sso/idp_initiated", params={
        "organization": organization_id, "redirect_uri": f"{ORIGIN}/api/auth/callback", "email": email})
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def redeem(app_credentials: tuple[str, str], code: str) -> handoff.RedeemResponse:
    basic = base64.b64encode(":".join(app_credentials).encode()).decode()
    return handoff.redeem(f"Basic {basic}", json.dumps({"code": code}).encode(), CLIENT)


def attempts(tenant) -> list[tuple[str, str, str | None]]:
    """The tenant's sign-in attempts, with those no tenant could be told for (a forged state)."""
    with db.transaction(all_tenants=True) as conn:
        return [tuple(row) for row in conn.execute(
            "SELECT outcome, reason, app_name FROM sign_in_attempts WHERE tenant_id = %s OR tenant_id IS NULL"
            " ORDER BY id", [tenant.id]).fetchall()]


def test_a_provisioned_user_signs_in_and_the_app_redeems_the_claims_once(acme, standin):
    response = sign_in(standin, {"tenant": "acme", "return_to": "/courses/7", "app_state": "xyz-123"},
                       "ann@acme.example")
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith("http://127.0.0.1:7090/sso/handover?code=")
    assert "Max-Age=0" in response.cookies[0]  # the login cookie is cleared
    code = _query(location)["code"]
    assert len(base64.urlsafe_b64decode(code + "==")) >= 16
    redeemed = redeem(acme.credentials["coach"], code)
    assert redeemed.status == 200
    assert redeemed.body["user"]["email"] == "ann@acme.example"
    assert (redeemed.body["tenant"]["slug"], redeemed.body["app"]) == ("acme", "coach")
    assert (redeemed.body["app_state"], redeemed.body["return_to"]) == ("xyz-123", "/courses/7")
    replay = redeem(acme.credentials["coach"], code)
    assert (replay.status, replay.body["error"]) == (400, "invalid_grant")
    assert attempts(acme)[-2:] == [("granted", "signed_in", "coach"), ("refused", "handoff_replayed", "coach")]


def test_a_code_redeemed_by_another_app_fails_and_is_recorded(acme, standin):
    code = _query(sign_in(standin, {"tenant": "acme"}, "ann@acme.example").headers["Location"])["code"]
    assert redeem(acme.credentials["dashboard"], code).status == 400
    assert attempts(acme)[-1] == ("refused", "handoff_wrong_app", "dashboard")
    assert redeem(acme.credentials["coach"], code).status == 200  # the right app still can, once
    assert redeem(("ecc_unknown", "nope"), code).status == 401


def test_the_login_cookie_is_httponly_lax_and_host_bound_on_https(acme, monkeypatch):
    secure = signin.SignInRequest({"tenant": "acme"}, None, CLIENT, "https://connect.example")
    cookie = signin.login(secure).cookies[0]
    assert cookie.startswith("__Host-ec_login=")
    assert all(part in cookie for part in ("HttpOnly", "SameSite=Lax", "Secure", "Path=/"))
    plain = signin.login(request({"tenant": "acme"})).cookies[0]
    assert plain.startswith("ec_login=")
    assert "Secure" not in plain


@pytest.mark.parametrize("case", ["forged", "forged-with-cookie", "replayed", "expired", "no-cookie", "other-cookie"])
def test_a_bad_state_is_refused(acme, standin, case):
    location, cookie = start({"tenant": "acme"})
    params = _query(workos_standin.sign_in(location, "ann@acme.example"))
    if case.startswith("forged"):
        params["state"] = "forged-" + params["state"]
    if case == "replayed":
        assert signin.callback(request(params, cookie)).status == 302
    if case == "expired":
        with db.transaction(tenant_id=acme.id) as conn:
            conn.execute("UPDATE login_states SET expires_at = now() - interval '1 second'")
    used_cookie = {"no-cookie": None, "other-cookie": start({"tenant": "acme"})[1],
                   "forged-with-cookie": params["state"]}.get(case, cookie)
    response = signin.callback(request(params, used_cookie))
    assert response.status == 400
    expected = {"forged": "cookie_mismatch", "forged-with-cookie": "unknown_state", "replayed": "used_state",
                "expired": "expired_state",
                "no-cookie": "cookie_mismatch", "other-cookie": "cookie_mismatch"}[case]
    assert attempts(acme)[-1][:2] == ("refused", expected)


def test_a_profile_of_another_organization_is_refused(acme, standin, make_tenant):
    other = standin.create_organization("Globex", ["globex.example"])
    make_tenant("globex", provisioning="sso-jit", domains=("globex.example",), workos_organization_id=other["id"])
    standin.add_sso_user(other["id"], "ann@acme.example")  # same email, another organization
    # The user edits the organization in the IdP URL: the state and PKCE are acme's, the profile globex's.
    acme_location, acme_cookie = start({"tenant": "acme"})
    tampered = acme_location.replace(acme.workos_organization_id, other["id"])
    params = _query(workos_standin.sign_in(tampered, "ann@acme.example"))
    response = signin.callback(request(params, acme_cookie))
    assert response.status == 403
    assert attempts(acme)[-1][:2] == ("refused", "organization_mismatch")


def test_deactivated_and_unprovisioned_users_are_refused_on_a_provisioned_tenant(acme, standin):
    assert sign_in(standin, {"tenant": "acme"}, "dee@acme.example").status == 403
    assert attempts(acme)[-1][:2] == ("refused", "user_inactive")
    response = sign_in(standin, {"tenant": "acme"}, "eve@acme.example")
    assert response.status == 403
    assert "it@acme.example" in response.body
    assert attempts(acme)[-1][:2] == ("refused", "not_admitted:NotProvisioned")


def test_sso_jit_creates_the_user_from_the_profile(make_tenant, workos_settings, standin):
    organization = standin.create_organization("Initech", ["initech.example"])
    tenant = make_tenant("initech", provisioning="sso-jit", domains=("initech.example",),
                         workos_organization_id=organization["id"])
    with db.transaction() as conn:
        add_app(conn, tenant, "coach", AppSpec(kind="instance", base_url="http://127.0.0.1:7090"))
        update_tenant(conn, "initech", TenantChanges(default_app="coach"))
    standin.add_sso_user(organization["id"], "new@initech.example", first_name="New", role="member")
    assert sign_in(standin, {"tenant": "initech"}, "new@initech.example").status == 302
    with db.transaction() as conn:
        user = store.find_user(conn, tenant, "new@initech.example")
    assert (user.given_name, user.role_slugs, user.created_by_channel) == ("New", ("member",), "sso")


def test_routing_by_role_and_group_and_the_app_asked_for(acme, standin):
    standin.add_sso_user(acme.workos_organization_id, "ann@acme.example", role="admin")
    response = sign_in(standin, {"tenant": "acme"}, "ann@acme.example")
    assert response.headers["Location"].startswith("http://127.0.0.1:7091/sso/handover?code=")
    standin.add_sso_user(acme.workos_organization_id, "ann@acme.example", role="member")
    refused = sign_in(standin, {"tenant": "acme", "app": "dashboard"}, "ann@acme.example")
    assert refused.status == 403
    assert attempts(acme)[-1] == ("refused", "role_not_allowed", "dashboard")


def test_learners_go_to_the_thinkific_school_with_a_verifiable_jwt(acme, standin):
    standin.add_sso_user(acme.workos_organization_id, "ann@acme.example", groups=["Learners"])
    response = sign_in(standin, {"tenant": "acme", "return_to": "/courses/intro"}, "ann@acme.example")
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "acme.thinkific.com",
                                                                  "/api/sso/v2/sso/jwt")
    query = _query(response.headers["Location"])
    claims = jwt.decode(query["jwt"], "thinkific-api-key-of-the-acme-school-0123", algorithms=["HS256"])
    with db.transaction() as conn:
        ann = store.find_user(conn, acme, "ann@acme.example")
    assert (claims["email"], claims["external_id"], claims["first_name"]) == ("ann@acme.example", ann.id, "Ann")
    assert isinstance(claims["iat"], int)
    assert query["return_to"] == "https://acme.thinkific.com/courses/intro"


@pytest.mark.parametrize("return_to", ["https://evil.example", "//evil.example", "/%2F%2Fevil.example", "/\\evil"])
def test_an_open_redirect_is_refused_at_login(acme, return_to):
    response = signin.login(request({"tenant": "acme", "return_to": return_to}))
    assert response.status == 400
    assert "Location" not in response.headers


def test_unknown_and_suspended_tenants_get_a_clear_page(acme, make_tenant):
    unknown = signin.login(request({"tenant": "nobody"}))
    assert (unknown.status, "Unknown organization" in unknown.body) == (404, True)
    by_email = signin.login(request({"email": "ann@uk.acme.example"}))  # a subdomain of a verified domain
    assert by_email.status == 302
    from shared.tenants.models import TenantStatus
    from shared.tenants.registry import set_status

    with db.transaction() as conn:
        set_status(conn, "acme", TenantStatus.SUSPENDED)
    suspended = signin.login(request({"tenant": "acme"}))
    assert suspended.status == 403
    assert "it@acme.example" in suspended.body


def test_an_error_callback_shows_the_tenants_support_contact(acme, standin):
    location, cookie = start({"tenant": "acme"})
    response = signin.callback(request(_query(workos_standin.deny(location)), cookie))
    assert response.status == 400
    assert "it@acme.example" in response.body
    assert attempts(acme)[-1][:2] == ("refused", "provider_error:access_denied")


def test_idp_initiated_logins_restart_unless_the_tenant_allows_them(acme, standin):
    callback_url = idp_initiated(standin, acme.workos_organization_id, "ann@acme.example")
    restarted = signin.callback(request(_query(callback_url)))
    assert restarted.headers["Location"] == f"{ORIGIN}/api/auth/login?org={acme.workos_organization_id}"
    with db.transaction() as conn:
        update_tenant(conn, "acme", TenantChanges(allow_idp_initiated=True))
    callback_url = idp_initiated(standin, acme.workos_organization_id, "ann@acme.example")
    routed = signin.callback(request(_query(callback_url)))
    assert routed.headers["Location"].startswith("http://127.0.0.1:7090/sso/handover?code=")


def test_a_client_over_the_rate_limit_gets_429(acme, monkeypatch):
    monkeypatch.setenv("LOGIN_RATE_LIMIT_PER_MINUTE", "3")
    statuses = [signin.login(request({"tenant": "nobody"})).status for _ in range(5)]
    assert statuses == [404, 404, 404, 429, 429]


def test_logout_clears_the_cookie_and_goes_to_the_apps_post_logout_url(acme):
    with db.transaction(tenant_id=acme.id) as conn:
        conn.execute("UPDATE apps SET post_logout_url = 'http://127.0.0.1:7090/bye' WHERE name = 'coach'")
    response = signin.logout(request({"tenant": "acme", "app": "coach"}))
    assert (response.status, response.headers["Location"]) == (302, "http://127.0.0.1:7090/bye")
    assert "Max-Age=0" in response.cookies[0]
    assert signin.logout(request({})).status == 200


def test_the_admin_dashboard_gets_an_admin_token_for_the_signed_in_admin(acme, standin, monkeypatch, database):
    import psycopg

    from shared.admin import api

    monkeypatch.setenv("OPERATOR_TENANT", "acme")
    standin.add_sso_user(acme.workos_organization_id, "ann@acme.example", role="admin")
    code = _query(sign_in(standin, {"tenant": "acme"}, "ann@acme.example").headers["Location"])["code"]
    redeemed = redeem(acme.credentials["dashboard"], code).body
    token = redeemed["admin_token"]
    assert token.startswith("ect_")
    assert redeemed["admin_token_expires_in"] == 900
    listed = api.handle("tenants.list", api.list_tenants, authorization=f"Bearer {token}", source=CLIENT)
    assert listed.status == 200
    with db.transaction() as conn:
        entry = conn.execute("SELECT actor, scope FROM admin_audit ORDER BY id DESC LIMIT 1").fetchone()
    with psycopg.connect(database) as owner:  # the token's 15 minutes pass (the app role cannot change it)
        assert owner.execute("SELECT count(*) FROM handoff_codes WHERE claims ? 'admin_token'").fetchone()[0] == 0
        owner.execute("UPDATE admin_tokens SET expires_at = now() - interval '1 second'")
    assert entry[0].startswith("user:ann@acme.example")
    assert entry[1] == "operator"
    expired = api.handle("tenants.list", api.list_tenants, authorization=f"Bearer {token}", source=CLIENT)
    assert expired.status == 401


def test_an_instance_app_gets_no_admin_token(acme, standin):
    code = _query(sign_in(standin, {"tenant": "acme"}, "ann@acme.example").headers["Location"])["code"]
    assert "admin_token" not in redeem(acme.credentials["coach"], code).body


def test_a_missing_client_id_is_a_clear_503_not_a_crash(acme, monkeypatch, caplog):
    monkeypatch.delenv("WORKOS_CLIENT_ID")
    response = signin.login(request({"tenant": "acme"}))
    assert response.status == 503
    assert "WORKOS_CLIENT_ID" in caplog.text
    assert "WORKOS_CLIENT_ID" not in response.body
