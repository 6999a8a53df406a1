"""Chat through the bot: who is talking, the relay to the tenant's chatbot and back, slow answers handed to
the teams-turns queue and delivered proactively, friendly failures."""

from __future__ import annotations

import pytest

from shared import db
from shared.teams import turns
from tests.teams.conftest import TEAMS_TENANT_ID, add_user, drain_queue, post_activity, run_async

CONNECT_SECRET = "connect-secret-for-tests"


@pytest.fixture
def chatbot(acme, bot, monkeypatch, free_tcp_port):
    """The tenant's instance app, served by the chatbot stand-in, with its `connect` secret."""
    from local.chatbot import ChatBackendStandIn
    from shared.tenants.apps import AppSpec, add_app

    with db.transaction() as conn:
        app = add_app(conn, acme, "coach", AppSpec(kind="instance", base_url=f"http://127.0.0.1:{free_tcp_port}",
                                                   outbound_secret_refs={"connect": "acme-coach-connect"}))
    monkeypatch.setenv("SECRET_ACME_COACH_CONNECT", CONNECT_SECRET)
    with ChatBackendStandIn(client_id=app.client_id, secret=CONNECT_SECRET, port=free_tcp_port) as running:
        yield running


def say(connector, object_id, text, **extra):
    activity = connector.message_activity(TEAMS_TENANT_ID, object_id, text, **extra)
    response = post_activity(activity, connector.channel_token())
    return response, activity["conversation"]["id"]


def bodies(chatbot):
    return [request["body"] for request in chatbot.requests]


def messages(connector, conversation):
    return [activity for activity in connector.activities(conversation) if activity["type"] == "message"]


def test_a_message_is_relayed_and_answered_in_the_conversation(chatbot, bot, ann):
    response, conversation = say(bot, ann[1], "How do I give feedback?")
    assert response.status == 200
    posted = bot.activities(conversation)
    assert [activity["type"] for activity in posted] == ["typing", "message"]
    assert "How do I give feedback" in posted[1]["text"]
    [request] = bodies(chatbot)
    assert request["user"] == {"id": ann[0], "email": "ann@acme.com", "display_name": "Ann Example"}
    assert request["tenant"] == "acme"
    assert request["conversation_id"] == conversation
    assert request["text"] == "How do I give feedback?"
    assert len(request["turn_id"]) == 64


