"""POST /api/webhooks/workos without the transport (shared/directory/webhook.py): signatures, the
inbox, duplicates and the dsync-apply queue, against real Postgres and Azurite."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from shared import config, db, queues
from shared.directory.webhook import receive
from tests.directory.conftest import OLD_WEBHOOK_SECRET, WEBHOOK_SECRET, signed


@pytest.fixture
def acme(make_directory, workos_settings, storage):
    queues.ensure_queues()
    tenant, directory = make_directory("acme")
    return tenant, directory


def _body(event: dict) -> bytes:
    return json.dumps(event).encode()


def _inbox_count() -> int:
    with db.transaction(all_tenants=True) as conn:
        return conn.execute("SELECT count(*) FROM workos_events").fetchone()[0]


def _queued() -> list[dict]:
    client = queues.queue_client(config.queues().dsync_apply)
    return [json.loads(base64.b64decode(message.content)) for message in client.peek_messages(32)]


@pytest.mark.parametrize("case", ["none", "empty", "malformed", "no-space", "seconds", "wrong-secret", "expired",
                                  "future", "body-altered", "non-ascii"])
def test_a_bad_signature_is_401_and_writes_nothing(acme, case):
    _, directory = acme
    body = _body(directory.event("dsync.user.created", directory.user("ann")))
    now = datetime.now(UTC)
    signature = {
        "none": None,
        "empty": "",
        "malformed": "v1=abc, t=123",
        "no-space": signed(body, at=now).replace(", ", ","),
        "seconds": signed(body, at=now).replace(f"t={int(now.timestamp() * 1000)}", f"t={int(now.timestamp())}"),
        "wrong-secret": signed(body, "not-the-secret"),
        "expired": signed(body, at=now - timedelta(seconds=181)),
        "future": signed(body, at=now + timedelta(seconds=181)),
        "body-altered": signed(body.replace(b"ann", b"eve")),
        "non-ascii": "t=1, v1=" + "é" * 64,
    }[case]
    response = receive(body, signature)
    assert response.status == 401
    assert response.body["error"] == "invalid_signature"
    assert _inbox_count() == 0
    assert _queued() == []


def test_a_valid_event_is_recorded_and_its_directory_queued(acme):
    tenant, directory = acme
    event = directory.event("dsync.user.created", directory.user("ann"))
    response = receive(_body(event), signed(_body(event)))
    assert (response.status, response.body) == (200, {"id": event["id"], "duplicate": False, "status": "pending"})
    assert _queued() == [{"tenant_id": tenant.id, "directory_id": directory.id, "event_id": event["id"]}]


def test_both_secrets_are_accepted_during_a_rotation(acme):
    _, directory = acme
    for secret in (WEBHOOK_SECRET, OLD_WEBHOOK_SECRET):
        body = _body(directory.event("dsync.user.created", directory.user(secret[-4:])))
        assert receive(body, signed(body, secret)).status == 200
    assert _inbox_count() == 2


def test_a_signature_within_the_tolerance_is_accepted(acme):
    _, directory = acme
    body = _body(directory.event("dsync.user.created", directory.user("ann")))
    assert receive(body, signed(body, at=datetime.now(UTC) - timedelta(seconds=170))).status == 200


def test_a_duplicate_is_acknowledged_and_not_recorded_twice(acme):
    _, directory = acme
    body = _body(directory.event("dsync.user.created", directory.user("ann")))
    first = receive(body, signed(body))
    again = receive(body, signed(body))  # WorkOS retries with a fresh signature
    assert (first.status, again.status) == (200, 200)
    assert again.body["duplicate"] is True
    assert _inbox_count() == 1


def test_a_signed_body_that_is_not_an_event_is_400_and_names_the_field(acme):
    _, directory = acme
    event = directory.event("dsync.user.created", directory.user("ann"))
    del event["data"]["updated_at"]
    response = receive(_body(event), signed(_body(event)))
    assert response.status == 400
    assert "updated_at" in response.body["message"]
    assert receive(b"not json", signed(b"not json")).status == 400
    assert _inbox_count() == 0


def test_other_event_types_are_acknowledged_and_not_recorded(acme):
    event = {"object": "event", "id": "event_01SSO", "event": "connection.activated", "data": {},
             "created_at": "2026-11-27T08:00:00.000Z"}
    response = receive(_body(event), signed(_body(event)))
    assert response.status == 200
    assert response.body["ignored"]
    assert _inbox_count() == 0


def test_an_event_of_an_organization_no_tenant_has_is_kept_unmatched(make_directory, workos_settings, storage):
    queues.ensure_queues()
    _, orphan = make_directory(None)
    event = orphan.event("dsync.user.created", orphan.user("ann"))
    response = receive(_body(event), signed(_body(event)))
    assert (response.status, response.body["status"]) == (200, "unmatched")
    assert _queued() == []


def test_when_the_inbox_cannot_be_reached_the_answer_is_503(acme, monkeypatch):
    _, directory = acme
    body = _body(directory.event("dsync.user.created", directory.user("ann")))
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    config.reset()
    db.close_pools()
    monkeypatch.setenv("DB_POOL_TIMEOUT_SECONDS", "1")
    assert receive(body, signed(body)).status == 503


def test_a_body_over_one_mebibyte_is_413_before_its_signature_is_computed(acme):
    body = b"{" + b" " * (1024 * 1024) + b"}"
    response = receive(body, signed(body))
    assert (response.status, response.body["error"]) == (413, "too_large")
    assert _inbox_count() == 0


def test_a_burst_of_events_of_one_directory_queues_one_message_until_an_applier_starts(acme):
    from shared.directory import apply

    tenant, directory = acme
    for key in ("ann", "bo", "cy"):
        body = _body(directory.event("dsync.user.created", directory.user(key)))
        assert receive(body, signed(body)).status == 200
    assert len(_queued()) == 1  # the first event created the directory's row with its mark
    with db.transaction() as conn:  # an applier takes the directory: the mark is cleared
        assert apply.acquire_lease(conn, tenant, directory.id, "applier")
    body = _body(directory.event("dsync.user.created", directory.user("dee")))
    receive(body, signed(body))
    body = _body(directory.event("dsync.user.created", directory.user("eve")))
    receive(body, signed(body))
    assert len(_queued()) == 2  # one more for what arrived after the applier started
