"""Direct Entra ID sign-in (shared/sso/entra.py) through real MSAL against the HTTPS stand-in (local/entra.py)."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import msal
import pytest
from psycopg.types.json import Jsonb

from local.entra import EntraStandIn
from local.tls import local_ca
from shared import config, db, secrets
from shared.secrets import SecretNotFound
from shared.sso import entra
from shared.sso.profile import SignInProfile, SignInRefused

SECRET = "entra-app-secret-value-123"
REDIRECT_URI = "https://app.example/api/sso/callback"


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """The stand-in on HTTPS, its CA trusted by this process for the module and the trust undone afterwards."""
    ca = local_ca(tmp_path_factory.mktemp("entra-ca"))
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):  # what trust_in_process sets
            patch.setenv(variable, "")  # records the value to restore
        ca.trust_in_process()
        with EntraStandIn(ca) as running:
            yield running


@pytest.fixture
def fresh_caches():
    entra.reset()
    secrets.forget()
    yield
    entra.reset()
    secrets.forget()


@pytest.fixture
def tenant_of(standin, make_tenant, monkeypatch, fresh_caches):
    """An Entra tenant of ours, its app registered at the stand-in (a tenant id of its own per test)."""
    monkeypatch.setenv("ENTRA_AUTHORITY_HOST", standin.base_url)
    config.reset()

    def make(slug: str = "acme", *, secret: str = SECRET, registered_secret: str | None = None):
        tid, client_id = str(uuid.uuid4()), str(uuid.uuid4())
        standin.register_app(tid, client_id, registered_secret or secret, [REDIRECT_URI])
        monkeypatch.setenv(f"SECRET_TENANT_{slug.upper().replace('-', '_')}_ENTRA", secret)
        return make_tenant(slug, provisioning="sso-jit", sso_provider="entra", entra_tenant_id=tid,
                           entra_client_id=client_id)

    return make


@pytest.fixture
def tenant(tenant_of):
    return tenant_of()


def callback(location: str) -> dict[str, str]:
    assert location.startswith(REDIRECT_URI + "?"), location
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def sign_in(standin, tenant, email="ada@acme.example", *, state="state-1", **options):
    """begin, then the stand-in's page as a browser would use it; returns (flow, callback parameters)."""
    url, flow = entra.begin(tenant, redirect_uri=REDIRECT_URI, state=state, login_hint=email)
    return flow, callback(standin.sign_in(url, email, **options))


def refusal(standin, tenant, **options) -> SignInRefused:
    flow, response = sign_in(standin, tenant, **options)
    with pytest.raises(SignInRefused) as caught:
        entra.complete(tenant, flow, response)
    assert SECRET not in str(caught.value)
    return caught.value


def test_a_sign_in_maps_the_id_token_into_the_profile(standin, tenant):
    user = standin.add_user(tenant.entra_tenant_id, "ada@acme.example", given_name="Ada", family_name="Lovelace",
                            roles=["coach", "admin"], groups=["g-1", "g-2"])

    url, flow = entra.begin(tenant, redirect_uri=REDIRECT_URI, state="state-1", login_hint="ada@acme.example")

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"{standin.base_url}/{tenant.entra_tenant_id}/oauth2/v2.0/authorize")
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert query["client_id"] == tenant.entra_client_id
    assert query["state"] == "state-1"
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"]
    assert query["nonce"]
    assert query["login_hint"] == "ada@acme.example"
    assert "offline_access" not in query["scope"].split()

    profile = entra.complete(tenant, flow, callback(standin.sign_in(url, "ada@acme.example")))

    assert profile == SignInProfile(
        provider="entra", subject=user["oid"], connection_id=tenant.entra_tenant_id, organization_id=None,
        email="ada@acme.example", first_name="Ada", last_name="Lovelace", role_slugs=("coach", "admin"),
        groups=("g-1", "g-2"), groups_complete=True, entra_tenant_id=tenant.entra_tenant_id,
        entra_object_id=user["oid"])


def test_the_flow_survives_a_round_trip_through_postgres_jsonb(standin, tenant):
    standin.add_user(tenant.entra_tenant_id, "ada@acme.example")
    url, flow = entra.begin(tenant, redirect_uri=REDIRECT_URI, state="state-1")
    assert json.loads(json.dumps(flow)) == flow
    with db.transaction(tenant_id=tenant.id) as conn:
        stored = conn.execute("SELECT %s::jsonb", (Jsonb(flow),)).fetchone()[0]
    assert stored == flow

    profile = entra.complete(tenant, stored, callback(standin.sign_in(url, "ada@acme.example")))
    assert profile.email == "ada@acme.example"


