"""Queue-triggered functions, fed from Azure Storage queues as the Functions host feeds them.

Per queue function (host.json ``extensions.queues`` decides the numbers):
- it polls the queue, backing off from 100 ms up to ``maxPollingInterval`` while the queue is empty
  or missing; it fetches ``batchSize`` messages at a time and the next batch when no more than
  ``newBatchThreshold`` are still running; the messages of a batch run concurrently;
- a message stays invisible while its function runs (10 minutes, renewed half-way);
- the body is base64-decoded when ``messageEncoding`` is base64 (a message that is not valid base64
  fails like a function that raised); the function receives a ``func.QueueMessage`` with its id,
  dequeue count, insertion and expiry times and pop receipt;
- success deletes the message; failure makes it visible again after ``visibilityTimeout``, and
  after its ``maxDequeueCount``-th failure it is copied, as it was sent, to ``<queue>-poison``
  (created when needed) and deleted; a message already past the count is moved without running.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from azure.functions.queue import QueueMessage

from local.host.hostjson import QueueOptions
from local.host.index import IndexedFunction, IndexingError
from local.host.invoker import Invoker

log = logging.getLogger("local.host")

LEASE_SECONDS = 600
MIN_POLLING_INTERVAL = 0.1
POISON_SUFFIX = "-poison"


def queue_service_for(connection: str, environ: dict[str, str] | None = None) -> Any:
    """The queue service named by a binding's ``connection`` setting (a connection string or the
    identity-based ``<connection>__queueServiceUri`` form)."""
    from azure.storage.queue import QueueServiceClient

    environ = dict(os.environ) if environ is None else environ
    connection_string = environ.get(connection, "")
    if connection_string:
        return QueueServiceClient.from_connection_string(connection_string)
    service_uri = environ.get(f"{connection}__queueServiceUri", "")
    if service_uri:
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

        client_id = environ.get(f"{connection}__clientId", "")
        credential = ManagedIdentityCredential(client_id=client_id) if client_id else DefaultAzureCredential()
        return QueueServiceClient(service_uri, credential=credential)
    raise IndexingError(
        f"storage connection '{connection}' is not configured: set {connection} or {connection}__queueServiceUri")


class BodyNotBase64(ValueError):
    pass


def decode_body(content: str, encoding: str) -> bytes:
    if encoding == "none":
        return content.encode("utf-8")
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise BodyNotBase64("the message is not valid base64 (host.json says messageEncoding=base64)") from None


@dataclass
class _Lease:
    pop_receipt: str


class QueueListener:
    def __init__(self, function: IndexedFunction, invoker: Invoker, options: QueueOptions, service: Any) -> None:
        self.function = function
        self.invoker = invoker
        self.options = options
        self.queue_name = function.trigger["queueName"]
        self.queue = service.get_queue_client(self.queue_name)
        self.poison = service.get_queue_client(self.queue_name + POISON_SUFFIX)
        self.in_flight: set[asyncio.Task[None]] = set()

    async def run(self, stopping: asyncio.Event) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        delay = MIN_POLLING_INTERVAL
        while not stopping.is_set():
            if len(self.in_flight) > self.options.new_batch_threshold:
                await asyncio.wait(self.in_flight, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                messages = await asyncio.to_thread(self._receive)
            except ResourceNotFoundError:
                messages = []
            except Exception as error:  # storage down: keep polling, as the host does
                log.warning("queue %s: receive failed: %s", self.queue_name, error)
                messages = []
            if not messages:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=delay)
                delay = min(delay * 2, self.options.max_polling_interval)
                continue
            delay = MIN_POLLING_INTERVAL
            for message in messages:
                task = asyncio.create_task(self._process(message))
                self.in_flight.add(task)
                task.add_done_callback(self.in_flight.discard)
        if self.in_flight:
            await asyncio.wait(self.in_flight)

    def _receive(self) -> list[Any]:
        return list(self.queue.receive_messages(
            max_messages=self.options.batch_size, visibility_timeout=LEASE_SECONDS))

    async def _process(self, message: Any) -> None:
        lease = _Lease(message.pop_receipt)
        if message.dequeue_count > self.options.max_dequeue_count:
            await asyncio.to_thread(self._move_to_poison, message, lease)
            return
        renewal = asyncio.create_task(self._keep_invisible(message, lease))
        try:
            body = decode_body(message.content, self.options.message_encoding)
            trigger_value = QueueMessage(
                id=message.id,
                body=body,
                dequeue_count=message.dequeue_count,
                insertion_time=message.inserted_on,
                expiration_time=message.expires_on,
                time_next_visible=message.next_visible_on,
                pop_receipt=message.pop_receipt,
            )
            reason = f"New queue message detected on '{self.queue_name}'."
            await self.invoker.invoke(self.function, trigger_value, reason=reason)
        except asyncio.CancelledError:
            renewal.cancel()
            await asyncio.to_thread(self._release, message, lease, 0)
            raise
        except Exception as error:
            renewal.cancel()
            if not getattr(error, "logged_by_invoker", False):
                log.error("queue %s: message %s failed before its function ran: %s", self.queue_name, message.id, error)
            if message.dequeue_count >= self.options.max_dequeue_count:
                await asyncio.to_thread(self._move_to_poison, message, lease)
            else:
                await asyncio.to_thread(self._release, message, lease, self.options.visibility_timeout)
            return
        renewal.cancel()
        await asyncio.to_thread(self.queue.delete_message, message.id, lease.pop_receipt)

    async def _keep_invisible(self, message: Any, lease: _Lease) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 2)
            receipt = await asyncio.to_thread(
                self.queue.update_message, message.id, lease.pop_receipt, visibility_timeout=LEASE_SECONDS)
            lease.pop_receipt = receipt.pop_receipt

    def _release(self, message: Any, lease: _Lease, after_seconds: float) -> None:
        self.queue.update_message(message.id, lease.pop_receipt, visibility_timeout=int(after_seconds))

    def _move_to_poison(self, message: Any, lease: _Lease) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self.poison.create_queue()
        self.poison.send_message(message.content)
        self.queue.delete_message(message.id, lease.pop_receipt)
        log.warning(
            "Message %s has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            message.id, self.options.max_dequeue_count, self.queue_name + POISON_SUFFIX)
