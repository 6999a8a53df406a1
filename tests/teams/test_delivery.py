"""Alert delivery through the Bot connector stand-in: each recipient once, 429s retried, redeliveries
that send nothing twice, unreachable recipients reported, and the admin API in front of it."""

from __future__ import annotations

import json

import pytest

from shared import config, db
from shared.admin import api as admin_api
from shared.admin import keys
from shared.teams import alerts, delivery
from tests.teams.conftest import TEAMS_TENANT_ID, add_user, drain_queue, new_object_id, post_activity, run_async


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch):
    monkeypatch.setattr(delivery, "BACKOFF_BASE_SECONDS", 0.01)


def teams_user(acme, connector, email, *, install=True, talked=False):
    """A provisioned user known to Teams; ``talked``: the bot has their conversation already."""
    object_id = new_object_id()
    user_id = add_user(acme, email, entra_object_id=object_id)
    connector.add_user(TEAMS_TENANT_ID, email, aad_object_id=object_id)
    if install:
        connector.install(TEAMS_TENANT_ID, object_id)
    if talked:
        activity = connector.installation_update_activity(TEAMS_TENANT_ID, object_id)
        assert post_activity(activity, connector.channel_token()).status == 200
    return user_id, object_id


def accept(acme, recipients, alert_id="a-1", **fields):
    document = {"alert_id": alert_id, "tenant": "acme", "recipients": recipients, "title": "Check-in",
                "text": "Your weekly check-in is ready.", "url": "https://coach.example/checkin", **fields}
    with db.transaction() as conn:
        return alerts.accept_alert(conn, acme, alerts.parse_alert(document), created_by="test")


def run_batch(acme, batch=0, alert_id="a-1"):
    return run_async(delivery.deliver_batch(acme.id, alert_id, batch))


def cards(connector, object_id):
    conversation = connector.conversation_of(TEAMS_TENANT_ID, object_id)
    return [activity for activity in connector.activities(conversation)
            if activity.get("attachments") and activity["attachments"][0]["contentType"].endswith("adaptive")]


def statuses(acme, alert_id="a-1"):
    with db.transaction(tenant_id=acme.id) as conn:
        return dict(conn.execute("SELECT user_id::text, status FROM teams_alert_deliveries WHERE alert_id = %s",
                                 [alert_id]).fetchall())


def test_each_recipient_gets_one_card_and_a_redelivered_batch_sends_nothing(bot, acme):
    known = teams_user(acme, bot, "ann@acme.com", talked=True)
    new = teams_user(acme, bot, "bob@acme.com")  # never wrote: a conversation is opened for them
    accept(acme, "all")
    result = run_batch(acme)
    assert result.sent == 2
    assert statuses(acme) == {known[0]: "sent", new[0]: "sent"}
    [card] = cards(bot, new[1])
    content = card["attachments"][0]["content"]
    assert content["body"][0]["text"] == "Check-in"
    assert content["actions"][0]["url"] == "https://coach.example/checkin"
    assert len(cards(bot, known[1])) == 1
    again = run_batch(acme)
    assert (again.claimed, again.sent) == (0, 0)
    assert len(cards(bot, known[1])) == 1
    assert len(cards(bot, new[1])) == 1
    # The opened conversation is remembered for the next alert.
    with db.transaction(tenant_id=acme.id) as conn:
        assert conn.execute("SELECT conversation_id FROM teams_conversations WHERE user_id = %s",
                            [new[0]]).fetchone()[0] == bot.conversation_of(TEAMS_TENANT_ID, new[1])


def test_a_429_in_the_middle_is_retried_honouring_retry_after(bot, acme):
    people = [teams_user(acme, bot, f"user{index}@acme.com", talked=True) for index in range(4)]
    accept(acme, "all")
    bot.fail_next(429, count=2, retry_after=0.05, path_contains="/activities")
    result = run_batch(acme)
    assert result.sent == 4
    assert all(len(cards(bot, object_id)) == 1 for _, object_id in people)
    assert [entry for entry in bot.requests_log if entry[2] == 429][:2]
    assert sum(1 for entry in bot.requests_log if entry[2] == 429) == 2


def test_persistent_refusals_release_the_batch_for_later_and_send_nothing_twice(bot, acme, teams_queues):
    people = [teams_user(acme, bot, f"user{index}@acme.com", talked=True) for index in range(3)]
    accept(acme, "all")
    bot.fail_next(502, count=100, path_contains="/activities")
    result = run_batch(acme)
    assert result.sent == 0
    assert result.deferred == 3
    assert result.requeued
    assert set(statuses(acme).values()) == {"pending"}
    # Queued again with a delay (invisible for now), so the batch comes back when Teams may answer.
    from shared import queues

    assert queues.queue_client(config.queues().teams_alerts).get_queue_properties().approximate_message_count == 1
    assert drain_queue(config.queues().teams_alerts) == []
    requeued = {"tenant_id": acme.id, "alert_id": "a-1", "batch": 0}
    bot.clear_faults()
    assert run_async(delivery.deliver_message(json.dumps(requeued))).sent == 3
    assert all(len(cards(bot, object_id)) == 1 for _, object_id in people)


def test_a_batch_another_worker_holds_comes_back_after_its_claim(bot, acme, teams_queues):
    teams_user(acme, bot, "ann@acme.com", talked=True)
    accept(acme, "all")
    with db.transaction(tenant_id=acme.id) as conn:  # a worker that claimed the row and is still sending
        conn.execute("UPDATE teams_alert_deliveries SET status = 'sending',"
                     " claimed_until = now() + interval '2 minutes'")
    result = run_batch(acme)
    assert (result.claimed, result.sent, result.requeued) == (0, 0, True)
    from shared import queues

    assert queues.queue_client(config.queues().teams_alerts).get_queue_properties().approximate_message_count == 1
    with db.transaction(tenant_id=acme.id) as conn:  # that worker died: its claim expires
        conn.execute("UPDATE teams_alert_deliveries SET claimed_until = now() - interval '1 second'")
    assert run_batch(acme).sent == 1


