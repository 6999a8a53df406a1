"""The Bot Connector stand-in (local/botconnector.py) on the wire: the channel's OpenID metadata, keys and tokens
(checked with pyjwt and with botbuilder's own validation), the connector REST API (raw HTTP and botframework's
ConnectorClient, with tokens from the Entra stand-in), faults and rate limits, the control endpoints and sending
activities to a bot."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import httpx
import jwt
import pytest

from local.botconnector import BotConnectorStandIn
from local.entra import EntraStandIn
from local.tls import local_ca
from tests.stack import PROJECT_ROOT, PYTHON, base_environment, wait_until

BOT_SCOPE = "https://api.botframework.com/.default"
CONNECTOR_AUDIENCE = "https://api.botframework.com"
SECRET = "bot-app-secret"


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return local_ca(tmp_path_factory.mktemp("botconnector-ca"))


@pytest.fixture(scope="module")
def entra(ca):
    with EntraStandIn(ca) as running:
        yield running


@pytest.fixture
def bot_app(entra):
    """The bot's app registration in its home tenant (one of its own per test)."""
    home_tenant, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    entra.register_app(home_tenant, app_id, SECRET, [])
    return {"tid": home_tenant, "app_id": app_id}


@pytest.fixture
def connector(entra, bot_app):
    with BotConnectorStandIn(app_id=bot_app["app_id"], token_jwks=entra.jwks) as running:
        yield running


@pytest.fixture
def http(connector):
    with httpx.Client(base_url=connector.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def bot_token(entra, bot_app) -> str:
    """An access token for the Bot Connector as Entra issues it to the bot."""
    return entra.mint_access_token(bot_app["tid"], bot_app["app_id"], CONNECTOR_AUDIENCE)


@pytest.fixture
def user(connector):
    """A Teams user of a customer tenant with the app installed: (user, conversation id)."""
    teams_user = connector.add_user(str(uuid.uuid4()), "ada.lovelace@acme.example")
    return teams_user, connector.install(teams_user.tenant_id, teams_user.aad_object_id)


@pytest.fixture
def no_ca_bundle_override(monkeypatch):
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE win over a session's ``verify`` (where MSAL puts its
    ``verify=``): without them, MSAL trusts exactly the bundle it is given."""
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def activities_path(conversation_id: str, *, region: str | None = "amer", reply_to: str | None = None) -> str:
    prefix = f"/{region}" if region else ""
    path = f"{prefix}/v3/conversations/{quote(conversation_id, safe='')}/activities"
    return f"{path}/{quote(reply_to, safe='')}" if reply_to else path


def decode_channel_token(token: str, jwks: dict, *, audience: str) -> dict:
    """Verify a channel token as a bot does, with pyjwt: the key by kid, RS256, issuer, audience, lifetime."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    key = next(key for key in jwt.PyJWKSet.from_dict(jwks).keys if key.key_id == header["kid"])
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer="https://api.botframework.com")


def endorsements(jwks: dict, kid: str) -> list[str]:
    return next(key["endorsements"] for key in jwks["keys"] if key["kid"] == kid)


def assert_connector_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body


# --- channel -> bot authentication -------------------------------------------------------------------------


def test_the_openid_metadata_and_keys_are_shaped_as_the_channels(http, connector):
    metadata = http.get("/v1/.well-known/openidconfiguration").json()
    assert metadata == {
        "issuer": "https://api.botframework.com",
        "authorization_endpoint": "https://invalid.botframework.com",
        "jwks_uri": f"{connector.base_url}/v1/.well-known/keys",
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    }
    assert connector.openid_metadata_url == f"{connector.base_url}/v1/.well-known/openidconfiguration"
    keys = http.get(metadata["jwks_uri"].removeprefix(connector.base_url)).json()["keys"]
    assert len(keys) == 2
    for key in keys:
        assert {"kty", "use", "kid", "n", "e", "endorsements"} <= key.keys()
        assert (key["kty"], key["use"]) == ("RSA", "sig")
    main, webchat = keys
    assert main["kid"] == connector.main_kid
    assert main["endorsements"] == ["msteams", "webchat", "emulator"]
    assert (webchat["kid"], webchat["endorsements"]) == ("webchat-only", ["webchat"])
    assert (connector.metadata_requests, connector.keys_requests) == (1, 1)
    assert connector.service_url == f"{connector.base_url}/amer/"
    assert connector.issuer == "https://api.botframework.com"


