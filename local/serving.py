"""The lifecycle every local stand-in shares: a ThreadingHTTPServer on 127.0.0.1, served from a
background thread, started and stopped (or used as a context manager) the same way."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class ServedOnAThread:
    """A subclass makes its server in ``_make_server`` (bound to its port, 0 for any) and may read
    ``base_url`` once started; ``scheme`` and ``thread_name`` say how it presents itself."""

    scheme = "http"
    thread_name = "stand-in"
    base_url = ""
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def _make_server(self) -> ThreadingHTTPServer:
        raise NotImplementedError

    def start(self) -> Self:
        """Serve on a background thread; ``base_url`` is set once the port is bound."""
        if self._server is not None:
            raise RuntimeError(f"the {self.thread_name} is already running")
        server = self._make_server()
        self.base_url = f"{self.scheme}://127.0.0.1:{server.server_address[1]}"
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            close_connections = getattr(server, "close_connections", None)
            if close_connections is not None:  # servers that keep connections alive (TLS stand-ins)
                close_connections()
            server.server_close()
        if thread is not None:
            thread.join(5)

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def write_answer(handler: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes,
                 headers: Mapping[str, str]) -> None:
    """Send one whole answer (status, type, length, extra headers, body) on a keep-alive connection."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def serve_in_foreground(service: ServedOnAThread, port: int, banner: str) -> int:
    """Start the service and wait until Ctrl-C or SIGTERM (a command's ``serve``); 1 when the port is taken."""
    try:
        service.start()
    except OSError as error:
        print(f"cannot listen on 127.0.0.1:{port}: {error}", file=sys.stderr)
        return 1
    # Ctrl-C even when started in the background (which inherits SIGINT ignored); SIGTERM ends the same way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(banner.format(base_url=service.base_url), flush=True)
    try:
        threading.Event().wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        service.stop()
    return 0
