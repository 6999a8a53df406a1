"""Azure Storage queues: the app's clients, and messages the Functions host can read back.

Contract (tests/shared/test_queues.py):
- clients come from the storage settings: a connection string (Azurite locally), or the queue
  endpoint with the managed identity;
- messages are JSON and base64-encoded, as host.json's ``messageEncoding`` tells the host to expect;
- ``ensure_queues()`` creates every queue of the app and its ``-poison`` twin (local runs and tests;
  the Bicep creates them in Azure); creating an existing queue is not an error;
- ``missing_queues()`` names the app's queues that do not exist, for the health check.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from shared import config

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient, QueueServiceClient

POISON_SUFFIX = "-poison"

_lock = threading.Lock()
_service: QueueServiceClient | None = None


def _build_service_client(**transport: Any) -> QueueServiceClient:
    from azure.storage.queue import QueueServiceClient

    settings = config.storage()
    if settings.connection_string:
        return QueueServiceClient.from_connection_string(settings.connection_string, **transport)
    from shared.managed_identity import azure_credential

    return QueueServiceClient(settings.queue_service_uri, credential=azure_credential(), **transport)


def queue_service_client() -> QueueServiceClient:
    """The process's queue service client (created on first use; safe to share between threads)."""
    global _service
    with _lock:
        if _service is None:
            _service = _build_service_client()
        return _service


def queue_client(name: str) -> QueueClient:
    """A client for one queue that base64-encodes what it sends (the service client does not pass
    its encoding on to the queue clients it makes, so it is set here)."""
    from azure.storage.queue import TextBase64EncodePolicy

    return queue_service_client().get_queue_client(name, message_encode_policy=TextBase64EncodePolicy())


def send_json(queue_name: str, payload: Any, *, delay_seconds: int = 0) -> str:
    """Put one JSON message on a queue; returns its message id."""
    message = queue_client(queue_name).send_message(
        json.dumps(payload, separators=(",", ":")), visibility_timeout=delay_seconds or None)
    return message.id


def app_queue_names() -> list[str]:
    """Every queue the app reads, each followed by its poison queue."""
    return [name + suffix for name in config.queues().all() for suffix in ("", POISON_SUFFIX)]


def ensure_queues() -> list[str]:
    """Create the app's queues that do not exist yet; returns the ones created."""
    from azure.core.exceptions import ResourceExistsError

    created = []
    for name in app_queue_names():
        try:
            queue_client(name).create_queue()
            created.append(name)
        except ResourceExistsError:
            pass
    return created


def missing_queues(*, timeout_seconds: float = 3.0) -> list[str]:
    """The app's trigger queues that do not exist; raises when storage cannot be reached."""
    from azure.core.exceptions import ResourceNotFoundError

    # A client of its own: the health check must answer fast, not retry with backoff.
    service = _build_service_client(
        retry_total=0, connection_timeout=timeout_seconds, read_timeout=timeout_seconds)
    missing = []
    with service:
        for name in config.queues().all():
            try:
                service.get_queue_client(name).get_queue_properties()
            except ResourceNotFoundError:
                missing.append(name)
    return missing


def reset() -> None:
    global _service
    with _lock:
        _service = None
