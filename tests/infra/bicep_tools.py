"""Offline Bicep checks for tests/infra: syntax (tree-sitter-bicep), structure (pycep-parser) and checkov.

Nothing here reaches the network. checkov lives in its own venv (.venv-checkov, built by `make test` from
requirements-checkov.txt) because its pins conflict with the app's; it runs with --skip-download and with its
PyPI update check turned off.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tree_sitter
import tree_sitter_bicep
from pycep import BicepParser

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_TIMEOUT_SECONDS = 300

# checkov otherwise asks PyPI for a newer version on every start (import time, 1 s timeout) and, with an API key in
# the environment, talks to the Prisma Cloud / Bridgecrew platform.
_CHECKOV_OFFLINE_ENV = {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}
_CHECKOV_PLATFORM_VARS = ("BC_API_KEY", "PRISMA_API_URL", "BC_REPO_ID")
# What a check result is reduced to: enough to say what failed where, without checkov's code blocks.
_CHECK_KEYS = ("check_id", "check_name", "file_path", "file_abs_path", "resource", "file_line_range")

_SNIPPET_CHARS = 40


# --- syntax: tree-sitter-bicep -----------------------------------------------------------------------------------


@functools.cache
def _ts_parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


def _snippet(node: tree_sitter.Node) -> str:
    text = (node.text or b"").decode("utf-8", "replace").strip()
    first_line = text.splitlines()[0] if text else ""
    return first_line[:_SNIPPET_CHARS]


def _problem_nodes(root: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    stack = [root]
    while stack:
        node = stack.pop()
        if not node.has_error and not node.is_missing:
            continue
        if node.is_error or node.is_missing:
            yield node
        stack.extend(reversed(node.children))


def syntax_errors(path: Path) -> list[str]:
    """One "path:line:col: ERROR near '<text>'" per ERROR or MISSING node of tree-sitter-bicep's parse; [] if clean.

    Lines and columns are 1-based (columns count bytes). A MISSING node has no text of its own: the snippet is its
    parent's, followed by what tree-sitter expected there.
    """
    tree = _ts_parser().parse(path.read_bytes())
    problems = []
    for node in _problem_nodes(tree.root_node):
        line, column = node.start_point.row + 1, node.start_point.column + 1
        if node.is_missing:
            near = _snippet(node.parent) if node.parent is not None else ""
            problems.append(f"{path}:{line}:{column}: ERROR near '{near}' (missing '{node.type}')")
        else:
            problems.append(f"{path}:{line}:{column}: ERROR near '{_snippet(node)}'")
    return problems


# --- structure: pycep-parser --------------------------------------------------------------------------------------


@functools.cache
def _pycep() -> BicepParser:
    return BicepParser()


_loaded: dict[tuple[Path, str], dict[str, Any]] = {}


def load(path: Path) -> dict[str, Any]:
    """pycep-parser's JSON for a .bicep file (keys: globals, parameters, variables, resources, modules, outputs, and
    types, metadata, imports where present), cached per path and content. Shared between callers: do not mutate it."""
    resolved = path.resolve()
    text = resolved.read_text()
    key = (resolved, hashlib.sha256(text.encode()).hexdigest())
    if key not in _loaded:
        try:
            _loaded[key] = dict(_pycep().parse(text=text))
        except Exception as exc:  # lark's UnexpectedInput family, or pycep's ValueError for unbalanced '''
            raise ValueError(f"{path}: pycep-parser cannot parse it: {exc}") from exc
    return _loaded[key]


def body(declaration: dict[str, Any]) -> dict[str, Any]:
    """The object of a resource or module declaration from load(), through its `if (...)` or `[for ...]` wrapper.

    pycep nests a conditional declaration's object as config = {"condition": ..., "config": {...}} and a loop's as
    config = {"loop_type": ..., "condition": ..., "config": {...}}; a plain declaration's config is the object.
    """
    config = declaration["config"]
    while isinstance(config, dict) and "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


# --- policy: checkov ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckovResult:
    """checkov's verdict on a directory. Each check is a dict with check_id, check_name, file_path (relative to the
    scanned directory, with a leading /), file_abs_path, resource ("<type>.<symbolic name>") and file_line_range;
    skipped checks also carry suppress_comment. parsing_errors lists the files checkov could not parse and so did
    not check at all: a test should insist it is empty."""

    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    passed_count: int = 0
    parsing_errors: list[str] = field(default_factory=list)
    resource_count: int = 0

    def failed_ids(self) -> set[str]:
        return {check["check_id"] for check in self.failed}

    def skipped_ids(self) -> set[str]:
        return {check["check_id"] for check in self.skipped}


def _reduce(check: dict[str, Any]) -> dict[str, Any]:
    reduced = {key: check.get(key) for key in _CHECK_KEYS}
    reduced["evaluated_keys"] = (check.get("check_result") or {}).get("evaluated_keys")
    suppress_comment = (check.get("check_result") or {}).get("suppress_comment")
    if suppress_comment is not None:
        reduced["suppress_comment"] = suppress_comment.strip()
    return reduced


def _checkov_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _CHECKOV_PLATFORM_VARS}
    env.update(_CHECKOV_OFFLINE_ENV)
    return env


def run_checkov(directory: Path, *, extra_args: Sequence[str] = ()) -> CheckovResult:
    """Run checkov (.venv-checkov) offline with --framework bicep on directory and return its failed, skipped and
    passed checks. Failing checks (exit 1) are a result, not a crash; a crash (no JSON on stdout) raises with
    checkov's stderr."""
    if not CHECKOV.exists():
        raise RuntimeError(
            f"{CHECKOV.relative_to(REPO_ROOT)} is missing: `make test` builds it from requirements-checkov.txt "
            "(or run `make .venv-checkov/.installed`)"
        )
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory for checkov to scan")
    command = [
        str(CHECKOV),
        "--directory", str(directory),
        "--framework", "bicep",
        "--skip-download",
        "--skip-results-upload",
        "--output", "json",
        *extra_args,
    ]  # fmt: skip
    try:
        completed = subprocess.run(  # a fixed binary and arguments, no shell
            command,
            capture_output=True,
            text=True,
            env=_checkov_env(),
            stdin=subprocess.DEVNULL,
            timeout=CHECKOV_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"checkov did not finish within {CHECKOV_TIMEOUT_SECONDS} s on {directory}") from exc
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        report = None
    if completed.returncode not in (0, 1) or not isinstance(report, dict | list):
        raise RuntimeError(
            f"checkov crashed on {directory} (exit {completed.returncode}):\n"
            f"{completed.stderr.strip() or completed.stdout.strip()[-4000:]}"
        )
    # One framework gives one report object; nothing to scan gives a bare summary; several give a list.
    reports = report if isinstance(report, list) else [report]
    failed: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    passed_count = resource_count = 0
    parsing_errors: list[str] = []
    for part in reports:
        results = part.get("results", {})
        summary = part.get("summary", part)
        failed += [_reduce(check) for check in results.get("failed_checks", [])]
        skipped += [_reduce(check) for check in results.get("skipped_checks", [])]
        parsing_errors += results.get("parsing_errors", [])
        passed_count += int(summary.get("passed", 0))
        resource_count += int(summary.get("resource_count", 0))
    return CheckovResult(
        failed=failed,
        skipped=skipped,
        passed_count=passed_count,
        parsing_errors=parsing_errors,
        resource_count=resource_count,
    )


def describe(checks: Sequence[dict[str, Any]]) -> str:
    """checks as lines "CKV_...  resource  file:first-last  name", for assertion messages."""
    return "\n".join(
        f"{check['check_id']}  {check['resource']}  {check['file_path']}:"
        f"{'-'.join(str(n) for n in check.get('file_line_range') or [])}  {check['check_name']}"
        for check in checks
    )


if __name__ == "__main__":  # python -m tests.infra.bicep_tools FILE.bicep...: syntax errors, then pycep's JSON
    for argument in sys.argv[1:]:
        bicep_file = Path(argument)
        print("\n".join(syntax_errors(bicep_file)) or f"{bicep_file}: no syntax errors")
        print(json.dumps(load(bicep_file), indent=2, default=str))
