"""The Entra ID stand-in (local/entra.py) on the wire: discovery, the authorize page, the token endpoint's checks
(client secret, PKCE, single-use codes) and ID tokens that verify against its JWKS with pyjwt."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import ssl
import subprocess
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from local.entra import EntraStandIn, StandInError
from local.tls import local_ca
from tests.stack import PROJECT_ROOT, PYTHON, base_environment, wait_until

REDIRECT_URI = "https://app.example/api/auth/callback"
SECRET = "stand-in-client-secret"


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return local_ca(tmp_path_factory.mktemp("entra-standin-ca"))


@pytest.fixture(scope="module")
def clock():
    return Clock()


@pytest.fixture(scope="module")
def standin(ca, clock):
    with EntraStandIn(ca, clock=clock) as running:
        yield running


@pytest.fixture
def client(ca, standin):
    """An HTTPS client that trusts the local CA (and nothing is changed in the process)."""
    with httpx.Client(base_url=standin.base_url, verify=ssl.create_default_context(cafile=str(ca.cert_path)),
                      timeout=10) as http:
        yield http


@pytest.fixture
def app(standin):
    """A tenant with a registered app and one user; a tenant id of its own per test."""
    tid, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    standin.register_app(tid, client_id, SECRET, [REDIRECT_URI])
    user = standin.add_user(tid, "ada@acme.example", given_name="Ada", family_name="Lovelace", roles=["coach"],
                            groups=["g-1"])
    return {"tid": tid, "client_id": client_id, "user": user}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(standin, app, *, challenge: str | None, nonce: str = "n-1", state: str = "s-1", **extra) -> str:
    params = {"client_id": app["client_id"], "response_type": "code", "redirect_uri": REDIRECT_URI,
              "scope": "openid profile offline_access", "state": state, "nonce": nonce, "client_info": "1", **extra}
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return f"{standin.base_url}/{app['tid']}/oauth2/v2.0/authorize?{urlencode(params)}"


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def code_for(standin, app, **options) -> tuple[str, str]:
    """(code, verifier) of a sign-in of the app's user."""
    verifier, challenge = pkce()
    location = standin.sign_in(authorize_url(standin, app, challenge=challenge), "ada@acme.example", **options)
    return query_of(location)["code"], verifier


def redeem(client, app, code: str, verifier: str | None, *, secret: str | None = SECRET, **overrides):
    form = {"client_id": app["client_id"], "grant_type": "authorization_code", "code": code,
            "redirect_uri": REDIRECT_URI, "scope": "offline_access openid profile", "client_info": "1"}
    if verifier is not None:
        form["code_verifier"] = verifier
    if secret is not None:
        form["client_secret"] = secret
    form.update(overrides)
    return client.post(f"/{app['tid']}/oauth2/v2.0/token", data={k: v for k, v in form.items() if v is not None})