def test_a_channel_token_verifies_against_the_published_keys(http, connector, bot_app):
    token = connector.channel_token()
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "JWT"
    assert header["kid"] == header["x5t"] == connector.main_kid
    jwks = http.get("/v1/.well-known/keys").json()
    claims = decode_channel_token(token, jwks, audience=bot_app["app_id"])
    assert claims["serviceurl"] == connector.service_url
    assert claims["nbf"] <= claims["iat"] < claims["exp"]
    assert "msteams" in endorsements(jwks, header["kid"])

    webchat = connector.channel_token(sign_with="webchat-only")
    assert jwt.get_unverified_header(webchat)["kid"] == "webchat-only"
    decode_channel_token(webchat, jwks, audience=bot_app["app_id"])  # a good signature...
    assert "msteams" not in endorsements(jwks, "webchat-only")  # ...by a key not endorsed for Teams

    custom = connector.channel_token(service_url="https://smba.example/emea/", audience="other-app",
                                     extra_claims={"serviceurl": None, "ver": "1.0"})
    claims = decode_channel_token(custom, jwks, audience="other-app")
    assert "serviceurl" not in claims
    assert claims["ver"] == "1.0"


def test_forged_channel_tokens_are_each_what_they_say(connector, bot_app):
    jwks = connector.jwks()
    audience = bot_app["app_id"]
    untrusted = connector.channel_token(sign_with="untrusted")
    assert jwt.get_unverified_header(untrusted)["kid"] == connector.main_kid
    with pytest.raises(jwt.InvalidSignatureError):
        decode_channel_token(untrusted, jwks, audience=audience)

    unknown = connector.channel_token(sign_with="unknown-kid")
    assert jwt.get_unverified_header(unknown)["kid"] not in {key["kid"] for key in jwks["keys"]}

    with pytest.raises(jwt.ExpiredSignatureError):
        decode_channel_token(connector.channel_token(expires_in=-600), jwks, audience=audience)
    with pytest.raises(jwt.ImmatureSignatureError):
        decode_channel_token(connector.channel_token(not_before_offset=600), jwks, audience=audience)
    with pytest.raises(jwt.InvalidIssuerError):
        decode_channel_token(connector.channel_token(issuer="https://evil.example"), jwks, audience=audience)
    with pytest.raises(jwt.InvalidSignatureError):  # the main key's kid on the webchat-only key's signature
        decode_channel_token(connector.channel_token(sign_with="webchat-only", kid=connector.main_kid), jwks,
                             audience=audience)
    with pytest.raises(ValueError):
        connector.channel_token(sign_with="nonsense")


def test_rotate_keys_replaces_the_main_key(connector, bot_app):
    before = connector.channel_token()
    old_kid = connector.main_kid
    new_kid = connector.rotate_keys()
    assert new_kid == connector.main_kid != old_kid
    jwks = connector.jwks()
    assert [key["kid"] for key in jwks["keys"]] == [new_kid, "webchat-only"]
    decode_channel_token(connector.channel_token(), jwks, audience=bot_app["app_id"])
    with pytest.raises(StopIteration):  # the old kid is gone from the JWKS
        decode_channel_token(before, jwks, audience=bot_app["app_id"])


@pytest.fixture
def bot_authentication(connector, bot_app):
    """botbuilder's own validation of incoming requests, pointed at the stand-in's metadata."""
    from botframework.connector.auth import (
        BotFrameworkAuthenticationFactory,
        JwtTokenExtractor,
        PasswordServiceClientCredentialFactory,
    )

    authentication = BotFrameworkAuthenticationFactory.create(
        channel_service="", to_bot_from_channel_token_issuer="https://api.botframework.com",
        to_bot_from_channel_open_id_metadata_url=connector.openid_metadata_url,
        to_channel_from_bot_oauth_scope=CONNECTOR_AUDIENCE,
        credential_factory=PasswordServiceClientCredentialFactory(bot_app["app_id"], SECRET))
    yield authentication
    JwtTokenExtractor.metadataCache.pop(connector.openid_metadata_url, None)  # process-global, for 24 h


def test_botbuilder_accepts_the_channel_token_and_refuses_the_forged_ones(connector, bot_authentication, user):
    from botbuilder.schema import Activity

    teams_user, _ = user
    activity = Activity().deserialize(connector.message_activity(teams_user.tenant_id, teams_user.aad_object_id,
                                                                 "hello"))

    def authenticate(token: str):
        return asyncio.run(bot_authentication.authenticate_request(activity, f"Bearer {token}"))

    result = authenticate(connector.channel_token())
    assert result.claims_identity.is_authenticated
    assert result.claims_identity.claims["serviceurl"] == connector.service_url
    assert connector.metadata_requests == connector.keys_requests == 1

    with pytest.raises(Exception, match="Could not validate endorsement key"):
        authenticate(connector.channel_token(sign_with="webchat-only"))
    with pytest.raises(jwt.InvalidSignatureError):
        authenticate(connector.channel_token(sign_with="untrusted"))
    with pytest.raises(IndexError):  # botbuilder's way of saying "unknown kid"
        authenticate(connector.channel_token(sign_with="unknown-kid"))
    with pytest.raises(jwt.ExpiredSignatureError):
        authenticate(connector.channel_token(expires_in=-600))
    with pytest.raises(PermissionError):
        authenticate(connector.channel_token(service_url="https://smba.example/emea/"))
    with pytest.raises(PermissionError):
        authenticate(connector.channel_token(audience=str(uuid.uuid4())))

    connector.rotate_keys()  # botbuilder keeps the JWKS it fetched: the new kid is unknown until it refreshes
    with pytest.raises(IndexError):
        authenticate(connector.channel_token())
    assert connector.keys_requests == 1


