"""``python -m local.host``: serve a function app's functions, as ``func start`` would."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from local.host.runtime import LocalHost
from shared.config import load_local_settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.host", description=__doc__)
    parser.add_argument(
        "--script-root", type=Path, default=Path.cwd(), help="folder holding function_app.py and host.json")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--state-dir", type=Path, default=None,
        help="where host keys and timer status live (default: <script-root>/.local/host)")
    parser.add_argument(
        "--no-local-settings", action="store_true", help="do not read <script-root>/local.settings.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Two lines per invocation: skip what the format does not show (the logging HOWTO's optimisations).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    root = args.script_root.resolve()
    if not args.no_local_settings:
        load_local_settings(root / "local.settings.json")
    host = LocalHost(root, host=args.host, port=args.port, state_dir=args.state_dir or root / ".local" / "host")
    asyncio.run(host.serve())


if __name__ == "__main__":
    main()
