"""POST /api/messages: real token validation against the Bot connector stand-in's keys; every failure is a
401 that writes nothing and sends nothing."""

from __future__ import annotations

import pytest

from shared import db
from shared.teams import auth
from tests.teams.conftest import BOT_APP_ID, TEAMS_TENANT_ID, post_activity, run_async


def stored_conversations(tenant) -> int:
    with db.transaction(tenant_id=tenant.id) as conn:
        return conn.execute("SELECT count(*) FROM teams_conversations").fetchone()[0]


def install(connector, object_id):
    return connector.installation_update_activity(TEAMS_TENANT_ID, object_id)


def test_no_authorization_is_a_401_before_anything_else(monkeypatch):
    # Not even the settings are read: an unconfigured bot answers the same.
    monkeypatch.delenv("MicrosoftAppId", raising=False)
    response = post_activity({"type": "message"}, None)
    assert response.status == 401


def test_an_empty_app_id_is_a_configuration_error_never_anonymous_access(monkeypatch, bot, ann):
    from shared import config
    from shared.teams import runtime

    monkeypatch.setenv("MicrosoftAppId", "")
    config.reset()
    runtime.reset()
    response = post_activity(install(bot, ann[1]), bot.channel_token())
    assert response.status == 500
    assert response.body["error"] == "not_configured"
    assert bot.sent_count() == 0


FORGERIES = {
    "expired": {"expires_in": -600},
    "not yet valid": {"not_before_offset": 3600},
    "bad signature": {"sign_with": "untrusted"},
    "unknown key": {"sign_with": "unknown-kid"},
    "wrong audience": {"audience": "00000000-0000-4000-8000-000000000bad"},
    "wrong issuer": {"issuer": "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/"},
    "service URL mismatch": {"service_url": "https://smba.trafficmanager.net/emea/"},
    "no service URL claim": {"extra_claims": {"serviceurl": None}},
    "channel not endorsed": {"sign_with": "webchat-only"},
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_every_authentication_failure_is_a_401_that_writes_nothing(bot, ann, acme, forgery):
    response = post_activity(install(bot, ann[1]), bot.channel_token(**FORGERIES[forgery]))
    assert response.status == 401
    assert stored_conversations(acme) == 0
    assert bot.sent_count() == 0


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-jwt", "Bearer a.b.c"])
def test_malformed_credentials_are_401(bot, ann, acme, authorization):
    import json

    from shared.teams.endpoint import receive

    response = run_async(receive(json.dumps(install(bot, ann[1])).encode(), authorization))
    assert response.status == 401
    assert bot.sent_count() == 0


def test_a_body_that_is_not_an_activity_is_refused(bot, ann, acme):
    assert post_activity({}, bot.channel_token(), raw=b"not json").status == 401
    assert post_activity({}, bot.channel_token(), raw=b"[1, 2]").status == 401
    activity = install(bot, ann[1])
    del activity["serviceUrl"]  # nothing to bind the token's serviceurl claim to
    assert post_activity(activity, bot.channel_token()).status == 401
    assert stored_conversations(acme) == 0
    assert bot.sent_count() == 0


def test_a_valid_install_is_welcomed_and_its_conversation_stored(bot, ann, acme):
    activity = install(bot, ann[1])
    response = post_activity(activity, bot.channel_token())
    assert response.status == 200
    conversation = activity["conversation"]["id"]
    [welcome] = bot.activities(conversation)
    assert welcome["type"] == "message"
    assert welcome["text"].startswith("Hi Ann!")
    with db.transaction(tenant_id=acme.id) as conn:
        row = conn.execute("SELECT user_id::text, teams_tenant_id::text, aad_object_id::text, conversation_id,"
                           " service_url, reference FROM teams_conversations").fetchone()
    assert row[:5] == (ann[0], TEAMS_TENANT_ID, ann[1], conversation, bot.service_url)
    assert row[5]["conversation"]["id"] == conversation
    assert row[5]["bot"]["id"] == f"28:{BOT_APP_ID}"


def test_keys_are_fetched_once_and_a_rotated_key_is_picked_up(bot, ann, monkeypatch):
    for _ in range(3):
        assert post_activity(install(bot, ann[1]), bot.channel_token()).status == 200
    assert bot.keys_requests == 1
    bot.rotate_keys()
    monkeypatch.setattr(auth, "UNKNOWN_KEY_REFRESH_SECONDS", 0)
    assert post_activity(install(bot, ann[1]), bot.channel_token()).status == 200
    assert bot.keys_requests == 2


def test_the_bot_acquires_one_token_for_many_turns(bot, ann, bot_entra):
    before = bot_entra.token_grants(BOT_APP_ID)
    for _ in range(5):
        assert post_activity(install(bot, ann[1]), bot.channel_token()).status == 200
    assert bot_entra.token_grants(BOT_APP_ID) - before == 1
    assert len(bot.activities(install(bot, ann[1])["conversation"]["id"])) == 5