# --- Teams' registry ---------------------------------------------------------------------------------------


def test_users_and_installations(connector):
    tenant = str(uuid.uuid4())
    ada = connector.add_user(tenant, "Ada@acme.example", name="Ada Lovelace")
    assert connector.add_user(tenant, "ada@ACME.example") == ada
    assert ada.id.startswith("29:")
    assert str(uuid.UUID(ada.aad_object_id)) == ada.aad_object_id
    assert (ada.upn, ada.given_name, ada.surname) == ("Ada@acme.example", "Ada", "Lovelace")
    elsewhere = connector.add_user(str(uuid.uuid4()), "ada@acme.example")
    assert elsewhere.aad_object_id != ada.aad_object_id

    # derived, so another stand-in (another process, a restart) knows the same ids
    again = BotConnectorStandIn(app_id=connector.app_id)
    twin = again.add_user(tenant, "ada@acme.example")
    assert (twin.aad_object_id, twin.id) == (ada.aad_object_id, ada.id)

    assert connector.conversation_of(tenant, ada.aad_object_id) is None
    conversation_id = connector.install(tenant, ada.aad_object_id)
    assert conversation_id.startswith("a:")
    assert quote(conversation_id, safe="") != conversation_id  # it needs percent-encoding in a URL
    assert connector.install(tenant, ada.aad_object_id) == conversation_id
    assert again.install(tenant, twin.aad_object_id) == conversation_id
    assert connector.conversation_of(tenant, ada.aad_object_id) == conversation_id
    connector.uninstall(tenant, ada.aad_object_id)
    assert connector.conversation_of(tenant, ada.aad_object_id) is None
    assert connector.install(tenant, ada.aad_object_id) == conversation_id
    with pytest.raises(KeyError):
        connector.install(tenant, str(uuid.uuid4()))


# --- connector REST: conversations, activities, members ------------------------------------------------------


def create_body(tenant_id: str | None, member_id: str, *, app_id: str, tenant_in: str = "channelData") -> dict:
    body: dict = {"isGroup": False, "bot": {"id": f"28:{app_id}"}, "members": [{"id": member_id}]}
    if tenant_id and tenant_in == "channelData":
        body["channelData"] = {"tenant": {"id": tenant_id}}
    elif tenant_id:
        body["tenantId"] = tenant_id
    return body


def test_create_conversation_errors_and_success(http, connector, bot_token, user):
    teams_user, conversation_id = user
    app_id = connector.app_id
    post = lambda body, path="/amer/v3/conversations": http.post(path, json=body, headers=auth(bot_token))  # noqa: E731

    body = assert_connector_error(post(create_body(None, teams_user.aad_object_id, app_id=app_id)), 400, "BadArgument")
    assert body["error"]["message"] == "Could not parse tenant id"
    body = assert_connector_error(post(create_body(teams_user.tenant_id, str(uuid.uuid4()), app_id=app_id)),
                                  404, "NotFound")
    assert body["error"]["message"] == "User not found"
    other_tenant = create_body(str(uuid.uuid4()), teams_user.aad_object_id, app_id=app_id)
    assert_connector_error(post(other_tenant), 404, "NotFound")

    stranger = connector.add_user(teams_user.tenant_id, "grace@acme.example")
    body = assert_connector_error(post(create_body(teams_user.tenant_id, stranger.aad_object_id, app_id=app_id)),
                                  403, "Forbidden")
    assert body["error"]["message"] == "The bot is not part of the conversation roster."

    for member_id, tenant_in in ((teams_user.aad_object_id, "channelData"), (teams_user.id, "tenantId")):
        response = post(create_body(teams_user.tenant_id, member_id, app_id=app_id, tenant_in=tenant_in))
        assert response.status_code == 201, response.text
        assert response.json() == {"id": conversation_id, "activityId": None, "serviceUrl": connector.service_url}
    response = post(create_body(teams_user.tenant_id, teams_user.id, app_id=app_id), "/v3/conversations")
    assert response.json()["id"] == conversation_id  # without the region prefix too

    with_activity = {**create_body(teams_user.tenant_id, teams_user.id, app_id=app_id),
                     "activity": {"type": "message", "text": "Welcome"}}
    created = post(with_activity).json()
    assert created["activityId"] == connector.activities(conversation_id)[-1]["id"]
    group = {**create_body(teams_user.tenant_id, teams_user.id, app_id=app_id), "isGroup": True}
    assert_connector_error(post(group), 400, "BadArgument")


