"""The real app under the local host, in a process of its own, for the benchmarks that go over HTTP."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from local.azurite import free_port, port_is_open

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def wait_for(url: str, headers: dict[str, str], process: subprocess.Popen) -> None:
    """Until ``url`` answers anything but a 5xx (or the process dies, or a minute passes)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {process.returncode}")
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start_app(folder: Path, env: dict[str, str], *, ready: str, headers: dict[str, str] | None = None
              ) -> tuple[subprocess.Popen, str]:
    """``python -m local.host`` on this checkout with exactly ``env``; returns the process and its
    origin once ``ready`` (a path) answers. Its log is ``folder/host.log``."""
    port = free_port()
    log = (folder / "host.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "local.host", "--script-root", str(PROJECT_ROOT), "--port", str(port),
         "--state-dir", str(folder / "host"), "--no-local-settings"],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    origin = f"http://127.0.0.1:{port}"
    wait_for(origin + ready, headers or {}, process)
    return process, origin


def serve_in_child(standin: object) -> multiprocessing.Process:
    """Serve a stand-in filled in this process from a forked one, once its port answers: the SaaS it
    plays runs on other machines, not on threads sharing the measured interpreter and its garbage."""
    process = multiprocessing.get_context("fork").Process(target=_serve_forever, args=(standin,), daemon=True)
    process.start()
    deadline = time.monotonic() + 30
    while not port_is_open(standin.port):  # type: ignore[attr-defined]
        if time.monotonic() > deadline or not process.is_alive():
            raise RuntimeError("the stand-in did not come up")
        time.sleep(0.05)
    return process


def _serve_forever(standin: object) -> None:
    standin.start()  # type: ignore[attr-defined]
    threading.Event().wait()