def test_an_answer_with_a_card_is_posted_as_an_adaptive_card(chatbot, bot, ann):
    _, conversation = say(bot, ann[1], "show me a card")
    [answer] = messages(bot, conversation)
    [attachment] = answer["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["type"] == "AdaptiveCard"


def test_a_user_found_by_the_member_lookup_email_is_admitted_and_remembered(chatbot, bot, acme):
    user_id = add_user(acme, "bob@acme.com")  # provisioned without an Entra object id
    teams_user = bot.add_user(TEAMS_TENANT_ID, "bob@acme.com", name="Bob")
    response, conversation = say(bot, teams_user.aad_object_id, "hello")
    assert response.status == 200
    assert len(messages(bot, conversation)) == 1
    assert bodies(chatbot)[0]["user"]["id"] == user_id
    with db.transaction(tenant_id=acme.id) as conn:
        assert conn.execute("SELECT user_id::text FROM teams_conversations WHERE aad_object_id = %s",
                            [teams_user.aad_object_id]).fetchone()[0] == user_id


@pytest.mark.parametrize("who", ["not provisioned", "deactivated", "other Teams tenant", "suspended tenant"])
def test_anyone_else_is_told_politely_and_nothing_is_relayed(chatbot, bot, acme, who, caplog):
    tenant_id = TEAMS_TENANT_ID
    if who == "other Teams tenant":
        tenant_id = "11111111-2222-4333-8444-555555555555"
    teams_user = bot.add_user(tenant_id, "eve@acme.com", name="Eve")
    if who == "deactivated":
        add_user(acme, "eve@acme.com", entra_object_id=teams_user.aad_object_id, active=False)
    if who == "suspended tenant":
        add_user(acme, "eve@acme.com", entra_object_id=teams_user.aad_object_id)
        from shared.tenants.models import TenantStatus
        from shared.tenants.registry import set_status

        with db.transaction() as conn:
            set_status(conn, "acme", TenantStatus.SUSPENDED)
    activity = bot.message_activity(tenant_id, teams_user.aad_object_id, "hi")
    assert post_activity(activity, bot.channel_token()).status == 200
    [answer] = messages(bot, activity["conversation"]["id"])
    assert "can't find you among the people who have access" in answer["text"]
    assert chatbot.requests == []
    assert any("no access" in record.getMessage() and teams_user.aad_object_id in record.getMessage()
               for record in caplog.records)
    with db.transaction(tenant_id=acme.id) as conn:
        assert conn.execute("SELECT count(*) FROM teams_conversations").fetchone()[0] == 0


def test_backend_errors_give_a_friendly_message(chatbot, bot, ann, caplog):
    chatbot.fail_next(500)
    _, conversation = say(bot, ann[1], "hello")
    [answer] = messages(bot, conversation)
    assert answer["text"].startswith("Sorry, I can't answer right now")
    assert any("answered 500" in record.getMessage() for record in caplog.records)


def test_a_tenant_without_chat_set_up_is_told_so(bot, ann):
    _, conversation = say(bot, ann[1], "hello")
    [answer] = messages(bot, conversation)
    assert "isn't set up for your organization" in answer["text"]


def test_a_slow_answer_goes_through_the_queue_and_arrives_proactively(chatbot, bot, ann, acme, teams_queues,
                                                                       monkeypatch):
    from shared import config

    monkeypatch.setenv("TEAMS_CHAT_INLINE_SECONDS", "0.3")
    chatbot.hang_next(1.0)
    response, conversation = say(bot, ann[1], "a hard question")
    assert response.status == 200
    assert messages(bot, conversation) == []  # only the typing indicator so far
    [queued] = drain_queue(config.queues().teams_turns)
    assert queued["user_id"] == ann[0]
    assert queued["text"] == "a hard question"

    import json

    assert run_async(turns.answer_message(json.dumps(queued))) == "answered"
    [answer] = messages(bot, conversation)
    assert "a hard question" in answer["text"]
    # The instance saw the turn twice (inline, then from the queue) with the same turn id, and worked once.
    first, second = bodies(chatbot)
    assert first["turn_id"] == second["turn_id"]
    assert chatbot.turns_answered == 1
    # A redelivered message sends nothing again.
    assert run_async(turns.answer_message(json.dumps(queued))) == "skipped"
    assert len(messages(bot, conversation)) == 1
    with db.transaction(tenant_id=acme.id) as conn:
        assert conn.execute("SELECT status FROM teams_turns").fetchone()[0] == "answered"


def test_a_queued_turn_whose_chatbot_fails_tells_the_user(chatbot, bot, ann, acme, teams_queues, monkeypatch):
    import json

    from shared import config

    monkeypatch.setenv("TEAMS_CHAT_INLINE_SECONDS", "0.3")
    chatbot.hang_next(1.0)
    _, conversation = say(bot, ann[1], "a hard question")
    [queued] = drain_queue(config.queues().teams_turns)
    chatbot.fail_next(503)
    assert run_async(turns.answer_message(json.dumps(queued))) == "failed"
    [answer] = messages(bot, conversation)
    assert answer["text"].startswith("Sorry, I can't answer right now")


def test_a_teams_message_delivered_twice_is_handed_over_once(chatbot, bot, ann, teams_queues, monkeypatch):
    from shared import config

    monkeypatch.setenv("TEAMS_CHAT_INLINE_SECONDS", "0.2")
    chatbot.delay = 1.0
    activity = bot.message_activity(TEAMS_TENANT_ID, ann[1], "same message")
    for _ in range(2):
        assert post_activity(activity, bot.channel_token()).status == 200
    assert len(drain_queue(config.queues().teams_turns)) == 1


def test_malformed_turn_messages_raise_so_the_host_poisons_them():
    for body in ("nope", "{}", '{"turn_id": 1}'):
        with pytest.raises(ValueError):
            turns.parse_message(body)


def test_a_queued_turn_the_chatbot_never_answers_ends_with_a_friendly_message(chatbot, bot, ann, acme, teams_queues,
                                                                             monkeypatch):
    import json

    from shared import config

    monkeypatch.setenv("TEAMS_CHAT_INLINE_SECONDS", "0.2")
    monkeypatch.setenv("TEAMS_CHAT_TIMEOUT_SECONDS", "1")
    chatbot.delay = 3.0
    _, conversation = say(bot, ann[1], "a hard question")
    [queued] = drain_queue(config.queues().teams_turns)
    assert run_async(turns.answer_message(json.dumps(queued))) == "failed"
    [answer] = messages(bot, conversation)
    assert answer["text"].startswith("Sorry, I can't answer right now")
    with db.transaction(tenant_id=acme.id) as conn:
        assert conn.execute("SELECT status, detail FROM teams_turns").fetchone() == ("failed", "no answer within 1 s")


def test_a_turn_that_cannot_be_queued_is_forgotten_so_a_retry_queues_it(chatbot, bot, ann, acme, teams_queues,
                                                                      monkeypatch):
    from shared import config, queues

    monkeypatch.setenv("TEAMS_CHAT_INLINE_SECONDS", "0.2")
    chatbot.delay = 1.0
    activity = bot.message_activity(TEAMS_TENANT_ID, ann[1], "hello")
    real_send = queues.send_json

    def unreachable(*args, **kwargs):
        raise ConnectionError("storage is down")

    monkeypatch.setattr(queues, "send_json", unreachable)
    assert post_activity(activity, bot.channel_token()).status == 200  # the adapter tells the user it failed
    with db.transaction(tenant_id=acme.id) as conn:
        assert conn.execute("SELECT count(*) FROM teams_turns").fetchone()[0] == 0
    monkeypatch.setattr(queues, "send_json", real_send)
    assert post_activity(activity, bot.channel_token()).status == 200  # Teams delivers the message again
    assert len(drain_queue(config.queues().teams_turns)) == 1
