"""Cold start: importing function_app next to importing bare azure.functions, in fresh interpreters.

The Functions worker imports function_app.py on every cold start; the target is a ratio of at most
1.3 against azure.functions alone (which the worker imports anyway).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUNS = 15
TARGET_RATIO = 1.3

_TIMED_IMPORT = "import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"


def _import_ms(module: str) -> float:
    result = subprocess.run([sys.executable, "-c", _TIMED_IMPORT.format(module=module)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    return float(result.stdout)


def measure() -> dict[str, float | int | bool]:
    # Interleaved, so that a change in machine load affects both alike.
    bare, app = [], []
    for _ in range(RUNS):
        bare.append(_import_ms("azure.functions"))
        app.append(_import_ms("function_app"))
    ratio = statistics.median(app) / statistics.median(bare)
    return {
        "azure_functions_import_ms_median": round(statistics.median(bare), 1),
        "function_app_import_ms_median": round(statistics.median(app), 1),
        "import_ratio": round(ratio, 3),
        "import_ratio_target": TARGET_RATIO,
        "import_ratio_within_target": ratio <= TARGET_RATIO,
        "runs": RUNS,
    }
