"""Alert intake: validation, recording with delivery rows in batches, idempotent acceptance, queueing."""

from __future__ import annotations

import json

import pytest

from shared import config, db
from shared.teams import alerts, delivery
from tests.teams.conftest import add_user, drain_queue, run_async


def request(**fields):
    document = {"alert_id": "a-1", "tenant": "acme", "recipients": "all", "title": "Check-in",
                "text": "Your weekly check-in is ready."}
    document.update(fields)
    return document


def accept(tenant, document, *, by="test"):
    with db.transaction() as conn:
        return alerts.accept_alert(conn, tenant, alerts.parse_alert(document), created_by=by)


def deliveries(tenant, alert_id="a-1"):
    with db.transaction(tenant_id=tenant.id) as conn:
        return conn.execute("SELECT user_id::text, batch, status FROM teams_alert_deliveries WHERE alert_id = %s"
                            " ORDER BY batch, user_id", [alert_id]).fetchall()


def test_every_bad_field_is_named_at_once():
    with pytest.raises(alerts.InvalidAlert) as caught:
        alerts.parse_alert({"alert_id": " bad id", "recipients": ["nobody"], "title": "", "text": "x" * 5000,
                            "url": "http://evil.example/", "card": {"type": "Card"}, "extra": 1})
    assert set(caught.value.problems) == {"alert_id", "tenant", "recipients", "title", "text", "url", "card", "body"}
    assert "extra" in caught.value.problems["body"]


def test_recipients_must_be_all_or_ids_and_emails():
    for bad in ([], "everyone", [42], ["not-an-email"]):
        with pytest.raises(alerts.InvalidAlert) as caught:
            alerts.parse_alert(request(recipients=bad))
        assert set(caught.value.problems) == {"recipients"}
    parsed = alerts.parse_alert(request(recipients=["Ann@Acme.com", "ann@acme.com"]))
    assert parsed.recipients == ("ann@acme.com",)


def test_all_active_users_get_a_row_in_bounded_batches(acme, monkeypatch):
    monkeypatch.setenv("TEAMS_ALERT_BATCH_SIZE", "2")
    active = {add_user(acme, f"user{index}@acme.com") for index in range(5)}
    add_user(acme, "gone@acme.com", active=False)
    accepted = accept(acme, request())
    rows = deliveries(acme)
    assert {row[0] for row in rows} == active
    assert sorted(row[1] for row in rows) == [0, 0, 1, 1, 2]
    assert (accepted.recipients, accepted.batches, accepted.pending_batches) == (5, 3, [0, 1, 2])
    assert all(row[2] == "pending" for row in rows)


def test_unknown_and_inactive_recipients_are_reported(acme):
    ann = add_user(acme, "ann@acme.com")
    bob = add_user(acme, "bob@acme.com")
    add_user(acme, "old@acme.com", active=False)
    accepted = accept(acme, request(recipients=["ANN@acme.com", bob, "old@acme.com", "nobody@acme.com"]))
    assert {row[0] for row in deliveries(acme)} == {ann, bob}
    assert accepted.unknown == ["old@acme.com", "nobody@acme.com"]
    with db.transaction() as conn:
        status = alerts.alert_status(conn, acme, "a-1")
    assert status["unknown_recipients"] == ["old@acme.com", "nobody@acme.com"]
    assert status["counts"]["pending"] == 2
    assert not status["done"]


def test_the_same_alert_again_adds_nothing_and_other_content_conflicts(acme):
    add_user(acme, "ann@acme.com")
    first = accept(acme, request())
    again = accept(acme, request())
    assert first.created
    assert not again.created
    assert again.pending_batches == [0]
    assert len(deliveries(acme)) == 1
    with pytest.raises(alerts.AlertConflict):
        accept(acme, request(text="Something else"))


def test_a_tenant_never_sees_another_tenants_users(acme, make_tenant):
    other = make_tenant("other", domains=("other.com",))
    stranger = add_user(other, "eve@other.com")
    accepted = accept(acme, request(recipients=[stranger, "eve@other.com"]))
    assert accepted.recipients == 0
    assert accepted.unknown == [stranger, "eve@other.com"]


def test_batches_are_queued_in_bounded_steps(acme, teams_queues, monkeypatch):
    monkeypatch.setenv("TEAMS_ALERT_BATCH_SIZE", "1")
    monkeypatch.setattr(alerts, "ENQUEUE_CHUNK", 2)
    for index in range(5):
        add_user(acme, f"user{index}@acme.com")
    accepted = accept(acme, request())
    alerts.enqueue_batches(accepted.tenant_id, accepted.alert_id, accepted.pending_batches)
    queue = config.queues().teams_alerts
    messages = drain_queue(queue)
    assert [message.get("batch") for message in messages] == [0, 1, None]
    assert messages[2]["enqueue_from"] == 2
    # The continuation queues the next step, and so on: every batch once.
    run_async(delivery.deliver_message(json.dumps(messages[2])))
    messages = drain_queue(queue)
    assert [message.get("batch") for message in messages] == [2, 3, None]
    run_async(delivery.deliver_message(json.dumps(messages[2])))
    assert [message.get("batch") for message in drain_queue(queue)] == [4]


def test_slots_are_reserved_one_after_another_across_senders(acme):
    async def reserve_twice():
        first = await delivery.reserve_slots(acme.id, 10, 20.0)
        second = await delivery.reserve_slots(acme.id, 10, 20.0)
        return first, second

    first, second = run_async(reserve_twice())
    assert first == pytest.approx(0.0, abs=0.05)
    # The second batch waits for the first one's half second (10 slots at 20 per second).
    assert second == pytest.approx(0.5, abs=0.05)


def test_malformed_worker_messages_raise_so_the_host_poisons_them():
    for body in ("not json", "{}", json.dumps({"alert_id": "a", "tenant_id": "nope", "batch": 1}),
                 json.dumps({"alert_id": "a", "tenant_id": "72f988bf-0000-4000-8000-00000000a1b2"})):
        with pytest.raises(ValueError):
            delivery.parse_message(body)
