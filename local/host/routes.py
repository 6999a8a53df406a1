"""ASP.NET Core route templates, as the Functions host matches them.

Supported: literal segments (matched case-insensitively), ``{name}``, optional ``{name?}``, defaults
``{name=value}``, catch-all ``{*rest}`` / ``{**rest}`` (may be empty), several parameters in one
segment (``{a}.{b}``), and the inline constraints ``int long bool guid alpha decimal double float
datetime minlength(n) maxlength(n) length(n[,m]) min(n) max(n) range(a,b) regex(expr) required``.
When several templates match, the more specific wins (literal, then constrained parameter, then
parameter, then catch-all, segment by segment), as ASP.NET's route precedence orders them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote


class RouteTemplateError(ValueError):
    """A route template the host would refuse at indexing."""


def _int_in(bits: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        return bool(re.fullmatch(r"-?\d+", value)) and -(2 ** (bits - 1)) <= int(value) < 2 ** (bits - 1)

    return check


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value.strip().lower() not in ("nan", "inf", "-inf", "infinity", "-infinity")


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


_SIMPLE_CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": _int_in(32),
    "long": _int_in(64),
    "bool": lambda value: value.lower() in ("true", "false"),
    "guid": _is_guid,
    "alpha": lambda value: bool(re.fullmatch(r"[A-Za-z]+", value)),
    "decimal": _is_float,
    "double": _is_float,
    "float": _is_float,
    "datetime": _is_datetime,
    "required": lambda value: value != "",
}


def _numbers(arguments: str, count: tuple[int, ...]) -> list[int]:
    values = [int(part) for part in arguments.split(",")]
    if len(values) not in count:
        raise ValueError
    return values


def _constraint(spec: str) -> Callable[[str], bool]:
    match = re.fullmatch(r"(?P<name>[a-z]+)(?:\((?P<args>.*)\))?", spec, re.S)
    if match is None:
        raise RouteTemplateError(f"unreadable route constraint {spec!r}")
    name, arguments = match["name"], match["args"]
    if arguments is None and name in _SIMPLE_CONSTRAINTS:
        return _SIMPLE_CONSTRAINTS[name]
    try:
        if name == "regex" and arguments is not None:
            pattern = re.compile(arguments, re.IGNORECASE)
            return lambda value: pattern.search(value) is not None
        if name == "minlength":
            (low,) = _numbers(arguments or "", (1,))
            return lambda value: len(value) >= low
        if name == "maxlength":
            (high,) = _numbers(arguments or "", (1,))
            return lambda value: len(value) <= high
        if name == "length":
            bounds = _numbers(arguments or "", (1, 2))
            low, high = bounds[0], bounds[-1]
            return lambda value: low <= len(value) <= high
        if name in ("min", "max", "range"):
            bounds = _numbers(arguments or "", (2,) if name == "range" else (1,))
            low = bounds[0] if name != "max" else -(2**63)
            high = bounds[-1] if name != "min" else 2**63
            is_long = _SIMPLE_CONSTRAINTS["long"]
            return lambda value: is_long(value) and low <= int(value) <= high
    except (ValueError, re.error):
        pass
    raise RouteTemplateError(f"unknown or malformed route constraint {spec!r}")


@dataclass
class _Parameter:
    name: str
    group: str
    constraints: list[Callable[[str], bool]] = field(default_factory=list)
    optional: bool = False
    catch_all: bool = False
    default: str | None = None


_PARAMETER = re.compile(r"\{(?!\{)(?P<body>[^{}]*)\}")


def _parse_parameter(body: str, group: str) -> _Parameter:
    match = re.fullmatch(
        r"(?P<stars>\*{0,2})(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<constraints>(?::(?:[a-z]+(?:\([^)]*\))?))*)"
        r"(?:=(?P<default>[^?]*))?(?P<optional>\?)?",
        body,
    )
    if match is None:
        raise RouteTemplateError(f"unreadable route parameter {{{body}}}")
    constraints = re.findall(r":([a-z]+(?:\([^)]*\))?)", match["constraints"])
    return _Parameter(
        name=match["name"],
        group=group,
        constraints=[_constraint(spec) for spec in constraints],
        optional=bool(match["optional"]) or match["default"] is not None or bool(match["stars"]),
        catch_all=bool(match["stars"]),
        default=match["default"],
    )


@dataclass
class RouteTemplate:
    """One compiled template: ``match(path)`` gives the route values, or None."""

    template: str
    pattern: re.Pattern[str]
    parameters: list[_Parameter]
    precedence: str

    @classmethod
    def compile(cls, template: str) -> RouteTemplate:
        text = template.strip("/")
        segments = text.split("/") if text else []
        parameters: list[_Parameter] = []
        regex = ""
        precedence = ""
        for index, segment in enumerate(segments):
            pieces = list(_PARAMETER.finditer(segment))
            if not pieces:
                if "{" in segment or "}" in segment:
                    raise RouteTemplateError(f"unbalanced braces in route segment {segment!r}")
                regex += "/" + re.escape(segment)
                precedence += "1"
                continue
            whole = len(pieces) == 1 and pieces[0].span() == (0, len(segment))
            if whole:
                parameter = _parse_parameter(pieces[0]["body"], f"p{len(parameters)}")
                parameters.append(parameter)
                is_last = index == len(segments) - 1
                if parameter.catch_all and not is_last:
                    raise RouteTemplateError("a catch-all parameter must be the last segment")
                if parameter.optional and not is_last and not parameter.catch_all:
                    raise RouteTemplateError("an optional parameter must be the last segment")
                body = ".*" if parameter.catch_all else "[^/]+"
                capture = f"(?P<{parameter.group}>{body})"
                regex += f"(?:/{capture})?" if parameter.optional else "/" + capture
                precedence += "5" if parameter.catch_all else ("3" if parameter.constraints else "4")
                continue
            # A complex segment: literals and parameters, each parameter at least one character.
            regex += "/"
            position = 0
            for piece in pieces:
                regex += re.escape(segment[position:piece.start()])
                parameter = _parse_parameter(piece["body"], f"p{len(parameters)}")
                if parameter.optional or parameter.catch_all:
                    raise RouteTemplateError("optional and catch-all parameters must fill a whole segment")
                parameters.append(parameter)
                regex += f"(?P<{parameter.group}>[^/]+)"  # greedy: ASP.NET matches complex segments right to left
                position = piece.end()
            regex += re.escape(segment[position:])
            precedence += "2"
        names = [parameter.name.lower() for parameter in parameters]
        if len(set(names)) != len(names):
            raise RouteTemplateError(f"route {template!r} repeats a parameter name")
        return cls(template, re.compile(f"{regex}/?", re.IGNORECASE), parameters, precedence)

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for a raw (still percent-encoded) path such as ``/users/42``, or None."""
        found = self.pattern.fullmatch(path if path.startswith("/") else "/" + path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for parameter in self.parameters:
            raw = found[parameter.group]
            if raw is None:
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            value = unquote(raw)
            if not all(check(value) for check in parameter.constraints):
                return None
            values[parameter.name] = value
        return values
