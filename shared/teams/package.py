"""The Teams app package: the zip that a customer's Teams admin uploads (Manage apps > Upload a custom app).

Contract:
- ``build_package`` fills ``teams_app/manifest.template.json`` (manifest schema v1.19, one bot, personal
  scope only), validates the result and writes a zip holding exactly ``manifest.json``, ``color.png`` and
  ``outline.png`` at its root, with fixed timestamps (the same inputs give the same bytes);
- the template is parsed as JSON first and ``{{NAME}}`` placeholders are replaced inside its strings, so a
  value is never JSON-escaped by hand; a placeholder the builder does not know, or one left unfilled, is an
  error;
- validation raises ``PackageError`` naming the field and the rule: the app id and bot id are GUIDs
  (normalised to lower case), the version is ``MAJOR.MINOR.PATCH``, URLs are https (http only for
  127.0.0.1/localhost), ``validDomains`` holds the public host name (no scheme, port or path; an IP address
  only for a loopback build), and names, descriptions and commands fit the Teams limits; the icons are PNGs
  of 192x192 (color) and 32x32 with an alpha channel, white on transparent (outline);
- a loopback build (127.0.0.1/localhost) is allowed for local tries but warns (``LocalBuildWarning``):
  Teams refuses such a package;
- this module never reads the environment: ``main`` (``python -m shared.teams.package --out ...``) takes
  missing options from ``shared.config`` after filling unset settings from the local settings files, as the
  ops CLI does. Errors are one line on stderr: exit code 2 for a missing or invalid value, 1 when the
  package could not be read or written.

The icons are generated, not drawn: ``write_icons()`` renders them with the standard library (a white "C"
on a rounded square in the accent colour; the same "C" in white on transparent) and the test checks that
the shipped files hold exactly those pixels.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import re
import struct
import sys
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared import config
from shared.cli import LOCAL_SETTINGS_FILES

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEAMS_APP_DIR = PROJECT_ROOT / "teams_app"
TEMPLATE_NAME = "manifest.template.json"
COLOR_ICON = "color.png"
OUTLINE_ICON = "outline.png"
PACKAGE_FILES = ("manifest.json", COLOR_ICON, OUTLINE_ICON)

DEFAULT_DEVELOPER_NAME = "Enterprise Connections"
DEFAULT_SHORT_NAME = "Coach"
DEFAULT_VERSION = "1.0.0"
ACCENT_COLOR = (0x3A, 0x5B, 0xC7)  # the manifest's accentColor, #3A5BC7

# Limits of the v1.19 manifest schema.
SHORT_NAME_MAX = 30
FULL_NAME_MAX = 100
SHORT_DESCRIPTION_MAX = 80
FULL_DESCRIPTION_MAX = 4000
DEVELOPER_NAME_MAX = 32
URL_MAX = 2048
COMMAND_TITLE_MAX = 32
COMMAND_DESCRIPTION_MAX = 128
COLOR_ICON_SIZE = 192
OUTLINE_ICON_SIZE = 32

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_VERSION = re.compile(r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)")
_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
_HOST_NAME = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ACCENT = re.compile(r"#[0-9a-fA-F]{6}")


class PackageError(ValueError):
    """A value for the package is missing or breaks a Teams rule; the message names it."""


class LocalBuildWarning(UserWarning):
    """The package points at a loopback address: fine to try locally, refused by Teams."""


# --- manifest --------------------------------------------------------------------------------------


def build_manifest(
    *,
    app_id: str,
    bot_id: str,
    public_base_url: str,
    version: str,
    developer_name: str = DEFAULT_DEVELOPER_NAME,
    website_url: str | None = None,
    privacy_url: str | None = None,
    terms_url: str | None = None,
    short_name: str = DEFAULT_SHORT_NAME,
    template: Path | None = None,
) -> dict[str, Any]:
    """The filled and validated manifest.

    ``website_url`` defaults to the public base URL, ``privacy_url`` and ``terms_url`` to its ``/privacy``
    and ``/terms`` pages. Warns (``LocalBuildWarning``) when the public base URL is a loopback address.
    """
    base = _url("public base URL", public_base_url)
    host = urlsplit(base).hostname or ""
    if host in LOOPBACK_HOSTS:
        warnings.warn(
            f"the public base URL {base} is a loopback address: this package is for local tries only "
            "(Teams refuses it); pass the public https:// URL for customers",
            LocalBuildWarning, stacklevel=2)
    elif _is_ip_address(host):
        raise PackageError(f"the public base URL {base} must use a host name: Teams refuses IP addresses "
                           "in validDomains")
    website = _url("website URL", website_url or base)
    values = {
        "TEAMS_APP_ID": _guid("app id", app_id),
        "BOT_ID": _guid("bot id", bot_id),
        "APP_VERSION": _version(version),
        "VALID_DOMAIN": host,
        "PUBLIC_BASE_URL": base,
        "DEVELOPER_NAME": developer_name.strip(),
        "WEBSITE_URL": website,
        "PRIVACY_URL": _url("privacy URL", privacy_url or f"{website}/privacy"),
        "TERMS_URL": _url("terms of use URL", terms_url or f"{website}/terms"),
        "SHORT_NAME": short_name.strip(),
    }
    template_path = template or TEAMS_APP_DIR / TEMPLATE_NAME
    try:
        document = json.loads(template_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PackageError(f"the manifest template {template_path} is not JSON: {error}") from None
    manifest = _fill(document, values)
    validate_manifest(manifest)
    return manifest


def _fill(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise PackageError(f"the manifest template uses an unknown placeholder {{{{{name}}}}}")
            return values[name]

        return _PLACEHOLDER.sub(replace, node)
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _fill(value, values) for key, value in node.items()}
    return node


def validate_manifest(manifest: Mapping[str, Any]) -> None:
    """Raise ``PackageError`` for the first rule the manifest breaks (see the module docstring)."""
    for path, text in _strings(manifest):
        if "{{" in text:
            raise PackageError(f"{path} still holds a placeholder: {text!r}")
    if manifest.get("manifestVersion") != "1.19":
        raise PackageError("manifestVersion must be 1.19")
    _guid("id (the app id)", _field(manifest, "id"))
    _version(_field(manifest, "version"))
    developer = _field(manifest, "developer")
    _length("developer.name", _field(developer, "name", "developer."), DEVELOPER_NAME_MAX)
    for key in ("websiteUrl", "privacyUrl", "termsOfUseUrl"):
        _url(f"developer.{key}", _field(developer, key, "developer."))
    name = _field(manifest, "name")
    _length("name.short", _field(name, "short", "name."), SHORT_NAME_MAX)
    _length("name.full", _field(name, "full", "name."), FULL_NAME_MAX)
    description = _field(manifest, "description")
    _length("description.short", _field(description, "short", "description."), SHORT_DESCRIPTION_MAX)
    _length("description.full", _field(description, "full", "description."), FULL_DESCRIPTION_MAX)
    icons = _field(manifest, "icons")
    if (icons.get("color"), icons.get("outline")) != (COLOR_ICON, OUTLINE_ICON):
        raise PackageError(f"icons must name {COLOR_ICON} and {OUTLINE_ICON}, the files the package holds")
    if not _ACCENT.fullmatch(str(manifest.get("accentColor", ""))):
        raise PackageError("accentColor must be a colour such as #3A5BC7")
    _validate_bots(manifest.get("bots"))
    domains = manifest.get("validDomains")
    if not isinstance(domains, list) or not domains:
        raise PackageError("validDomains must list the public host name")
    for domain in domains:
        if not isinstance(domain, str) or not (_HOST_NAME.fullmatch(domain) or domain in LOOPBACK_HOSTS):
            raise PackageError(f"validDomains entry {domain!r} must be a host name, without scheme, port or path")


def _validate_bots(bots: object) -> None:
    if not isinstance(bots, list) or len(bots) != 1:
        raise PackageError("bots must hold exactly one bot")
    bot = bots[0]
    _guid("bots[0].botId (the bot id)", _field(bot, "botId", "bots[0]."))
    if bot.get("scopes") != ["personal"]:
        raise PackageError("bots[0].scopes must be [\"personal\"]: the bot is one-to-one")
    for index, command_list in enumerate(bot.get("commandLists", [])):
        for number, command in enumerate(command_list.get("commands", [])):
            where = f"bots[0].commandLists[{index}].commands[{number}]"
            _length(f"{where}.title", _field(command, "title", where + "."), COMMAND_TITLE_MAX)
            _length(f"{where}.description", _field(command, "description", where + "."), COMMAND_DESCRIPTION_MAX)


def _strings(node: Any, path: str = "manifest") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _strings(item, f"{path}[{index}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}")


def _field(parent: Any, key: str, prefix: str = "") -> Any:
    if not isinstance(parent, Mapping) or parent.get(key) is None:
        raise PackageError(f"{prefix}{key} is missing from the manifest")
    return parent[key]


def _length(what: str, value: object, limit: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise PackageError(f"{what} must not be empty")
    if len(value) > limit:
        raise PackageError(f"{what} is {len(value)} characters long; Teams allows {limit} at most")


def _guid(what: str, value: str) -> str:
    if not isinstance(value, str) or not _GUID.fullmatch(value.strip()):
        raise PackageError(f"the {what} must be a GUID such as 00000000-0000-0000-0000-000000000000, "
                           f"not {value!r}")
    return value.strip().lower()


def _version(value: str) -> str:
    if not isinstance(value, str) or not _VERSION.fullmatch(value.strip()):
        raise PackageError(f"the version must be MAJOR.MINOR.PATCH such as 1.0.0, not {value!r}")
    return value.strip()


def _url(what: str, value: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    parts = urlsplit(text)
    loopback = parts.hostname in LOOPBACK_HOSTS
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise PackageError(f"the {what} must be an https:// URL (http:// only for 127.0.0.1 or localhost), "
                           f"not {value!r}")
    if len(text) > URL_MAX:
        raise PackageError(f"the {what} is longer than {URL_MAX} characters")
    return text.rstrip("/")


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# --- the zip -----------------------------------------------------------------------------------------


def build_package(
    output: Path,
    *,
    app_id: str,
    bot_id: str,
    public_base_url: str,
    version: str,
    developer_name: str = DEFAULT_DEVELOPER_NAME,
    website_url: str | None = None,
    privacy_url: str | None = None,
    terms_url: str | None = None,
    short_name: str = DEFAULT_SHORT_NAME,
    app_dir: Path | None = None,
) -> Path:
    """Write the package zip to ``output`` (parents created) and return its path.

    ``app_dir`` holds the template and the icons (default: the repository's ``teams_app/``). Nothing is
    written when a value or an icon is invalid.
    """
    source = app_dir or TEAMS_APP_DIR
    with warnings.catch_warnings():
        warnings.simplefilter("always", LocalBuildWarning)
        manifest = build_manifest(
            app_id=app_id, bot_id=bot_id, public_base_url=public_base_url, version=version,
            developer_name=developer_name, website_url=website_url, privacy_url=privacy_url,
            terms_url=terms_url, short_name=short_name, template=source / TEMPLATE_NAME)
    color = (source / COLOR_ICON).read_bytes()
    outline = (source / OUTLINE_ICON).read_bytes()
    validate_icons(color, outline)
    contents = {
        "manifest.json": (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
        COLOR_ICON: color,
        OUTLINE_ICON: outline,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name in PACKAGE_FILES:
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, contents[name])
    partial.replace(output)
    return output


# --- PNG ---------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (8-bit, no palette)


@dataclass(frozen=True)
class PngImage:
    """The header of a PNG and, when decoded, its pixels as RGBA rows."""

    width: int
    height: int
    bit_depth: int
    color_type: int
    has_alpha: bool
    rgba: tuple[bytes, ...] = ()


def read_png(data: bytes, *, decode: bool = False) -> PngImage:
    """Parse the IHDR chunk (and with ``decode``, the pixels of an 8-bit, non-interlaced, non-palette PNG)."""
    if not data.startswith(_PNG_SIGNATURE):
        raise PackageError("not a PNG file")
    chunks = list(_chunks(data))
    if not chunks or chunks[0][0] != b"IHDR":
        raise PackageError("a PNG file must start with its IHDR chunk")
    width, height, bit_depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    has_alpha = color_type in (4, 6) or any(kind == b"tRNS" for kind, _ in chunks)
    if not decode:
        return PngImage(width, height, bit_depth, color_type, has_alpha)
    if bit_depth != 8 or color_type not in _CHANNELS or interlace:
        raise PackageError("only 8-bit, non-interlaced greyscale or RGB(A) PNGs can be decoded")
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    channels = _CHANNELS[color_type]
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        row = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), previous, channels)
        rows.append(_to_rgba(bytes(row), channels))
        previous = row
    return PngImage(width, height, bit_depth, color_type, has_alpha, tuple(rows))


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    offset = len(_PNG_SIGNATURE)
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        yield kind, data[offset + 8:offset + 8 + length]
        offset += 12 + length
        if kind == b"IEND":
            return


def _unfilter(kind: int, row: bytearray, previous: bytearray, step: int) -> bytearray:
    for index in range(len(row)):
        left = row[index - step] if index >= step else 0
        up = previous[index]
        upper_left = previous[index - step] if index >= step else 0
        if kind == 1:
            row[index] = (row[index] + left) & 0xFF
        elif kind == 2:
            row[index] = (row[index] + up) & 0xFF
        elif kind == 3:
            row[index] = (row[index] + (left + up) // 2) & 0xFF
        elif kind == 4:
            estimate = left + up - upper_left
            nearest = min((abs(estimate - left), 0, left), (abs(estimate - up), 1, up),
                          (abs(estimate - upper_left), 2, upper_left))[2]
            row[index] = (row[index] + nearest) & 0xFF
        elif kind != 0:
            raise PackageError(f"unknown PNG filter type {kind}")
    return row


def _to_rgba(row: bytes, channels: int) -> bytes:
    if channels == 4:
        return row
    out = bytearray()
    for index in range(0, len(row), channels):
        pixel = row[index:index + channels]
        if channels == 1:
            out += bytes((pixel[0], pixel[0], pixel[0], 255))
        elif channels == 2:
            out += bytes((pixel[0], pixel[0], pixel[0], pixel[1]))
        else:
            out += pixel + b"\xff"
    return bytes(out)


def encode_png(width: int, height: int, rgba_rows: Sequence[bytes]) -> bytes:
    """An 8-bit RGBA PNG of the given rows (each ``width * 4`` bytes), unfiltered, deflated."""
    if len(rgba_rows) != height or any(len(row) != width * 4 for row in rgba_rows):
        raise ValueError("rgba_rows must hold height rows of width * 4 bytes")

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + row for row in rgba_rows), 9)
    return _PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def validate_icons(color: bytes, outline: bytes) -> None:
    """Raise ``PackageError`` unless the icons have the sizes and colours Teams requires."""
    color_image = read_png(color)
    if (color_image.width, color_image.height) != (COLOR_ICON_SIZE, COLOR_ICON_SIZE):
        raise PackageError(f"{COLOR_ICON} is {color_image.width}x{color_image.height}; Teams requires "
                           f"{COLOR_ICON_SIZE}x{COLOR_ICON_SIZE}")
    outline_image = read_png(outline)
    if (outline_image.width, outline_image.height) != (OUTLINE_ICON_SIZE, OUTLINE_ICON_SIZE):
        raise PackageError(f"{OUTLINE_ICON} is {outline_image.width}x{outline_image.height}; Teams requires "
                           f"{OUTLINE_ICON_SIZE}x{OUTLINE_ICON_SIZE}")
    if not outline_image.has_alpha:
        raise PackageError(f"{OUTLINE_ICON} must have an alpha channel (white on transparent)")
    if outline_image.color_type in (4, 6) and outline_image.bit_depth == 8:
        for row in read_png(outline, decode=True).rgba:
            for index in range(0, len(row), 4):
                if row[index + 3] and row[index:index + 3] != b"\xff\xff\xff":
                    raise PackageError(f"{OUTLINE_ICON} must be white on transparent: it has coloured pixels")


# --- the icons: a white "C" ----------------------------------------------------------------------------

_SUBSAMPLES = 4  # per axis: 16 samples a pixel smooth the edges


def _c_glyph(
    cx: float, cy: float, outer: float, inner: float, opening_degrees: float
) -> Callable[[float, float], bool]:
    """Whether a point lies on a ring open to the right, with round ends."""
    half_opening = math.radians(opening_degrees) / 2
    middle = (outer + inner) / 2
    cap = (outer - inner) / 2
    ends = [(cx + middle * math.cos(angle), cy + middle * math.sin(angle)) for angle in (half_opening, -half_opening)]

    def inside(x: float, y: float) -> bool:
        dx, dy = x - cx, y - cy
        distance = math.hypot(dx, dy)
        if inner <= distance <= outer and abs(math.atan2(dy, dx)) >= half_opening:
            return True
        return any(math.hypot(x - ex, y - ey) <= cap for ex, ey in ends)

    return inside


def _rounded_square(size: float, radius: float) -> Callable[[float, float], bool]:
    def inside(x: float, y: float) -> bool:
        nearest_x = min(max(x, radius), size - radius)
        nearest_y = min(max(y, radius), size - radius)
        return math.hypot(x - nearest_x, y - nearest_y) <= radius

    return inside


def _coverage(inside: Callable[[float, float], bool], x: int, y: int) -> int:
    hits = sum(inside(x + (i + 0.5) / _SUBSAMPLES, y + (j + 0.5) / _SUBSAMPLES)
               for i in range(_SUBSAMPLES) for j in range(_SUBSAMPLES))
    return round(255 * hits / (_SUBSAMPLES * _SUBSAMPLES))


def render_color_icon() -> bytes:
    """192x192: a white "C" on a rounded square in the accent colour, transparent corners."""
    size = COLOR_ICON_SIZE
    background = _rounded_square(size, 40)
    glyph = _c_glyph(size / 2, size / 2, 54, 32, 84)
    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            alpha = _coverage(background, x, y)
            white = _coverage(glyph, x, y) if alpha else 0
            row += bytes(round((channel * (255 - white) + 255 * white) / 255) for channel in ACCENT_COLOR)
            row.append(alpha)
        rows.append(bytes(row))
    return encode_png(size, size, rows)


def render_outline_icon() -> bytes:
    """32x32: the same "C" in white on transparent, its edges smoothed with alpha."""
    size = OUTLINE_ICON_SIZE
    glyph = _c_glyph(size / 2, size / 2, 12, 7, 84)
    rows = [b"".join(b"\xff\xff\xff" + bytes((_coverage(glyph, x, y),)) for x in range(size)) for y in range(size)]
    return encode_png(size, size, rows)


def write_icons(directory: Path | None = None) -> None:
    """Render both icons into ``directory`` (default ``teams_app/``); the files are committed."""
    target = directory or TEAMS_APP_DIR
    (target / COLOR_ICON).write_bytes(render_color_icon())
    (target / OUTLINE_ICON).write_bytes(render_outline_icon())


# --- command line --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shared.teams.package",
        description="Write the Teams app package that customers' Teams admins upload "
                    "(Teams admin center: Manage apps > Upload a custom app).")
    parser.add_argument("--out", type=Path, required=True, help="the zip to write, e.g. dist/teams-app.zip")
    parser.add_argument("--app-id", help="the Teams app id (a GUID); default TEAMS_APP_ID, else the bot id")
    parser.add_argument("--bot-id", help="the Azure Bot's Microsoft App ID (a GUID); default MicrosoftAppId")
    parser.add_argument("--public-base-url", help="the app's public https:// origin; default PUBLIC_BASE_URL")
    parser.add_argument("--version", help=f"the app version, MAJOR.MINOR.PATCH; default TEAMS_APP_VERSION, "
                                          f"else {DEFAULT_VERSION}")
    parser.add_argument("--developer-name", default=DEFAULT_DEVELOPER_NAME, help="shown as the app's developer")
    parser.add_argument("--website-url", help="the developer's website; default the public base URL")
    parser.add_argument("--privacy-url", help="the privacy statement; default <website>/privacy")
    parser.add_argument("--terms-url", help="the terms of use; default <website>/terms")
    parser.add_argument("--short-name", default=DEFAULT_SHORT_NAME, help="the app's name in Teams (30 at most)")
    parser.add_argument("--no-local-settings", action="store_true",
                        help="do not fill unset settings from local.settings.json and .local/dev-settings.json")
    return parser


def _from_settings(args: argparse.Namespace) -> dict[str, str]:
    """The options, with what was not given taken from settings; raises PackageError naming what is missing."""
    bot_id = args.bot_id or config.MICROSOFT_APP_ID.optional()
    if not bot_id:
        raise PackageError(f"the bot id is not set: pass --bot-id or set {config.MICROSOFT_APP_ID.name} "
                           "(the Azure Bot's Microsoft App ID)")
    public_base_url = args.public_base_url or config.public_base_url()
    if not public_base_url:
        raise PackageError(f"the public base URL is not set: pass --public-base-url or set "
                           f"{config.PUBLIC_BASE_URL.name}")
    return {
        "app_id": args.app_id or config.TEAMS_APP_ID.optional() or bot_id,
        "bot_id": bot_id,
        "public_base_url": public_base_url,
        "version": args.version or config.TEAMS_APP_VERSION.optional() or DEFAULT_VERSION,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.no_local_settings:
        config.load_local_settings(*LOCAL_SETTINGS_FILES)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LocalBuildWarning)
            values = _from_settings(args)
            path = build_package(args.out, developer_name=args.developer_name, website_url=args.website_url,
                                 privacy_url=args.privacy_url, terms_url=args.terms_url, short_name=args.short_name,
                                 **values)
    except (PackageError, config.ConfigurationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(f"wrote {path} (app id {values['app_id']}, bot id {values['bot_id']}, version {values['version']})")
    print("upload it in the Teams admin center: Manage apps > Upload a custom app", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