def test_unreachable_recipients_are_recorded_with_the_reason(bot, acme):
    not_installed = teams_user(acme, bot, "ann@acme.com", install=False)
    no_identity = add_user(acme, "bob@acme.com")  # no Entra object id, never wrote to the bot
    uninstalled = teams_user(acme, bot, "cy@acme.com", talked=True)
    removal = bot.installation_update_activity(TEAMS_TENANT_ID, uninstalled[1], action="remove")
    assert post_activity(removal, bot.channel_token()).status == 200
    accept(acme, "all")
    result = run_batch(acme)
    assert result.unreachable == 3
    assert result.sent == 0
    with db.transaction() as conn:
        report = alerts.alert_status(conn, acme, "a-1")
    details = {entry["user_id"]: entry["detail"] for entry in report["not_delivered"]}
    assert "not installed" in details[not_installed[0]]
    assert "no Teams identity" in details[no_identity]
    assert "uninstalled" in details[uninstalled[0]]
    assert report["counts"]["unreachable"] == 3
    assert report["done"]


def test_a_custom_card_is_sent_as_given(bot, acme):
    person = teams_user(acme, bot, "ann@acme.com", talked=True)
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "Custom"}]}
    accept(acme, [person[0]], card=card)
    run_batch(acme)
    [sent] = cards(bot, person[1])
    assert sent["attachments"][0]["content"] == card


def test_pacing_reserves_the_tenants_slots(bot, acme, monkeypatch):
    teams_user(acme, bot, "ann@acme.com", talked=True)
    monkeypatch.setenv("TEAMS_SENDS_PER_SECOND", "1000")
    accept(acme, "all")
    run_batch(acme)
    with db.transaction(tenant_id=acme.id) as conn:
        assert conn.execute("SELECT count(*) FROM teams_send_pacing WHERE tenant_id = %s", [acme.id]).fetchone()[0] == 1


@pytest.fixture
def admin_key(database):
    with db.transaction() as conn:
        _, key = keys.create_admin_key(conn, "operator", "test", created_by="test")
    return key


def call(action, handler, key, **params):
    return admin_api.handle(action, getattr(admin_api, handler), authorization=f"Bearer {key}", source="test",
                            params=params)


def test_the_admin_api_accepts_queues_and_reports(bot, acme, admin_key, teams_queues):
    ann = teams_user(acme, bot, "ann@acme.com", talked=True)
    body = json.dumps({"alert_id": "w48", "tenant": "acme", "recipients": ["ann@acme.com", "zed@acme.com"],
                       "title": "Check-in", "text": "Ready."})
    response = call("alerts.send", "send_alert", admin_key, body=body)
    assert response.status == 202
    assert response.body == {"alert_id": "w48", "recipients": 1, "unknown_recipients": ["zed@acme.com"],
                             "batches": 1, "status": "accepted"}
    [message] = drain_queue(config.queues().teams_alerts)
    assert run_async(delivery.deliver_message(json.dumps(message))).sent == 1
    assert len(cards(bot, ann[1])) == 1
    again = call("alerts.send", "send_alert", admin_key, body=body)
    assert again.status == 202
    assert again.body["status"] == "already accepted"
    assert drain_queue(config.queues().teams_alerts) == []  # nothing left to send
    report = call("alerts.show", "show_alert", admin_key, slug="acme", alert_id="w48")
    assert report.status == 200
    assert report.body["counts"]["sent"] == 1
    assert report.body["done"]
    conflict = call("alerts.send", "send_alert", admin_key, body=body.replace("Ready.", "Other."))
    assert conflict.status == 409


def test_the_admin_api_names_bad_fields_and_hides_other_tenants(acme, make_tenant, database):
    other = make_tenant("other", domains=("other.com",))
    with db.transaction() as conn:
        _, key = keys.create_admin_key(conn, "tenant:other", "other's admin", created_by="test")
    bad = call("alerts.send", "send_alert", key, body=json.dumps({"tenant": "other", "recipients": "all"}))
    assert bad.status == 400
    assert "alert_id" in bad.body["message"]
    assert "title" in bad.body["message"]
    hidden = call("alerts.send", "send_alert", key, body=json.dumps(
        {"alert_id": "x", "tenant": "acme", "recipients": "all", "title": "t", "text": "t"}))
    assert hidden.status == 404
    assert call("alerts.send", "send_alert", key, body="not json").status == 400
    assert other.slug == "other"


def test_a_stored_conversation_teams_no_longer_knows_is_replaced_by_a_new_one(bot, acme):
    person = teams_user(acme, bot, "ann@acme.com", talked=True)
    with db.transaction(tenant_id=acme.id) as conn:
        conn.execute("UPDATE teams_conversations SET reference = jsonb_set(reference, '{conversation,id}',"
                     " '\"a:gone\"')")
    accept(acme, "all")
    assert run_batch(acme).sent == 1
    assert len(cards(bot, person[1])) == 1
    with db.transaction(tenant_id=acme.id) as conn:
        assert conn.execute("SELECT reference #>> '{conversation,id}' FROM teams_conversations").fetchone()[0] \
            == bot.conversation_of(TEAMS_TENANT_ID, person[1])
