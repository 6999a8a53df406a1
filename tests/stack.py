"""The real services tests run against, and the local host run as a separate process.

Postgres is the embedded server (or the server of DATABASE_URL when it is set before the run);
storage is an in-memory Azurite (or the account of AzureWebJobsStorage when set). Each test gets
its own database, cloned from a migrated template, and its own queue names.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def wait_until(condition, *, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Poll until condition() is truthy; returns its value or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)


@dataclass
class HostProcess:
    """``python -m local.host`` in a subprocess, with its output captured for failing tests."""

    process: subprocess.Popen[str]
    base_url: str
    state_dir: Path
    log_path: Path
    keys: dict = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.base_url + path, timeout=30, **kwargs)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.base_url + path, timeout=30, **kwargs)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_host(script_root: Path, env: dict[str, str], tmp_path: Path, *, port: int) -> HostProcess:
    """Start the local host on a script root and wait until it answers its ping."""
    state_dir = tmp_path / "host-state"
    log_path = tmp_path / "host.log"
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [PYTHON, "-m", "local.host", "--script-root", str(script_root), "--port", str(port),
         "--state-dir", str(state_dir), "--no-local-settings"],
        cwd=PROJECT_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True,
    )
    host = HostProcess(process, f"http://127.0.0.1:{port}", state_dir, log_path)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the local host exited with {process.returncode}:\n{host.log()}")
        try:
            return httpx.get(host.base_url + "/admin/host/ping", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, timeout=60, message="the local host to answer /admin/host/ping")
    host.keys = json.loads((state_dir / "host-keys.json").read_text())
    return host


def app_environment(**settings: str) -> dict[str, str]:
    """An environment for the real app: every declared setting at its default (as the sample and the
    Bicep give them; the host resolves %SETTING% expressions from these), plus the given ones."""
    from shared.config import SETTINGS

    defaults = {name: setting.default for name, setting in SETTINGS.items() if setting.default is not None}
    return base_environment() | defaults | settings


def base_environment() -> dict[str, str]:
    """The test process's environment without any app setting (tests add what they need)."""
    from shared.config import HOST_SETTINGS, SETTINGS

    return {name: value for name, value in os.environ.items() if name not in SETTINGS and name not in HOST_SETTINGS}