def assert_entra_error(response, status: int, error: str, code: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert "\r\nTrace ID: " in body["error_description"]
    assert body["trace_id"] in body["error_description"]
    assert {"timestamp", "correlation_id", "error_uri"} <= body.keys()
    return body


# --- discovery and keys ------------------------------------------------------------------------------------


def test_discovery_names_the_tenant_endpoints(client, standin, app):
    response = client.get(f"/{app['tid']}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    document = response.json()
    base = f"{standin.base_url}/{app['tid']}"
    assert document["issuer"] == f"{base}/v2.0"
    assert document["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert document["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert document["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert "RS256" in document["id_token_signing_alg_values_supported"]


def test_discovery_of_an_unknown_tenant_is_entras_invalid_tenant(client):
    response = client.get(f"/{uuid.uuid4()}/v2.0/.well-known/openid-configuration")
    assert_entra_error(response, 400, "invalid_tenant", 90002)


def test_the_id_token_verifies_against_the_jwks_with_pyjwt(client, standin, app):
    code, verifier = code_for(standin, app)
    response = redeem(client, app, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] > 0
    assert tokens["access_token"]
    assert tokens["refresh_token"]  # offline_access was asked
    assert "offline_access" not in tokens["scope"].split()
    info = json.loads(base64.urlsafe_b64decode(tokens["client_info"] + "=="))
    assert info == {"uid": app["user"]["oid"], "utid": app["tid"]}

    keys = jwt.PyJWKSet.from_dict(client.get(f"/{app['tid']}/discovery/v2.0/keys").json())
    header = jwt.get_unverified_header(tokens["id_token"])
    assert header["alg"] == "RS256"
    key = next(key for key in keys.keys if key.key_id == header["kid"])
    claims = jwt.decode(tokens["id_token"], key.key, algorithms=["RS256"], audience=app["client_id"],
                        issuer=f"{standin.base_url}/{app['tid']}/v2.0")

    assert claims["tid"] == app["tid"]
    assert claims["oid"] == app["user"]["oid"]
    assert claims["nonce"] == "n-1"
    assert claims["email"] == claims["preferred_username"] == "ada@acme.example"
    assert (claims["given_name"], claims["family_name"], claims["name"]) == ("Ada", "Lovelace", "Ada Lovelace")
    assert claims["roles"] == ["coach"]
    assert claims["groups"] == ["g-1"]
    assert claims["ver"] == "2.0"
    assert claims["nbf"] <= claims["iat"] < claims["exp"]
    assert claims["sub"] != claims["oid"]  # pairwise, as Entra's


def test_the_subject_is_pairwise_per_app(client, standin, app):
    other_client = str(uuid.uuid4())
    standin.register_app(app["tid"], other_client, SECRET, [REDIRECT_URI])
    subjects = set()
    for client_id in (app["client_id"], other_client):
        target = {**app, "client_id": client_id}
        code, verifier = code_for(standin, target)
        token = redeem(client, target, code, verifier).json()["id_token"]
        subjects.add(jwt.decode(token, options={"verify_signature": False})["sub"])
    assert len(subjects) == 2


def test_more_than_200_groups_is_the_overage_claim(client, standin, app):
    standin.add_user(app["tid"], "many@acme.example", groups=[f"g-{n}" for n in range(201)])
    verifier, challenge = pkce()
    location = standin.sign_in(authorize_url(standin, app, challenge=challenge), "many@acme.example")
    token = redeem(client, app, query_of(location)["code"], verifier).json()["id_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert "groups" not in claims
    assert claims["_claim_names"] == {"groups": "src1"}
    assert claims["_claim_sources"]["src1"]["endpoint"].endswith(f"/users/{claims['oid']}/getMemberObjects")


def test_sign_in_options_bend_the_id_token(client, standin, app):
    code, verifier = code_for(standin, app, claims={"tid": "another", "email": None}, untrusted_key=True)
    token = redeem(client, app, code, verifier).json()["id_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["tid"] == "another"
    assert "email" not in claims
    keys = jwt.PyJWKSet.from_dict(standin.jwks())
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, keys.keys[0].key, algorithms=["RS256"], audience=app["client_id"])


# --- the token endpoint's checks ---------------------------------------------------------------------------


def test_pkce_is_enforced(client, standin, app):
    code, _ = code_for(standin, app)
    assert_entra_error(redeem(client, app, code, pkce()[0]), 400, "invalid_grant", 50148)
    code, _ = code_for(standin, app)
    assert_entra_error(redeem(client, app, code, None), 400, "invalid_grant", 50148)


def test_the_client_secret_is_enforced(client, standin, app):
    code, verifier = code_for(standin, app)
    assert_entra_error(redeem(client, app, code, verifier, secret="wrong"), 401, "invalid_client", 7000215)
    assert_entra_error(redeem(client, app, code, verifier, secret=None), 401, "invalid_client", 7000218)
    unknown = {**app, "client_id": str(uuid.uuid4())}
    assert_entra_error(redeem(client, unknown, code, verifier), 400, "unauthorized_client", 700016)
    # refused client authentication does not spend the code
    assert redeem(client, app, code, verifier).status_code == 200


def test_http_basic_client_authentication_is_accepted(client, standin, app):
    code, verifier = code_for(standin, app)
    response = client.post(f"/{app['tid']}/oauth2/v2.0/token", auth=(app["client_id"], SECRET), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
    assert response.status_code == 200, response.text


def test_codes_are_single_use(client, standin, app):
    code, verifier = code_for(standin, app)
    assert redeem(client, app, code, verifier).status_code == 200
    assert_entra_error(redeem(client, app, code, verifier), 400, "invalid_grant", 54005)


def test_a_failed_redemption_spends_the_code(client, standin, app):
    code, verifier = code_for(standin, app)
    assert_entra_error(redeem(client, app, code, "wrong-verifier"), 400, "invalid_grant", 50148)
    assert_entra_error(redeem(client, app, code, verifier), 400, "invalid_grant", 54005)


def test_codes_expire(client, standin, app, clock):
    code, verifier = code_for(standin, app)
    clock.now += standin.code_lifetime + 1
    try:
        assert_entra_error(redeem(client, app, code, verifier), 400, "invalid_grant", 70008)
    finally:
        clock.now -= standin.code_lifetime + 1


def test_a_code_is_bound_to_its_redirect_uri_app_and_tenant(client, standin, app):
    code, verifier = code_for(standin, app)
    assert_entra_error(redeem(client, app, code, verifier, redirect_uri="https://app.example/other"),
                       400, "invalid_grant", 500112)
    code, verifier = code_for(standin, app)
    other = {"tid": str(uuid.uuid4()), "client_id": app["client_id"]}
    standin.register_app(other["tid"], other["client_id"], SECRET, [REDIRECT_URI])
    assert_entra_error(redeem(client, other, code, verifier), 400, "invalid_grant", 70000)
    assert_entra_error(redeem(client, app, "not-a-code", verifier), 400, "invalid_grant", 70000)


def test_other_grants_and_methods_are_refused_as_entra_does(client, standin, app):
    response = client.post(f"/{app['tid']}/oauth2/v2.0/token", data={
        "grant_type": "password", "client_id": app["client_id"], "client_secret": SECRET})
    assert_entra_error(response, 400, "unsupported_grant_type", 70003)
    assert_entra_error(client.get(f"/{app['tid']}/oauth2/v2.0/token"), 400, "invalid_request", 900561)


# --- the authorize page ------------------------------------------------------------------------------------


def test_the_authorize_page_lists_the_tenants_users_and_posts_back(client, standin, app):
    url = authorize_url(standin, app, challenge=pkce()[1], login_hint="ada@acme.example")
    page = client.get(url)
    assert page.status_code == 200
    assert "ada@acme.example" in page.text
    assert 'name=_action value="user:ada@acme.example"' in page.text
    assert "Deny" in page.text

    form = {**query_of(url), "_action": "user:ada@acme.example"}
    answer = client.post(urlsplit(url).path, data=form)
    assert answer.status_code == 302
    callback = query_of(answer.headers["Location"])
    assert answer.headers["Location"].startswith(REDIRECT_URI + "?")
    assert callback["state"] == "s-1"
    assert callback["code"]
    assert json.loads(base64.urlsafe_b64decode(callback["client_info"] + "=="))["uid"] == app["user"]["oid"]


def test_a_typed_user_is_added_to_the_tenant(client, standin, app):
    url = authorize_url(standin, app, challenge=pkce()[1])
    form = {**query_of(url), "_action": "custom", "_email": "new@acme.example", "_given_name": "New",
            "_roles": "admin, coach", "_groups": "g-9"}
    answer = client.post(urlsplit(url).path, data=form)
    assert answer.status_code == 302
    assert "code" in query_of(answer.headers["Location"])
    user = next(user for user in standin.users(app["tid"]) if user["email"] == "new@acme.example")
    assert (user["given_name"], user["roles"], user["groups"]) == ("New", ["admin", "coach"], ["g-9"])


def test_deny_redirects_with_access_denied_and_the_state(client, standin, app):
    url = authorize_url(standin, app, challenge=pkce()[1])
    answer = client.post(urlsplit(url).path, data={**query_of(url), "_action": "deny"})
    assert answer.status_code == 302
    callback = query_of(answer.headers["Location"])
    assert callback["error"] == "access_denied"
    assert callback["error_description"].startswith("AADSTS65004: ")
    assert callback["state"] == "s-1"
    assert "code" not in callback
    assert query_of(standin.sign_in(url, "ada@acme.example", deny=True))["error"] == "access_denied"


def test_an_unregistered_redirect_uri_or_app_is_an_error_page_never_a_redirect(client, standin, app):
    url = authorize_url(standin, app, challenge=None, redirect_uri="https://evil.example/cb")
    page = client.get(url)
    assert page.status_code == 400
    assert "AADSTS50011" in page.text
    assert "Location" not in page.headers
    with pytest.raises(StandInError, match="AADSTS50011"):
        standin.sign_in(url, "ada@acme.example")
    unknown = authorize_url(standin, {**app, "client_id": str(uuid.uuid4())}, challenge=None)
    assert "AADSTS700016" in client.get(unknown).text


def test_an_unsupported_response_type_goes_back_as_an_error(client, standin, app):
    url = authorize_url(standin, app, challenge=None, response_type="token")
    answer = client.get(url)
    assert answer.status_code == 302
    assert query_of(answer.headers["Location"])["error"] == "unsupported_response_type"


# --- the client credentials grant (an app's own token, e.g. a bot's for the Bot Connector) -----------------

BOT_SCOPE = "https://api.botframework.com/.default"


@pytest.fixture
def bot_app(standin):
    """A tenant with a registered app without redirect URIs (a bot's registration)."""
    tid, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    standin.register_app(tid, client_id, SECRET, [])
    return {"tid": tid, "client_id": client_id}


@pytest.fixture
def no_ca_bundle_override(monkeypatch):
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE win over a session's ``verify`` (which is where MSAL puts
    its ``verify=``): without them, MSAL trusts exactly the bundle it is given."""
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)


def confidential_client(ca, standin, bot_app, *, client_id: str | None = None, secret: str = SECRET):
    import msal

    return msal.ConfidentialClientApplication(
        client_id or bot_app["client_id"], client_credential=secret,
        authority=f"{standin.base_url}/{bot_app['tid']}", instance_discovery=False, verify=str(ca.bundle_path))


def client_grant(client, bot_app, **overrides):
    form = {"grant_type": "client_credentials", "client_id": bot_app["client_id"], "client_secret": SECRET,
            "scope": BOT_SCOPE, **overrides}
    return client.post(f"/{bot_app['tid']}/oauth2/v2.0/token", data={k: v for k, v in form.items() if v is not None})


def test_msal_gets_a_bot_framework_token_that_verifies_against_the_jwks(ca, standin, bot_app, no_ca_bundle_override):
    result = confidential_client(ca, standin, bot_app).acquire_token_for_client([BOT_SCOPE])
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    assert 3500 < result["expires_in"] <= 3599

    token = result["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == standin.kid
    key = next(key for key in jwt.PyJWKSet.from_dict(standin.jwks()).keys if key.key_id == header["kid"])
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="https://api.botframework.com",
                        issuer=f"https://sts.windows.net/{bot_app['tid']}/")
    assert claims["appid"] == claims["azp"] == bot_app["client_id"]
    assert claims["tid"] == bot_app["tid"]
    assert claims["ver"] == "1.0"
    assert claims["exp"] - claims["iat"] == 3599
    assert claims["nbf"] <= claims["iat"]
    assert standin.token_grants(bot_app["client_id"]) == 1


def test_msal_reuses_its_cached_token_for_many_turns(ca, standin, bot_app, no_ca_bundle_override):
    application = confidential_client(ca, standin, bot_app)
    tokens = {application.acquire_token_for_client([BOT_SCOPE])["access_token"] for _ in range(5)}
    assert len(tokens) == 1
    assert standin.token_grants(bot_app["client_id"]) == 1
    assert standin.token_grants(str(uuid.uuid4())) == 0


def test_any_resource_default_scope_is_its_audience(client, standin, bot_app):
    response = client_grant(client, bot_app, scope="api://backend-app/.default")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["expires_in"] == body["ext_expires_in"] == 3599
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "api://backend-app"


def test_msal_surfaces_the_client_errors(ca, standin, bot_app, no_ca_bundle_override):
    unknown = str(uuid.uuid4())
    result = confidential_client(ca, standin, bot_app, client_id=unknown).acquire_token_for_client([BOT_SCOPE])
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]
    assert f"Application with identifier '{unknown}' was not found in the directory" in result["error_description"]

    result = confidential_client(ca, standin, bot_app, secret="wrong").acquire_token_for_client([BOT_SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]

    result = confidential_client(ca, standin, bot_app).acquire_token_for_client(
        ["https://api.botframework.com/user.read"])
    assert result["error"] == "invalid_scope"
    assert result["error_codes"] == [70011]
    assert standin.token_grants(bot_app["client_id"]) == 0


def test_the_client_credentials_checks_on_the_wire(client, standin, bot_app):
    assert_entra_error(client_grant(client, bot_app, client_secret="wrong"), 401, "invalid_client", 7000215)
    assert_entra_error(client_grant(client, bot_app, client_secret=None), 401, "invalid_client", 7000218)
    other_tenant = {"tid": str(uuid.uuid4()), "client_id": bot_app["client_id"]}
    standin.register_app(other_tenant["tid"], str(uuid.uuid4()), SECRET, [])
    assert_entra_error(client_grant(client, other_tenant), 400, "unauthorized_client", 700016)
    assert_entra_error(client_grant(client, bot_app, scope=None), 400, "invalid_request", 900144)
    for scope in ("openid", "https://api.botframework.com", "/.default",
                  f"{BOT_SCOPE} https://graph.microsoft.com/.default"):
        assert_entra_error(client_grant(client, bot_app, scope=scope), 400, "invalid_scope", 70011)
    assert standin.token_grants(bot_app["client_id"]) == 0


def test_client_credentials_with_http_basic(client, standin, bot_app):
    response = client.post(f"/{bot_app['tid']}/oauth2/v2.0/token", auth=(bot_app["client_id"], SECRET),
                           data={"grant_type": "client_credentials", "scope": BOT_SCOPE})
    assert response.status_code == 200, response.text
    assert standin.token_grants(bot_app["client_id"].upper()) == 1


def test_minted_access_tokens_bend_for_negative_tests(standin, bot_app):
    keys = jwt.PyJWKSet.from_dict(standin.jwks())
    expired = standin.mint_access_token(bot_app["tid"], bot_app["client_id"], "https://api.botframework.com",
                                        lifetime=-60)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(expired, keys.keys[0].key, algorithms=["RS256"], audience="https://api.botframework.com")
    forged = standin.mint_access_token(bot_app["tid"], bot_app["client_id"], "https://api.botframework.com",
                                       untrusted_key=True, claims={"azp": None})
    assert "azp" not in jwt.decode(forged, options={"verify_signature": False})
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, keys.keys[0].key, algorithms=["RS256"], audience="https://api.botframework.com")


# --- another process ---------------------------------------------------------------------------------------


def test_the_command_line_serves_and_takes_apps_and_users_over_http(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tid, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    process = subprocess.Popen(
        [PYTHON, "-m", "local.entra", "serve", "--port", str(port), "--state-dir", str(tmp_path),
         "--app", f"{tid},{client_id},{SECRET},{REDIRECT_URI}"],
        cwd=PROJECT_ROOT, env=base_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"https://127.0.0.1:{port}"

        def discovery():
            if process.poll() is not None:
                raise AssertionError(f"the stand-in exited: {process.stdout.read()}")
            try:  # the CA file appears when the process has started
                context = ssl.create_default_context(cafile=str(tmp_path / "ca" / "ca.pem"))
                return httpx.get(f"{base}/{tid}/v2.0/.well-known/openid-configuration", verify=context, timeout=2)
            except (httpx.TransportError, OSError):
                return None

        assert wait_until(discovery, message="the stand-in's discovery").status_code == 200
        context = ssl.create_default_context(cafile=str(tmp_path / "ca" / "ca.pem"))
        created = httpx.post(f"{base}/_standin/users", verify=context, timeout=5,
                             json={"tenant_id": tid, "email": "ops@acme.example", "roles": ["admin"]})
        assert created.status_code == 201
        assert created.json()["roles"] == ["admin"]
        assert (tmp_path / "entra-signing-key.pem").is_file()
    finally:
        process.terminate()
        process.wait(10)
