"""Indexing: import ``function_app.py`` from the script root and read its functions' bindings.

Like the Python worker, the host reads each function's bindings as the JSON the worker would send
(``get_raw_bindings``), resolves ``%Setting%`` expressions against the app settings (a missing one
is a startup error, as in Azure), and refuses what the real host refuses.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from local.host.routes import RouteTemplate

_SETTING_EXPRESSION = re.compile(r"%([^%]+)%")


class IndexingError(RuntimeError):
    """The app cannot be indexed; the host does not start."""


def resolve_settings(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace each ``%NAME%`` with the app setting NAME; an unset one is an IndexingError."""
    environ = os.environ if environ is None else environ

    def lookup(match: re.Match[str]) -> str:
        name = match[1]
        if not environ.get(name):
            raise IndexingError(f"'%{name}%' does not resolve to a value: app setting {name} is not set")
        return environ[name]

    return _SETTING_EXPRESSION.sub(lookup, value)


@dataclass
class IndexedFunction:
    name: str
    trigger: dict[str, Any]
    user_function: Callable[..., Any]
    other_bindings: list[dict[str, Any]] = field(default_factory=list)
    route: RouteTemplate | None = None

    @property
    def trigger_type(self) -> str:
        return self.trigger["type"]

    @property
    def arg_name(self) -> str:
        return self.trigger["name"]

    @cached_property  # asked on every invocation; the function does not change
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    @cached_property
    def wants_context(self) -> bool:
        return "context" in inspect.signature(self.user_function).parameters

    @cached_property
    def methods(self) -> set[str] | None:
        methods = self.trigger.get("methods")
        return {method.upper() for method in methods} if methods else None

    @property
    def auth_level(self) -> str:
        return str(self.trigger.get("authLevel", "FUNCTION")).upper()


SUPPORTED_TRIGGERS = ("httpTrigger", "queueTrigger", "timerTrigger")


def load_app(script_root: Path, module_name: str = "function_app") -> Any:
    """Import the app module from the script root and return its FunctionApp."""
    import azure.functions as func

    root = str(script_root.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.import_module(module_name)
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionApp)]
    if len(apps) != 1:
        raise IndexingError(f"{module_name}.py must define exactly one FunctionApp, found {len(apps)}")
    return apps[0]


RESERVED_ROUTE_PREFIXES = ("admin", "runtime")
RESERVED_ROUTE_ERROR = "The specified route conflicts with one or more built in routes."


def _http_route_error(entry: IndexedFunction, served: list[IndexedFunction]) -> str | None:
    """What the real host says of an HTTP function it will not serve (ScriptHost.ValidateFunction)."""
    route = entry.route.template.strip("/").lower()
    if route.startswith(RESERVED_ROUTE_PREFIXES):
        return RESERVED_ROUTE_ERROR
    for other in served:
        same_route = other.route.template.strip("/").lower() == route
        methods_meet = entry.methods is None or other.methods is None or bool(entry.methods & other.methods)
        if same_route and methods_meet:
            return f"The route specified conflicts with the route defined by function '{other.name}'."
    return None


def index_functions(
    app: Any, environ: Mapping[str, str] | None = None, errors: dict[str, str] | None = None
) -> list[IndexedFunction]:
    """Every function of the app, with settings resolved and routes compiled.

    As in Azure, an HTTP function whose route starts with ``admin`` or ``runtime``, or repeats
    another's route for a shared method, is left out and its error recorded in ``errors``; the
    others are served.
    """
    indexed: list[IndexedFunction] = []
    for function in app.get_functions():
        bindings = [json.loads(raw) for raw in function.get_raw_bindings()]
        triggers = [binding for binding in bindings if binding["type"].endswith("Trigger")]
        if len(triggers) != 1:
            raise IndexingError(f"function {function.get_function_name()} must have exactly one trigger")
        trigger = {
            key: resolve_settings(value, environ) if isinstance(value, str) else value
            for key, value in triggers[0].items()
        }
        if trigger["type"] not in SUPPORTED_TRIGGERS:
            raise IndexingError(
                f"function {function.get_function_name()}: the local host runs {', '.join(SUPPORTED_TRIGGERS)}, "
                f"not {trigger['type']}")
        entry = IndexedFunction(
            name=function.get_function_name(),
            trigger=trigger,
            user_function=function.get_user_function(),
            other_bindings=[binding for binding in bindings if binding is not triggers[0]],
        )
        if entry.trigger_type == "httpTrigger":
            entry.route = RouteTemplate.compile(trigger.get("route") or entry.name)
            error = _http_route_error(entry, [other for other in indexed if other.route is not None])
            if error is not None:
                if errors is not None:
                    errors[entry.name] = error
                continue
        indexed.append(entry)
    return indexed
