"""The ``dsync-apply`` queue worker: a message names a directory with pending events; drain it.

Contract (tests/directory/test_worker.py): a message is ``{"tenant_id", "directory_id"}``; the worker
applies the directory's pending events while holding its lease; when another applier holds the lease
the message is sent again with a short delay (the holder may have finished before this message's
event was recorded), and when the time budget runs out with events left, sent again at once. A
malformed message raises, so the host retries it and finally moves it to the poison queue.
"""

from __future__ import annotations

import json
import logging
import uuid

from shared.directory.apply import DrainResult, drain_directory

log = logging.getLogger(__name__)

BUDGET_SECONDS = 50.0
BUSY_RETRY_DELAY_SECONDS = 5


def apply_message(body: str) -> DrainResult:
    from shared.directory.webhook import enqueue_directory

    payload = json.loads(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("directory_id"), str):
        raise ValueError("a dsync-apply message is {\"tenant_id\": UUID, \"directory_id\": ID}")
    tenant_id = str(uuid.UUID(str(payload.get("tenant_id"))))
    directory_id = payload["directory_id"]
    result = drain_directory(tenant_id, directory_id, budget_seconds=BUDGET_SECONDS)
    if result.busy or result.more:
        enqueue_directory(tenant_id, directory_id, delay_seconds=BUSY_RETRY_DELAY_SECONDS if result.busy else 0)
    log.info("dsync-apply: directory %s: %d event(s) applied%s", directory_id, result.applied,
             " (lease busy, queued again)" if result.busy else " (more left, queued again)" if result.more else "")
    return result