def test_sends_and_replies_are_recorded_in_order(http, connector, bot_token, user):
    _, conversation_id = user
    encoded = quote(conversation_id, safe="")
    assert encoded != conversation_id

    sent = http.post(activities_path(conversation_id), headers=auth(bot_token),
                     json={"type": "message", "text": "Hello"})
    assert sent.status_code == 201, sent.text
    typing = http.post(activities_path(conversation_id, region=None), headers=auth(bot_token), json={"type": "typing"})
    assert typing.status_code == 201
    reply = http.post(activities_path(conversation_id, reply_to="1712345678901"), headers=auth(bot_token),
                      json={"type": "message", "text": "A reply", "attachments": []})
    assert reply.status_code == 201

    log = connector.activities(conversation_id)
    assert [entry["seq"] for entry in log] == [1, 2, 3]
    assert [entry["type"] for entry in log] == ["message", "typing", "message"]
    assert log[0]["id"] == sent.json()["id"]
    assert log[0]["text"] == "Hello"
    assert log[0]["from"] == {"id": f"28:{connector.app_id}", "name": "Coach"}
    assert log[0]["timestamp"].endswith("Z")
    assert "replyToId" not in log[0]
    assert log[2]["replyToId"] == "1712345678901"
    assert len({entry["id"] for entry in log}) == 3
    assert [entry["text"] for entry in connector.activities(conversation_id, after=1, include_typing=False)] == [
        "A reply"]
    assert connector.sent_count() == 3
    assert connector.sent_count(conversation_id, include_typing=False) == 2
    assert connector.requests_log[0] == ("POST", f"/amer/v3/conversations/{encoded}/activities", 201)


def test_updates_and_deletes_are_logged(http, connector, bot_token, user):
    _, conversation_id = user
    activity_id = http.post(activities_path(conversation_id), headers=auth(bot_token),
                            json={"type": "message", "text": "v1"}).json()["id"]
    path = f"{activities_path(conversation_id)}/{activity_id}"
    updated = http.put(path, headers=auth(bot_token), json={"type": "message", "text": "v2"})
    assert (updated.status_code, updated.json()) == (200, {"id": activity_id})
    deleted = http.delete(path, headers=auth(bot_token))
    assert deleted.status_code == 200
    assert_connector_error(http.put(path, headers=auth(bot_token), json={"type": "message", "text": "v3"}),
                           404, "NotFound")
    log = connector.activities(conversation_id)
    assert [(entry["id"], entry.get("text"), entry.get("updated"), entry.get("deleted")) for entry in log] == [
        (activity_id, "v1", None, None), (activity_id, "v2", True, None), (activity_id, None, None, True)]
    assert connector.sent_count() == 1


def test_activity_errors(http, connector, bot_token, user):
    teams_user, conversation_id = user
    assert_connector_error(http.post(activities_path("a:unknown"), headers=auth(bot_token), json={"type": "message"}),
                           404, "ConversationNotFound")
    assert_connector_error(http.post(activities_path(conversation_id), headers=auth(bot_token), json={"text": "x"}),
                           400, "BadArgument")
    assert_connector_error(http.post(activities_path(conversation_id), headers=auth(bot_token), content=b"not json"),
                           400, "BadArgument")
    connector.uninstall(teams_user.tenant_id, teams_user.aad_object_id)
    assert_connector_error(http.post(activities_path(conversation_id), headers=auth(bot_token),
                                     json={"type": "message"}), 403, "BotNotInConversationRoster")
    assert connector.sent_count() == 0


def test_member_lookup_by_either_id(http, connector, bot_token, user):
    teams_user, conversation_id = user
    for member_id in (teams_user.id, teams_user.aad_object_id):
        response = http.get(f"/amer/v3/conversations/{quote(conversation_id, safe='')}/members/"
                            f"{quote(member_id, safe='')}", headers=auth(bot_token))
        assert response.status_code == 200, response.text
        assert response.json() == {
            "id": teams_user.id, "name": "Ada Lovelace", "aadObjectId": teams_user.aad_object_id,
            "email": "ada.lovelace@acme.example", "userPrincipalName": "ada.lovelace@acme.example",
            "tenantId": teams_user.tenant_id, "userRole": "user", "givenName": "Ada", "surname": "Lovelace"}
    other = connector.add_user(teams_user.tenant_id, "grace@acme.example")
    body = assert_connector_error(http.get(f"/v3/conversations/{quote(conversation_id, safe='')}/members/{other.id}",
                                           headers=auth(bot_token)), 404, "MemberNotFoundInConversation")
    assert body["error"]["message"] == "The specified member was not found"


