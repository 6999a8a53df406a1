"""Invoking a function as the Python worker does.

Async functions run on the host's one event loop (a blocking call there stalls every other
invocation, as in Azure); sync functions run in a thread pool of PYTHON_THREADPOOL_THREAD_COUNT
threads (the worker's default otherwise). A function that declares ``context`` receives one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import azure.functions as func
from azure.functions import _abc

from local.host.index import IndexedFunction

log = logging.getLogger("local.host")

# The reason the real host logs for HTTP and startup invocations.
HOST_API_REASON = "This function was programmatically called via the host APIs."


class _TraceContext(_abc.TraceContext):
    def __init__(self) -> None:
        self._traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._traceparent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(_abc.RetryContext):
    def __init__(self, retry_count: int = 0, max_retry_count: int = 0) -> None:
        self._retry_count = retry_count
        self._max_retry_count = max_retry_count

    @property
    def retry_count(self) -> int:
        return self._retry_count

    @property
    def max_retry_count(self) -> int:
        return self._max_retry_count

    @property
    def exception(self) -> None:
        return None


class Context(func.Context):
    def __init__(self, function: IndexedFunction, invocation_id: str, script_root: str) -> None:
        self._function = function
        self._invocation_id = invocation_id
        self._script_root = script_root
        self._thread_local = threading.local()
        self._trace = _TraceContext()
        self._retry = _RetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function.name

    @property
    def function_directory(self) -> str:
        return self._script_root

    @property
    def trace_context(self) -> _abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> _abc.RetryContext:
        return self._retry


def default_thread_count() -> int:
    configured = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "")
    return int(configured) if configured.isdigit() and int(configured) > 0 else min(32, (os.cpu_count() or 1) + 4)


class Invoker:
    def __init__(self, script_root: str, *, threads: int | None = None) -> None:
        self.script_root = script_root
        self.executor = ThreadPoolExecutor(
            max_workers=threads or default_thread_count(), thread_name_prefix="worker")

    async def invoke(self, function: IndexedFunction, trigger_value: Any, *, reason: str) -> Any:
        """Run the function with its trigger argument; logs and re-raises what it raises."""
        invocation_id = str(uuid.uuid4())
        kwargs: dict[str, Any] = {function.arg_name: trigger_value}
        if function.wants_context:
            kwargs["context"] = Context(function, invocation_id, self.script_root)
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function.name, reason, invocation_id)
        started = time.perf_counter()
        try:
            if function.is_async:
                result = await function.user_function(**kwargs)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self.executor, partial(function.user_function, **kwargs))
        except BaseException as error:
            log.exception(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms)",
                function.name, invocation_id, (time.perf_counter() - started) * 1000)
            error.logged_by_invoker = True  # type: ignore[attr-defined]
            raise
        log.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)",
            function.name, invocation_id, (time.perf_counter() - started) * 1000)
        return result

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