def test_a_token_of_another_entra_tenant_is_refused_as_wrong_tenant(standin, tenant):
    other = str(uuid.uuid4())
    error = refusal(standin, tenant, claims={"tid": other, "iss": f"{standin.base_url}/{other}/v2.0"})
    assert error.reason == "wrong_tenant"
    assert other in str(error)


def test_a_tid_mismatch_alone_is_wrong_tenant(standin, tenant):
    assert refusal(standin, tenant, claims={"tid": str(uuid.uuid4())}).reason == "wrong_tenant"


@pytest.mark.parametrize(("claims", "untrusted_key"), [
    pytest.param({"nonce": "another-sign-in"}, False, id="nonce mismatch"),
    pytest.param({"nonce": None}, False, id="no nonce"),
    pytest.param({"iat": int(time.time()) - 7200, "nbf": int(time.time()) - 7200,
                  "exp": int(time.time()) - 3600}, False, id="expired"),
    pytest.param({"aud": "00000000-0000-0000-0000-000000000001"}, False, id="another audience"),
    pytest.param({"iss": "https://login.example/issuer/v2.0"}, False, id="another issuer"),
    pytest.param({"oid": None}, False, id="no oid"),
    pytest.param({}, True, id="bad signature"),
])
def test_an_id_token_failing_a_check_is_refused(standin, tenant, claims, untrusted_key):
    assert refusal(standin, tenant, claims=claims, untrusted_key=untrusted_key).reason == "invalid_token"


def test_a_callback_with_another_state_is_refused_before_any_redemption(standin, tenant):
    flow, response = sign_in(standin, tenant)
    for forged in ({**response, "state": "state-2"}, {k: v for k, v in response.items() if k != "state"}):
        with pytest.raises(SignInRefused) as caught:
            entra.complete(tenant, flow, forged)
        assert caught.value.reason == "state_mismatch"
    # the code was not spent by the refused attempts
    assert entra.complete(tenant, flow, response).email == "ada@acme.example"


def test_an_error_callback_is_a_provider_error_with_entra_reason(standin, tenant):
    error = refusal(standin, tenant, deny=True)
    assert error.reason == "provider_error"
    assert "access_denied" in str(error)
    assert "AADSTS65004" in str(error)
    assert "Trace ID" not in str(error)


def test_a_callback_with_neither_code_nor_error_is_invalid(standin, tenant):
    flow, _ = sign_in(standin, tenant)
    with pytest.raises(SignInRefused) as caught:
        entra.complete(tenant, flow, {"state": "state-1"})
    assert caught.value.reason == "invalid_response"


def test_a_replayed_callback_is_refused(standin, tenant):
    flow, response = sign_in(standin, tenant)
    entra.complete(tenant, flow, response)
    with pytest.raises(SignInRefused) as caught:
        entra.complete(tenant, flow, response)
    assert caught.value.reason == "provider_error"
    assert "invalid_grant" in str(caught.value)


def test_a_wrong_client_secret_is_a_provider_error_that_never_shows_the_secret(standin, tenant_of):
    tenant = tenant_of(registered_secret="the-secret-entra-expects")
    error = refusal(standin, tenant)
    assert error.reason == "provider_error"
    assert "invalid_client" in str(error)
    assert "the-secret-entra-expects" not in str(error)


def test_groups_overage_leaves_groups_incomplete(standin, tenant):
    standin.add_user(tenant.entra_tenant_id, "ada@acme.example", groups=[f"group-{n}" for n in range(201)])
    flow, response = sign_in(standin, tenant)
    profile = entra.complete(tenant, flow, response)
    assert profile.groups_complete is False
    assert profile.groups == ()


def test_hasgroups_also_means_groups_are_incomplete(standin, tenant):
    flow, response = sign_in(standin, tenant, claims={"hasgroups": True})
    assert entra.complete(tenant, flow, response).groups_complete is False


