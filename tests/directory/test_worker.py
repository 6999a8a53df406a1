"""The dsync-apply worker (shared/directory/worker.py): drain, requeue while busy, poison on garbage."""

from __future__ import annotations

import base64
import json

import pytest

from shared import config, db, queues
from shared.directory import apply
from shared.directory.worker import apply_message
from tests.directory.conftest import deliver, state_of


@pytest.fixture
def acme(make_directory, storage):
    queues.ensure_queues()
    return make_directory("acme")


def _queued() -> list[dict]:
    client = queues.queue_client(config.queues().dsync_apply)
    return [json.loads(base64.b64decode(message.content)) for message in client.peek_messages(32)]


def _in_queue() -> int:
    return queues.queue_client(config.queues().dsync_apply).get_queue_properties().approximate_message_count


def test_a_message_applies_the_directorys_pending_events(acme):
    tenant, directory = acme
    event = directory.event("dsync.user.created", directory.user("ann"))
    deliver([event])
    result = apply_message(json.dumps({"tenant_id": tenant.id, "directory_id": directory.id, "event_id": event["id"]}))
    assert result.applied == 1
    assert [row[0] for row in state_of(tenant, directory)["users"]] == ["ann"]
    assert _queued() == []


def test_while_another_applier_works_a_pending_event_comes_back_later_and_an_applied_one_does_not(acme):
    tenant, directory = acme
    pending = directory.event("dsync.user.created", directory.user("ann"))
    deliver([pending])
    with db.transaction() as conn:
        apply.acquire_lease(conn, tenant, directory.id, "another-instance")
    message = {"tenant_id": tenant.id, "directory_id": directory.id}
    assert apply_message(json.dumps({**message, "event_id": pending["id"]})).busy
    assert _in_queue() == 1  # sent again, invisible for a few seconds
    with db.transaction(tenant_id=tenant.id) as conn:  # the other applier got to it meanwhile
        conn.execute("UPDATE workos_events SET status = 'applied'")
    queues.queue_client(config.queues().dsync_apply).clear_messages()
    assert apply_message(json.dumps({**message, "event_id": pending["id"]})).busy
    assert _in_queue() == 0


@pytest.mark.parametrize("body", ["not json", "[]", '{"directory_id": "d"}', '{"tenant_id": "x", "directory_id": "d"}'])
def test_a_malformed_message_raises_so_it_ends_in_the_poison_queue(acme, body):
    with pytest.raises(ValueError):
        apply_message(body)


def test_while_busy_a_message_whose_event_is_done_still_comes_back_for_later_events(acme):
    tenant, directory = acme
    first = directory.event("dsync.user.created", directory.user("ann"))
    deliver([first, directory.event("dsync.user.created", directory.user("bo"))])  # bo came after
    with db.transaction() as conn:
        apply.acquire_lease(conn, tenant, directory.id, "another-instance")
    with db.transaction(tenant_id=tenant.id) as conn:  # the holder applied ann, then stopped looking
        conn.execute("UPDATE workos_events SET status = 'applied' WHERE id = %s", [first["id"]])
    message = {"tenant_id": tenant.id, "directory_id": directory.id, "event_id": first["id"]}
    assert apply_message(json.dumps(message)).busy
    assert _in_queue() == 1  # bo is pending and no webhook will send another message
