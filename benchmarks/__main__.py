"""Run every benchmark and print one JSON object of figures."""

from __future__ import annotations

import json
import platform
import sys

from benchmarks import cold_start, dev_start, directory, hrms, identity_store, scim, sso, teams

BENCHMARKS = (cold_start, dev_start, identity_store, scim, directory, sso, teams, hrms)


def main() -> None:
    figures: dict[str, object] = {"python": platform.python_version(), "machine": platform.machine()}
    for benchmark in BENCHMARKS:
        figures[benchmark.__name__.rsplit(".", 1)[-1]] = benchmark.measure()
    json.dump(figures, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
