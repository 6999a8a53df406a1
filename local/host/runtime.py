"""The local host: HTTP, queue and timer functions of one app, in one process, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from local.host.hostjson import HostConfig
from local.host.http_server import HostKeys, HttpFunctions
from local.host.index import IndexedFunction, index_functions, load_app
from local.host.invoker import Invoker
from local.host.queue_listener import QueueListener, queue_service_for
from local.host.timers import TimerRunner, TimerStatusStore

log = logging.getLogger("local.host")
logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs log every request at INFO


def load_or_create_keys(path: Path | None) -> HostKeys:
    """The host's keys, kept in a file as the real host keeps them in storage."""
    if path is not None and path.is_file():
        document = json.loads(path.read_text())
        return HostKeys(document["master"], document["functionKeys"])
    keys = HostKeys(secrets.token_urlsafe(32), {"default": secrets.token_urlsafe(32)})
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"master": keys.master, "functionKeys": keys.function_keys}, indent=2))
        path.chmod(0o600)
    return keys


def _describe(function: IndexedFunction, base_url: str, prefix: str) -> str:
    if function.trigger_type == "httpTrigger":
        methods = ",".join(sorted(function.methods)) if function.methods else "all"
        route = "/".join(part for part in (prefix, function.route.template.strip("/")) if part)
        return f"{function.name}: [{methods}] {base_url}/{route}"
    return f"{function.name}: {function.trigger_type}"


class LocalHost:
    def __init__(
        self,
        script_root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 7071,
        state_dir: Path | None = None,
        keys: HostKeys | None = None,
    ) -> None:
        self.script_root = script_root.resolve()
        self.host = host
        self.port = port
        self.config = HostConfig.load(self.script_root / "host.json")
        self.keys = keys or load_or_create_keys(state_dir / "host-keys.json" if state_dir else None)
        self.timer_status = TimerStatusStore(state_dir / "timers.json" if state_dir else None)
        self.stopping = asyncio.Event()
        self.functions: list[IndexedFunction] = []
        self.errors: dict[str, str] = {}

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.stopping.set()

    async def serve(self, on_ready: Callable[[LocalHost], None] | None = None) -> None:
        """Index the app, serve until stop() or SIGINT/SIGTERM, then finish running work and return."""
        self.errors: dict[str, str] = {}
        self.functions = index_functions(load_app(self.script_root), errors=self.errors)
        invoker = Invoker(str(self.script_root))
        http_app = HttpFunctions(self.functions, invoker, self.keys, route_prefix=self.config.route_prefix)
        server = _QuietSignalsServer(uvicorn.Config(
            http_app, host=self.host, port=self.port, log_level="warning", lifespan="on", access_log=False))

        workers: list[asyncio.Task[None]] = []
        services: dict[str, object] = {}
        for function in self.functions:
            if function.trigger_type == "queueTrigger":
                connection = function.trigger.get("connection") or "AzureWebJobsStorage"
                service = services.setdefault(connection, queue_service_for(connection))
                listener = QueueListener(function, invoker, self.config.queues, service)
                workers.append(asyncio.create_task(listener.run(self.stopping)))

        with _stop_on_signals(self.stop):
            server_task = asyncio.create_task(server.serve())
            while not server.started:
                if server_task.done():
                    await server_task  # raises why it could not start (port in use...)
                    return
                await asyncio.sleep(0.02)
            self._announce()
            if on_ready is not None:
                on_ready(self)
            for function in self.functions:
                if function.trigger_type == "timerTrigger":
                    runner = TimerRunner(function, invoker, self.timer_status)
                    workers.append(asyncio.create_task(runner.run(self.stopping)))
            await self.stopping.wait()
            log.info("Stopping the host: finishing running invocations")
            server.should_exit = True
            await asyncio.gather(server_task, *workers, return_exceptions=True)
            invoker.shutdown()

    def _announce(self) -> None:
        lines = [_describe(function, self.base_url, self.config.route_prefix) for function in self.functions]
        print("\nFunctions:\n" + "\n".join(f"        {line}" for line in lines), flush=True)
        if self.errors:
            failing = "\n".join(f"        {name}: {error}" for name, error in self.errors.items())
            print(f"\nThe following {len(self.errors)} functions are in error:\n{failing}", flush=True)
            for name, error in self.errors.items():
                log.error("Function '%s' is in error: %s", name, error)
        print(f"\nHost started: {self.base_url} (Ctrl-C to stop)", flush=True)


class _QuietSignalsServer(uvicorn.Server):
    """uvicorn's server, leaving signal handling to the host (which also stops queues and timers)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