@pytest.mark.parametrize(("claims", "email"), [
    pytest.param({"email": None}, "ada@acme.example", id="preferred_username when no email claim"),
    pytest.param({"email": None, "preferred_username": "ada"}, None, id="not an email: none"),
    pytest.param({"email": "ada.lovelace@mail.example"}, "ada.lovelace@mail.example", id="the email claim first"),
])
def test_the_email_comes_from_email_or_an_email_like_preferred_username(standin, tenant, claims, email):
    flow, response = sign_in(standin, tenant, claims=claims)
    assert entra.complete(tenant, flow, response).email == email


@pytest.fixture
def built(monkeypatch) -> list[str]:
    """The client ids of the MSAL applications built during the test."""
    client_ids: list[str] = []
    real = msal.ConfidentialClientApplication

    def counting(*args, **kwargs):
        client_ids.append(kwargs["client_id"])
        return real(*args, **kwargs)

    monkeypatch.setattr(msal, "ConfidentialClientApplication", counting)
    return client_ids


def test_the_msal_application_is_built_once_per_tenant(standin, tenant_of, built):
    acme, globex = tenant_of("acme"), tenant_of("globex")

    for _ in range(3):
        flow, response = sign_in(standin, acme)
        entra.complete(acme, flow, response)
    flow, response = sign_in(standin, globex)
    entra.complete(globex, flow, response)

    assert built == [acme.entra_client_id, globex.entra_client_id]


def test_concurrent_first_sign_ins_build_one_application(standin, tenant, monkeypatch):
    built = []
    real = msal.ConfidentialClientApplication

    def slow(*args, **kwargs):
        built.append(kwargs["client_id"])
        time.sleep(0.2)  # a slow discovery, so that the other threads arrive meanwhile
        return real(*args, **kwargs)

    monkeypatch.setattr(msal, "ConfidentialClientApplication", slow)
    urls, failures = [], []

    def start(n: int) -> None:
        try:
            urls.append(entra.begin(tenant, redirect_uri=REDIRECT_URI, state=f"state-{n}")[0])
        except Exception as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert len(urls) == 6
    assert built == [tenant.entra_client_id]


def test_a_rotated_secret_builds_the_application_again(standin, tenant, monkeypatch, built):
    entra.begin(tenant, redirect_uri=REDIRECT_URI, state="state-1")
    standin.register_app(tenant.entra_tenant_id, tenant.entra_client_id, "rotated-secret", [REDIRECT_URI])
    monkeypatch.setenv("SECRET_TENANT_ACME_ENTRA", "rotated-secret")
    secrets.forget()

    flow, response = sign_in(standin, tenant)
    assert entra.complete(tenant, flow, response).entra_tenant_id == tenant.entra_tenant_id
    assert len(built) == 2


def test_an_entra_tenant_unknown_to_entra_is_provider_unavailable(standin, make_tenant, monkeypatch, fresh_caches):
    monkeypatch.setenv("ENTRA_AUTHORITY_HOST", standin.base_url)
    monkeypatch.setenv("SECRET_TENANT_GHOST_ENTRA", SECRET)
    config.reset()
    ghost = make_tenant("ghost", provisioning="sso-jit", sso_provider="entra", entra_tenant_id=str(uuid.uuid4()),
                        entra_client_id=str(uuid.uuid4()))
    with pytest.raises(SignInRefused) as caught:
        entra.begin(ghost, redirect_uri=REDIRECT_URI, state="state-1")
    assert caught.value.reason == "provider_unavailable"


def test_configuration_mistakes_are_errors_not_refusals(standin, make_tenant, monkeypatch, fresh_caches):
    monkeypatch.setenv("ENTRA_AUTHORITY_HOST", standin.base_url)
    config.reset()
    plain = make_tenant("plain")
    with pytest.raises(ValueError, match="no Entra tenant id"):
        entra.begin(plain, redirect_uri=REDIRECT_URI, state="state-1")
    secretless = make_tenant("secretless", provisioning="sso-jit", sso_provider="entra",
                             entra_tenant_id=str(uuid.uuid4()), entra_client_id=str(uuid.uuid4()))
    with pytest.raises(SecretNotFound):
        entra.begin(secretless, redirect_uri=REDIRECT_URI, state="state-1")