# --- connector REST: authentication --------------------------------------------------------------------------


def test_the_connector_wants_the_bots_entra_token(http, connector, entra, bot_app, user):
    _, conversation_id = user
    path = activities_path(conversation_id)
    message = {"type": "message", "text": "x"}

    def status(headers: dict[str, str]) -> int:
        response = http.post(path, json=message, headers=headers)
        if response.status_code == 401:
            assert response.json() == {"message": "Authorization has been denied for this request."}
        return response.status_code

    mint = entra.mint_access_token
    tid, app_id = bot_app["tid"], bot_app["app_id"]
    assert status({}) == 401
    assert status({"Authorization": "Bearer not-a-jwt"}) == 401
    assert status({"Authorization": f"Basic {mint(tid, app_id, CONNECTOR_AUDIENCE)}"}) == 401
    assert status(auth(mint(tid, app_id, CONNECTOR_AUDIENCE, untrusted_key=True))) == 401
    assert status(auth(mint(tid, app_id, CONNECTOR_AUDIENCE, lifetime=-3600))) == 401
    assert status(auth(mint(tid, app_id, "https://graph.microsoft.com"))) == 401
    assert status(auth(mint(tid, str(uuid.uuid4()), CONNECTOR_AUDIENCE))) == 401
    assert status(auth(connector.channel_token(audience=CONNECTOR_AUDIENCE))) == 401  # signed, but not by Entra
    assert connector.sent_count() == 0
    assert status(auth(mint(tid, app_id, CONNECTOR_AUDIENCE, claims={"appid": None}))) == 201  # azp is enough
    assert status(auth(mint(tid, app_id, CONNECTOR_AUDIENCE))) == 201
    assert [entry[2] for entry in connector.requests_log].count(401) == 8


def test_without_token_jwks_the_claims_are_still_read(entra, bot_app):
    with BotConnectorStandIn(app_id=bot_app["app_id"]) as unverified:
        teams_user = unverified.add_user(str(uuid.uuid4()), "ada@acme.example")
        conversation_id = unverified.install(teams_user.tenant_id, teams_user.aad_object_id)
        path = f"{unverified.base_url}{activities_path(conversation_id)}"
        forged = entra.mint_access_token(bot_app["tid"], bot_app["app_id"], CONNECTOR_AUDIENCE, untrusted_key=True)
        assert httpx.post(path, json={"type": "message"}, headers=auth(forged)).status_code == 201
        wrong_app = entra.mint_access_token(bot_app["tid"], str(uuid.uuid4()), CONNECTOR_AUDIENCE)
        assert httpx.post(path, json={"type": "message"}, headers=auth(wrong_app)).status_code == 401
        assert httpx.post(path, json={"type": "message"}, headers=auth("garbage")).status_code == 401


# --- faults and rate limits ----------------------------------------------------------------------------------


def test_fail_next_answers_the_status_with_retry_after(http, connector, bot_token, user):
    teams_user, conversation_id = user
    connector.fail_next(429, count=2, retry_after=3)
    for _ in range(2):
        response = http.post(activities_path(conversation_id), headers=auth(bot_token), json={"type": "message"})
        assert_connector_error(response, 429, "TooManyRequests")
        assert response.headers["Retry-After"] == "3"
    assert http.post(activities_path(conversation_id), headers=auth(bot_token), json={"type": "message"}) \
        .status_code == 201
    assert connector.sent_count() == 1  # refused sends are not delivered

    connector.fail_next(503, path_contains="/members/")
    member = f"/v3/conversations/{quote(conversation_id, safe='')}/members/{teams_user.id}"
    assert http.post(activities_path(conversation_id), headers=auth(bot_token), json={"type": "message"}) \
        .status_code == 201  # not a match: the fault waits
    response = http.get(member, headers=auth(bot_token))
    assert_connector_error(response, 503, "ServiceUnavailable")
    assert "Retry-After" not in response.headers
    assert http.get(member, headers=auth(bot_token)).status_code == 200

    connector.fail_next(412, retry_after=0.25)
    response = http.post(activities_path(conversation_id), headers=auth(bot_token), json={"type": "message"})
    assert_connector_error(response, 412, "PreconditionFailed")
    assert response.headers["Retry-After"] == "0.25"
    connector.fail_next(429)
    assert http.post(activities_path(conversation_id), json={"type": "message"}).status_code == 401  # auth first
    connector.clear_faults()
    assert http.post(activities_path(conversation_id), headers=auth(bot_token), json={"type": "message"}) \
        .status_code == 201


