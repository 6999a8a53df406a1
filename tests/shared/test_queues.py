"""shared/queues.py against Azurite."""

from __future__ import annotations

import base64
import json

from azure.storage.queue import QueueClient

from shared import config, queues


def test_ensure_queues_creates_every_queue_and_its_poison_queue_once(storage):
    created = queues.ensure_queues()
    expected = [name + suffix for name in config.queues().all() for suffix in ("", "-poison")]
    assert sorted(created) == sorted(expected)
    assert queues.ensure_queues() == []
    assert queues.missing_queues() == []


def test_missing_queues_names_the_trigger_queues_that_do_not_exist(storage):
    names = config.queues()
    queues.queue_client(names.hrms_sync).create_queue()
    assert queues.missing_queues() == [names.dsync_apply, names.teams_turns, names.teams_alerts, names.hrms_writeback]


def test_messages_are_json_encoded_in_base64_as_the_host_expects(storage):
    name = config.queues().hrms_sync
    queues.queue_client(name).create_queue()
    queues.send_json(name, {"tenant": "acme", "mode": "full"})
    raw = QueueClient.from_connection_string(storage, name).receive_message()
    assert json.loads(base64.b64decode(raw.content)) == {"tenant": "acme", "mode": "full"}


def test_a_delayed_message_stays_invisible_until_its_delay(storage):
    name = config.queues().hrms_sync
    queues.queue_client(name).create_queue()
    queues.send_json(name, {"n": 1}, delay_seconds=60)
    assert QueueClient.from_connection_string(storage, name).receive_message() is None
