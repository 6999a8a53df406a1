"""`make dev` start-up: seconds from launch to a 200 from /api/health, first run and second run.

Runs in a temporary state folder on free ports, so a running `make dev` is not disturbed. The
second run reuses the data folder and the installed packages: it is what a developer waits for
every morning.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from local.azurite import free_port
from shared.config import SETTINGS

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _start_and_time(state: Path) -> float:
    port = free_port()
    arguments = [sys.executable, "-m", "local.dev", "--state-dir", str(state), "--port", str(port),
                 "--no-local-settings", "--azurite-ports", str(free_port()), str(free_port()), str(free_port())]
    started = time.perf_counter()
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS}
    env["AzureWebJobsStorage"] = "UseDevelopmentStorage=true"
    process = subprocess.Popen(arguments, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"local.dev exited with {process.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)


def measure() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder) / "state"
        first = _start_and_time(state)
        second = _start_and_time(state)
    return {"dev_first_start_seconds": round(first, 2), "dev_second_start_seconds": round(second, 2)}