def test_limit_rate_refuses_beyond_the_rate(http, connector, bot_token, user):
    _, conversation_id = user
    connector.limit_rate(2)
    statuses = []
    for _ in range(6):
        response = http.post(activities_path(conversation_id), headers=auth(bot_token), json={"type": "message"})
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "1"
            assert response.json()["error"]["code"] == "TooManyRequests"
    assert statuses[:2] == [201, 201]
    assert 429 in statuses
    assert connector.sent_count() == statuses.count(201)
    connector.limit_rate(None)
    assert http.post(activities_path(conversation_id), headers=auth(bot_token), json={"type": "message"}) \
        .status_code == 201


# --- the real SDK: botframework's ConnectorClient ------------------------------------------------------------


def connector_client(ca, entra, bot_app, service_url: str):
    """botframework's async ConnectorClient, its token from the Entra stand-in through MSAL (as the bot gets it)."""
    import msal
    from botframework.connector.aio import ConnectorClient
    from botframework.connector.auth import AppCredentials

    application = msal.ConfidentialClientApplication(
        bot_app["app_id"], client_credential=SECRET, authority=f"{entra.base_url}/{bot_app['tid']}",
        instance_discovery=False, verify=str(ca.bundle_path))

    class EntraCredentials(AppCredentials):
        def get_access_token(self, force_refresh: bool = False) -> str:
            result = application.acquire_token_for_client([BOT_SCOPE])
            assert "access_token" in result, result
            return result["access_token"]

    # AppCredentials attaches the token whenever the app id is set (the "trusted service URL" checks are gone).
    return ConnectorClient(EntraCredentials(app_id=bot_app["app_id"]), base_url=service_url)


def test_botframework_connector_client_parses_the_answers(ca, entra, bot_app, connector, user, no_ca_bundle_override):
    from botbuilder.schema import Activity, ChannelAccount, ConversationParameters
    from botbuilder.schema.teams import TeamsChannelAccount

    teams_user, conversation_id = user

    async def scenario():
        client = connector_client(ca, entra, bot_app, connector.service_url)
        sent = await client.conversations.send_to_conversation(conversation_id, Activity(type="message", text="hi"))
        replied = await client.conversations.reply_to_activity(conversation_id, "1712345678901",
                                                               Activity(type="message", text="re"))
        created = await client.conversations.create_conversation(ConversationParameters(
            is_group=False, bot=ChannelAccount(id=f"28:{bot_app['app_id']}"),
            members=[ChannelAccount(id=teams_user.aad_object_id)], tenant_id=teams_user.tenant_id,
            channel_data={"tenant": {"id": teams_user.tenant_id}}))
        member = await client.conversations.get_conversation_member(conversation_id, teams_user.id)
        await client.conversations.update_activity(conversation_id, sent.id, Activity(type="message", text="hi!"))
        await client.conversations.delete_activity(conversation_id, replied.id)
        return sent, replied, created, member

    sent, replied, created, member = asyncio.run(scenario())
    log = connector.activities(conversation_id)
    assert [entry["id"] for entry in log[:2]] == [sent.id, replied.id]
    assert log[1]["replyToId"] == "1712345678901"
    assert (log[2]["text"], log[2]["updated"], log[3]["deleted"]) == ("hi!", True, True)
    assert (created.id, created.activity_id, created.service_url) == (conversation_id, None, connector.service_url)
    teams_member = TeamsChannelAccount().deserialize(dict(member.serialize(), **member.additional_properties))
    assert (teams_member.id, teams_member.aad_object_id) == (teams_user.id, teams_user.aad_object_id)
    assert (teams_member.email, teams_member.user_principal_name) == (teams_user.email, teams_user.upn)
    assert (teams_member.tenant_id, teams_member.user_role) == (teams_user.tenant_id, "user")
    assert (teams_member.given_name, teams_member.surname) == ("Ada", "Lovelace")
    assert entra.token_grants(bot_app["app_id"]) == 1  # one token (MSAL's cache) for six calls
    encoded = quote(conversation_id, safe="")
    assert [entry[1] for entry in connector.requests_log][:2] == [
        f"/amer/v3/conversations/{encoded}/activities", f"/amer/v3/conversations/{encoded}/activities/1712345678901"]