def test_instance_discovery_is_off_only_for_a_host_that_is_not_microsofts(standin, tenant, monkeypatch):
    seen = []
    real = msal.ConfidentialClientApplication

    def recording(*args, **kwargs):
        seen.append(kwargs.get("instance_discovery"))
        return real(*args, **kwargs)

    monkeypatch.setattr(msal, "ConfidentialClientApplication", recording)
    entra.begin(tenant, redirect_uri=REDIRECT_URI, state="state-1")
    assert seen == [False]

    # login.microsoftonline.com keeps MSAL's default; stop before the network.
    monkeypatch.delenv("ENTRA_AUTHORITY_HOST")
    config.reset()

    def stop(*args, **kwargs):
        seen.append(kwargs.get("instance_discovery", "absent"))
        raise OSError("not reaching Microsoft from a test")

    monkeypatch.setattr(msal, "ConfidentialClientApplication", stop)
    with pytest.raises(SignInRefused):
        entra.begin(tenant, redirect_uri=REDIRECT_URI, state="state-1")
    assert seen == [False, None]


def test_the_nonce_is_checked_here_too_not_only_by_msal(standin, tenant):
    """MSAL compares the nonce today; the module's own check does not rely on it."""
    user = standin.add_user(tenant.entra_tenant_id, "ada@acme.example")
    token = standin.mint_id_token(tenant.entra_tenant_id, tenant.entra_client_id, user, nonce="sent-nonce")
    checks = {"tid": tenant.entra_tenant_id, "client_id": tenant.entra_client_id}
    assert entra._verified_claims(token, nonce="sent-nonce", **checks)["oid"] == user["oid"]
    for nonce in ("another-nonce", None):
        with pytest.raises(SignInRefused) as caught:
            entra._verified_claims(token, nonce=nonce, **checks)
        assert caught.value.reason == "invalid_token"


# --- through the sign-in flow (shared/sso/signin.py) -------------------------------------------------


def test_a_direct_entra_sign_in_reaches_the_app_with_the_same_claims_shape(standin, tenant_of, monkeypatch):
    from shared.sso import handoff, signin
    from shared.tenants.apps import AppSpec, add_app, create_app_secret
    from shared.tenants.registry import TenantChanges, update_tenant

    monkeypatch.setenv("PUBLIC_BASE_URL", "https://app.example")
    config.reset()
    tenant = tenant_of("contoso")
    standin.register_app(tenant.entra_tenant_id, tenant.entra_client_id, SECRET,
                         ["https://app.example/api/auth/callback"])
    with db.transaction() as conn:
        add_app(conn, tenant, "coach", AppSpec(kind="instance", base_url="https://coach.example"))
        app, _, app_secret = create_app_secret(conn, tenant, "coach", created_by="test")
        update_tenant(conn, "contoso", TenantChanges(default_app="coach"))
    standin.add_user(tenant.entra_tenant_id, "ada@contoso.example", given_name="Ada", roles=("leader",),
                     groups=("g-1",))
    origin = "https://app.example"

    def request(params, cookie=None):
        return signin.SignInRequest(params, f"__Host-ec_login={cookie}" if cookie else None, "203.0.113.5", origin)

    started = signin.login(request({"tenant": "contoso", "app_state": "s1"}))
    assert started.status == 302, started.body
    cookie = started.cookies[0].split(";")[0].split("=", 1)[1]
    location = standin.sign_in(started.headers["Location"], "ada@contoso.example")
    params = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    finished = signin.callback(request(params, cookie))
    assert finished.status == 302, finished.body
    code = parse_qs(urlsplit(finished.headers["Location"]).query)["code"][0]
    basic = base64.b64encode(f"{app.client_id}:{app_secret}".encode()).decode()
    claims = handoff.redeem(f"Basic {basic}", json.dumps({"code": code}).encode(), "203.0.113.5").body
    assert claims["user"]["email"] == "ada@contoso.example"
    assert (claims["user"]["roles"], claims["app_state"]) == (["leader"], "s1")

    # A token of another Entra tenant, delivered to this tenant's callback, is refused.
    started = signin.login(request({"tenant": "contoso"}))
    cookie = started.cookies[0].split(";")[0].split("=", 1)[1]
    other_tid = str(uuid.uuid4())
    location = standin.sign_in(started.headers["Location"], "ada@contoso.example", claims={"tid": other_tid})
    params = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    refused = signin.callback(request(params, cookie))
    assert refused.status == 403
    with db.transaction(tenant_id=tenant.id) as conn:
        assert conn.execute("SELECT outcome, reason FROM sign_in_attempts ORDER BY id DESC LIMIT 1").fetchone() == (
            "refused", "wrong_tenant")
