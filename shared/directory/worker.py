"""The ``dsync-apply`` queue worker: a message names a directory with pending events; drain it.

Contract (tests/directory/test_worker.py): a message is ``{"tenant_id", "directory_id"[, "event_id"]}``;
the worker applies the directory's pending events while holding its lease. When another applier
holds the lease, the message is sent again with a short delay while the directory has pending events
(the holder may finish before the last of them were recorded, and webhooks send no new message while
one is outstanding: inbox.request_apply) and dropped otherwise; when the time budget runs out with events left, the
directory is queued again at once. A malformed message raises, so the host retries it and finally
moves it to the poison queue.
"""

from __future__ import annotations

import json
import logging
import uuid

from shared.directory.apply import DrainResult, drain_directory

log = logging.getLogger(__name__)

BUDGET_SECONDS = 50.0
BUSY_RETRY_DELAY_SECONDS = 5


def _has_pending(tenant_id: str, directory_id: str) -> bool:
    from shared import db

    with db.transaction(tenant_id=tenant_id) as conn:
        return conn.execute("SELECT EXISTS (SELECT 1 FROM workos_events WHERE tenant_id = %s AND directory_id = %s"
                            " AND status = 'pending')", [tenant_id, directory_id]).fetchone()[0]


def apply_message(body: str) -> DrainResult:
    from shared.directory.webhook import enqueue_directory

    payload = json.loads(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("directory_id"), str):
        raise ValueError("a dsync-apply message is {\"tenant_id\": UUID, \"directory_id\": ID}")
    tenant_id = str(uuid.UUID(str(payload.get("tenant_id"))))
    directory_id = payload["directory_id"]
    event_id = payload.get("event_id")
    result = drain_directory(tenant_id, directory_id, budget_seconds=BUDGET_SECONDS)
    if result.more:
        enqueue_directory(tenant_id, directory_id)
    elif result.busy and _has_pending(tenant_id, directory_id):
        enqueue_directory(tenant_id, directory_id, event_id=event_id, delay_seconds=BUSY_RETRY_DELAY_SECONDS)
    log.info("dsync-apply: directory %s: %d event(s) applied%s", directory_id, result.applied,
             " (lease busy, queued again)" if result.busy else " (more left, queued again)" if result.more else "")
    return result