def test_botframework_surfaces_errors_as_error_response_exception(ca, entra, bot_app, connector, user,
                                                                   no_ca_bundle_override):
    from botbuilder.schema import Activity
    from botframework.connector.models import ErrorResponseException
    from msrest.exceptions import ClientRequestError

    teams_user, conversation_id = user

    async def scenario():
        client = connector_client(ca, entra, bot_app, connector.service_url)
        client.config.retry_policy.backoff_factor = 0  # msrest's urllib3 retries, without their sleeps
        errors = {}
        connector.fail_next(429, retry_after=7)
        try:
            await client.conversations.send_to_conversation(conversation_id, Activity(type="message", text="x"))
        except ErrorResponseException as error:
            errors["throttled"] = error
        connector.fail_next(503)
        try:
            await client.conversations.send_to_conversation(conversation_id, Activity(type="message", text="x"))
        except ErrorResponseException as error:
            errors["unavailable"] = error
        try:
            await client.conversations.send_to_conversation("a:unknown", Activity(type="message", text="x"))
        except ErrorResponseException as error:
            errors["not_found"] = error
        connector.fail_next(502)  # a GET that fails once: retried by msrest, unseen by the caller
        errors["member"] = await client.conversations.get_conversation_member(conversation_id, teams_user.id)
        connector.fail_next(502, count=10)
        try:
            await client.conversations.get_conversation_member(conversation_id, teams_user.id)
        except ClientRequestError as error:  # retries exhausted: not an ErrorResponseException
            errors["exhausted"] = error
        connector.clear_faults()
        return errors

    errors = asyncio.run(scenario())
    throttled = errors["throttled"]
    assert throttled.response.status_code == 429
    assert throttled.response.headers["Retry-After"] == "7"
    assert throttled.error.error.code == "TooManyRequests"
    assert str(throttled).startswith("(TooManyRequests) ")
    assert errors["unavailable"].response.status_code == 503
    assert errors["not_found"].response.status_code == 404
    assert errors["not_found"].error.error.code == "ConversationNotFound"
    assert errors["member"].id == teams_user.id
    assert "too many 502 error responses" in str(errors["exhausted"])
    statuses = [(method, status) for method, _, status in connector.requests_log]
    assert statuses[:3] == [("POST", 429), ("POST", 503), ("POST", 404)]  # a POST is never retried
    assert statuses[3:5] == [("GET", 502), ("GET", 200)]
    assert statuses[5:] == [("GET", 502)] * 4  # the first try and msrest's three retries


# --- sending to the bot -------------------------------------------------------------------------------------


