"""Queue behaviours of the local host, through Azurite."""

from __future__ import annotations

import itertools
import json

from azure.core.exceptions import ResourceNotFoundError

from tests.stack import wait_until

# tests/local_host/fixture_app/host.json
MAX_DEQUEUE_COUNT = 3
VISIBILITY_TIMEOUT_SECONDS = 2


def _send(fixture_host, payload: dict) -> str:
    return fixture_host.queue().send_message(json.dumps(payload)).id


def _peek(queue) -> list:
    try:
        return list(queue.peek_messages(max_messages=32))
    except ResourceNotFoundError:  # the host creates the poison queue on first use
        return []


def _attempts(fixture_host, message_id: str) -> list[dict]:
    return [entry for entry in fixture_host.records("queue") if entry["id"] == message_id]


def test_the_queue_named_by_a_setting_delivers_base64_decoded_bodies(fixture_host):
    message_id = _send(fixture_host, {"hello": "wörld"})
    attempts = wait_until(lambda: _attempts(fixture_host, message_id), message="the queue function to run")
    assert json.loads(attempts[0]["body"]) == {"hello": "wörld"}
    assert attempts[0]["dequeue_count"] == 1


def test_a_successful_message_is_deleted(fixture_host):
    message_id = _send(fixture_host, {"ok": True})
    wait_until(lambda: _attempts(fixture_host, message_id), message="the queue function to run")
    wait_until(lambda: fixture_host.queue().get_queue_properties().approximate_message_count == 0,
               message="the message to be deleted")


def test_a_failed_message_is_retried_after_the_visibility_timeout_with_a_rising_dequeue_count(fixture_host):
    message_id = _send(fixture_host, {"fail_times": 2})
    attempts = wait_until(lambda: len(_attempts(fixture_host, message_id)) >= 3 and _attempts(fixture_host, message_id),
                          timeout=30, message="three attempts")
    assert [attempt["dequeue_count"] for attempt in attempts] == [1, 2, 3]
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(attempts)]
    assert all(gap >= VISIBILITY_TIMEOUT_SECONDS - 0.2 for gap in gaps), gaps


def test_a_message_failing_max_dequeue_count_times_moves_to_the_poison_queue_as_sent(fixture_host):
    raw = json.dumps({"fail_times": 99, "marker": "poisoned"})
    fixture_host.queue().send_message(raw)
    poison = fixture_host.queue(fixture_host.queue_name + "-poison")
    poisoned = wait_until(
        lambda: [m for m in _peek(poison) if "poisoned" in m.content],
        timeout=40, message="the message in the poison queue")
    assert poisoned[0].content == raw
    attempts = [entry for entry in fixture_host.records("queue") if "poisoned" in entry["body"]]
    assert [attempt["dequeue_count"] for attempt in attempts] == list(range(1, MAX_DEQUEUE_COUNT + 1))


def test_a_message_that_is_not_base64_fails_and_ends_in_the_poison_queue(fixture_host):
    fixture_host.queue(encoded=False).send_message("{not base64}")
    poison = fixture_host.queue(fixture_host.queue_name + "-poison", encoded=False)
    wait_until(lambda: any(m.content == "{not base64}" for m in _peek(poison)),
               timeout=40, message="the undecodable message in the poison queue")
    assert "not valid base64" in fixture_host.host.log()
