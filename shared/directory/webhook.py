"""``POST /api/webhooks/workos``, free of any transport: raw body and signature in, status and JSON out.

Contract (tests/directory/test_webhook.py):
- the ``WorkOS-Signature`` header (``t=<unix ms>, v1=<hex>``) is checked by the workos SDK against the
  raw body and each configured secret (two during a rotation); a missing, malformed, wrong, too old
  or too far in the future (180 s) signature gets 401 and nothing is written or queued;
- a body over 1 MiB gets 413 before anything else; a signed body that is not a well-formed event
  gets 400 naming the field; an event type other
  than ``dsync.*`` is acknowledged (200) and not recorded;
- a valid event is recorded in the inbox and, when its tenant is known and no message for its
  directory is outstanding (``inbox.request_apply``), a ``dsync-apply`` message names the directory
  and the event; the answer is 200 with the event id. The same event id again is acknowledged and
  not recorded twice; while it is still pending its directory is queued again (so a failed enqueue
  is repaired by WorkOS's retry);
- when the inbox or the queue cannot be reached the answer is 503, so WorkOS retries later.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from shared import config, db
from shared.directory import inbox
from shared.directory.events import MalformedEvent, parse_event

log = logging.getLogger(__name__)

# Checked before the SDK sees it: the SDK splits on ", " and slices, and would compare arbitrary text.
SIGNATURE_FORMAT = re.compile(r"t=(\d{1,16}), v1=([0-9a-f]{64})")
TOLERANCE_SECONDS = 180
MAX_BODY_BYTES = 1024 * 1024  # a directory event is a few kilobytes; nothing larger is hashed


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    body: dict[str, Any]


def _refuse(status: int, error: str, message: str) -> WebhookResponse:
    return WebhookResponse(status, {"error": error, "message": message})


def signature_is_valid(body: bytes, signature: str | None, secrets: tuple[str, ...]) -> bool:
    if not signature or not SIGNATURE_FORMAT.fullmatch(signature.strip()):
        return False
    from shared.workos_api import client

    webhooks = client().webhooks
    for secret in secrets:
        try:
            webhooks.verify_header(event_body=body, event_signature=signature.strip(), secret=secret,
                                   tolerance=TOLERANCE_SECONDS)
            return True
        except ValueError:
            continue
    return False


def enqueue_directory(tenant_id: str, directory_id: str, *, event_id: str | None = None,
                      delay_seconds: int = 0) -> None:
    from shared.queues import send_json

    message = {"tenant_id": tenant_id, "directory_id": directory_id}
    if event_id:
        message["event_id"] = event_id
    send_json(config.queues().dsync_apply, message, delay_seconds=delay_seconds)


def receive(body: bytes, signature: str | None) -> WebhookResponse:
    if len(body) > MAX_BODY_BYTES:
        return _refuse(413, "too_large", f"a WorkOS event is at most {MAX_BODY_BYTES} bytes")
    if not signature_is_valid(body, signature, config.workos_webhook_secrets()):
        return _refuse(401, "invalid_signature", "the WorkOS-Signature header is missing, malformed, wrong or "
                       "outside the 180 s tolerance")
    try:
        event = parse_event(json.loads(body))
    except (ValueError, UnicodeDecodeError) as error:
        message = str(error) if isinstance(error, MalformedEvent) else "the body is not JSON"
        return _refuse(400, "malformed_event", message)
    if not event.is_directory_event:
        return WebhookResponse(200, {"id": event.id, "ignored": "not a Directory Sync event"})
    try:
        with db.transaction(all_tenants=True) as conn:
            [recorded] = inbox.record_events(conn, [event], "webhook")
            wanted = recorded.status == "pending" and bool(recorded.tenant_id and recorded.directory_id)
            if wanted and recorded.new:
                wanted = inbox.request_apply(conn, recorded.tenant_id, recorded.directory_id,
                                             event.organization_id)
        if wanted:
            enqueue_directory(recorded.tenant_id, recorded.directory_id, event_id=event.id)
    except Exception:
        log.exception("webhook: event %s could not be recorded or queued; WorkOS will retry", event.id)
        return _refuse(503, "unavailable", "the event could not be recorded now; retry later")
    return WebhookResponse(200, {"id": event.id, "duplicate": not recorded.new, "status": recorded.status})