class RecordingBot:
    """A tiny /api/messages that records what the channel posts and answers ``status``."""

    def __init__(self, status: int = 200, body: bytes = b"") -> None:
        self.received: list[tuple[dict[str, str], dict]] = []
        self.status, self.body = status, body
        bot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                bot.received.append((dict(self.headers), json.loads(self.rfile.read(length))))
                self.send_response(bot.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(bot.body)))
                self.end_headers()
                self.wfile.write(bot.body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/messages"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> RecordingBot:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_send_to_bot_posts_a_teams_message_with_a_verifiable_token(connector, bot_app):
    tenant = str(uuid.uuid4())
    ada = connector.add_user(tenant, "ada@acme.example", name="Ada Lovelace")
    with RecordingBot() as bot:
        connector.bot_endpoint = bot.url
        activity = connector.message_activity(tenant, ada.aad_object_id, "hello coach")
        response = connector.send_to_bot(activity)
        assert response.status_code == 200
        headers, posted = bot.received[0]
    assert posted == activity
    conversation_id = connector.conversation_of(tenant, ada.aad_object_id)  # installed on the way
    assert conversation_id is not None
    assert posted["type"] == "message"
    assert posted["text"] == "hello coach"
    assert posted["textFormat"] == "plain"
    assert posted["channelId"] == "msteams"
    assert posted["serviceUrl"] == connector.service_url
    assert posted["timestamp"].endswith("Z")
    assert posted["localTimestamp"]
    assert posted["locale"] == "en-US"
    assert posted["from"] == {"id": ada.id, "name": "Ada Lovelace", "aadObjectId": ada.aad_object_id}
    assert posted["conversation"] == {"conversationType": "personal", "tenantId": tenant, "id": conversation_id}
    assert posted["recipient"] == {"id": f"28:{bot_app['app_id']}", "name": "Coach"}
    assert posted["channelData"] == {"tenant": {"id": tenant}}
    assert posted["entities"][0]["type"] == "clientInfo"
    assert posted["id"]

    scheme, _, token = headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    claims = decode_channel_token(token, httpx.get(f"{connector.base_url}/v1/.well-known/keys").json(),
                                  audience=bot_app["app_id"])
    assert claims["serviceurl"] == posted["serviceUrl"]


def test_installation_and_conversation_updates(connector):
    tenant = str(uuid.uuid4())
    ada = connector.add_user(tenant, "ada@acme.example")
    added = connector.installation_update_activity(tenant, ada.aad_object_id)
    assert (added["type"], added["action"]) == ("installationUpdate", "add")
    assert added["conversation"]["id"] == connector.conversation_of(tenant, ada.aad_object_id)
    update = connector.conversation_update_activity(tenant, ada.aad_object_id)
    assert update["type"] == "conversationUpdate"
    assert update["membersAdded"] == [{"id": f"28:{connector.app_id}"}]
    removed = connector.installation_update_activity(tenant, ada.aad_object_id, action="remove")
    assert removed["action"] == "remove"
    assert removed["conversation"]["id"] == added["conversation"]["id"]
    assert connector.conversation_of(tenant, ada.aad_object_id) is None
    with RecordingBot() as bot:
        connector.bot_endpoint = bot.url
        assert connector.send_to_bot(added, token="custom-token").status_code == 200
        assert bot.received[0][0]["Authorization"] == "Bearer custom-token"


# --- control endpoints, for another process ------------------------------------------------------------------


def test_the_control_endpoints(http, connector, bot_token):
    tenant = str(uuid.uuid4())
    created = http.post("/_standin/users", json={"tenant_id": tenant, "email": "ada@acme.example",
                                                 "name": "Ada Lovelace"})
    assert created.status_code == 201, created.text
    document = created.json()
    assert document["conversation_id"] == connector.conversation_of(tenant, document["aad_object_id"])
    assert document["id"].startswith("29:")
    assert (document["name"], document["email"]) == ("Ada Lovelace", "ada@acme.example")

    assert http.post("/_standin/send", json={"tenant_id": tenant, "email": "ada@acme.example", "text": "hi"}) \
        .status_code == 409  # no bot endpoint yet
    with RecordingBot(status=200, body=b'{"ok": true}') as bot:
        assert http.post("/_standin/bot", json={"bot_endpoint": bot.url}).status_code == 200
        sent = http.post("/_standin/send", json={"tenant_id": tenant, "email": "ada@acme.example", "text": "hi"})
        assert sent.status_code == 200, sent.text
        assert sent.json()["status"] == 200
        assert sent.json()["body"] == {"ok": True}
        assert sent.json()["activity_id"] == bot.received[0][1]["id"]
        assert bot.received[0][1]["text"] == "hi"
        install = http.post("/_standin/send", json={"tenant_id": tenant, "email": "grace@acme.example",
                                                    "type": "installationUpdate"})
        assert install.status_code == 200
        assert bot.received[1][1]["type"] == "installationUpdate"
        assert connector.find_user(tenant, "grace@acme.example") is not None

    conversation_id = document["conversation_id"]
    for text in ("one", "two"):
        http.post(activities_path(conversation_id), headers=auth(bot_token), json={"type": "message", "text": text})
    http.post(activities_path(conversation_id), headers=auth(bot_token), json={"type": "typing"})
    listed = http.get(f"/_standin/conversations/{quote(conversation_id, safe='')}/activities", params={"after": 1})
    assert [entry.get("text") for entry in listed.json()["activities"]] == ["two", None]
    listed = http.get(f"/_standin/conversations/{quote(conversation_id, safe='')}/activities",
                      params={"include_typing": "false"})
    assert [entry["text"] for entry in listed.json()["activities"]] == ["one", "two"]
    assert http.get("/_standin/conversations/a%3Anope/activities").status_code == 404

    assert http.post("/_standin/fail", json={"status": 429, "count": 1, "retry_after": 2}).status_code == 200
    refused = http.post(activities_path(conversation_id), headers=auth(bot_token), json={"type": "message"})
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "2")
    assert http.post("/_standin/rate", json={"per_second": 1}).json() == {"per_second": 1}
    statuses = {http.post(activities_path(conversation_id), headers=auth(bot_token), json={"type": "message"})
                .status_code for _ in range(3)}
    assert statuses == {201, 429}
    assert http.post("/_standin/rate", json={"per_second": None}).status_code == 200
    logged = http.get("/_standin/requests").json()["requests"]
    assert ["POST", activities_path(conversation_id), 429] in logged
    assert http.post("/_standin/fail", json={"count": 1}).status_code == 400


def test_the_command_line_serves_the_stand_in():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app_id = str(uuid.uuid4())
    process = subprocess.Popen(
        [PYTHON, "-m", "local.botconnector", "serve", "--port", str(port), "--app-id", app_id,
         "--bot-endpoint", "http://127.0.0.1:9/api/messages"],
        cwd=PROJECT_ROOT, env=base_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"

        def metadata():
            if process.poll() is not None:
                raise AssertionError(f"the stand-in exited: {process.stdout.read()}")
            try:
                return httpx.get(f"{base}/v1/.well-known/openidconfiguration", timeout=2)
            except httpx.TransportError:
                return None

        assert wait_until(metadata, message="the stand-in's metadata").json()["jwks_uri"] == \
            f"{base}/v1/.well-known/keys"
        created = httpx.post(f"{base}/_standin/users", json={"tenant_id": "t-1", "email": "ops@acme.example"},
                             timeout=5)
        assert created.status_code == 201
        assert created.json()["conversation_id"].startswith("a:")
        unreachable = httpx.post(f"{base}/_standin/send", timeout=35,
                                 json={"tenant_id": "t-1", "email": "ops@acme.example", "text": "hi"})
        assert unreachable.status_code == 502
    finally:
        process.terminate()
        process.wait(10)
