"""The lifecycle every local stand-in shares: a ThreadingHTTPServer on 127.0.0.1, served from a
background thread, started and stopped (or used as a context manager) the same way."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
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
