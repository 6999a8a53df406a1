"""The Teams app package as a customer's Teams admin receives it, and every value it refuses."""

from __future__ import annotations

import copy
import io
import json
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from shared.teams import package
from shared.teams.package import (
    LocalBuildWarning,
    PackageError,
    build_manifest,
    build_package,
    encode_png,
    main,
    read_png,
    render_color_icon,
    render_outline_icon,
    validate_manifest,
)

APP_ID = "5d0c3a0e-8d5f-4a3b-9a51-2b6f0a1c7e11"
BOT_ID = "9e2b7c44-1f0a-4c6d-8b3e-7a5d2c1f0b22"
BASE_URL = "https://connect.coach.example"
ARGS = {"app_id": APP_ID, "bot_id": BOT_ID, "public_base_url": BASE_URL, "version": "1.2.3"}


def _zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _ihdr(data: bytes) -> tuple[int, int, int, int]:
    """Width, height, bit depth and colour type, read straight from the first chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    return struct.unpack(">IIBB", data[16:26])


# --- the package -------------------------------------------------------------------------------------


def test_the_zip_holds_the_manifest_and_both_icons_at_its_root(tmp_path):
    out = build_package(tmp_path / "dist" / "teams-app.zip", **ARGS)

    assert out == tmp_path / "dist" / "teams-app.zip"
    files = _zip(out)
    assert sorted(files) == ["color.png", "manifest.json", "outline.png"]
    manifest = json.loads(files["manifest.json"])
    assert manifest["$schema"] == (
        "https://developer.microsoft.com/en-us/json-schemas/teams/v1.19/MicrosoftTeams.schema.json")
    assert manifest["manifestVersion"] == "1.19"
    assert manifest["id"] == APP_ID
    assert manifest["version"] == "1.2.3"
    assert manifest["validDomains"] == ["connect.coach.example"]
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    bot = manifest["bots"][0]
    assert len(manifest["bots"]) == 1
    assert bot["botId"] == BOT_ID
    assert bot["scopes"] == ["personal"]
    assert (bot["supportsFiles"], bot["isNotificationOnly"]) == (False, False)
    assert bot["commandLists"] == [{"scopes": ["personal"], "commands": [
        {"title": "help", "description": bot["commandLists"][0]["commands"][0]["description"]}]}]
    assert manifest["permissions"] == ["identity", "messageTeamMembers"]
    assert "webApplicationInfo" not in manifest
    assert manifest["developer"] == {
        "name": package.DEFAULT_DEVELOPER_NAME,
        "websiteUrl": BASE_URL,
        "privacyUrl": f"{BASE_URL}/privacy",
        "termsOfUseUrl": f"{BASE_URL}/terms",
    }
    assert manifest["name"]["short"] == "Coach"
    assert len(manifest["description"]["short"]) <= 80
    assert "{{" not in files["manifest.json"].decode()


def test_the_icons_have_the_sizes_teams_requires_and_the_outline_is_white_on_transparent(tmp_path):
    files = _zip(build_package(tmp_path / "teams-app.zip", **ARGS))

    assert _ihdr(files["color.png"])[:2] == (192, 192)
    width, height, depth, colour_type = _ihdr(files["outline.png"])
    assert (width, height, depth) == (32, 32, 8)
    assert colour_type in (4, 6)  # grey + alpha or RGBA: an alpha channel
    outline = read_png(files["outline.png"], decode=True)
    pixels = [row[index:index + 4] for row in outline.rgba for index in range(0, len(row), 4)]
    assert {pixel[:3] for pixel in pixels if pixel[3]} == {b"\xff\xff\xff"}
    alphas = {pixel[3] for pixel in pixels}
    assert 0 in alphas  # a transparent ground
    assert 255 in alphas  # and an opaque glyph
    colour = read_png(files["color.png"], decode=True)
    centre_row = colour.rgba[96]
    assert centre_row[20 * 4:20 * 4 + 4] == bytes((*package.ACCENT_COLOR, 255))  # the background
    assert colour.rgba[96][44 * 4:44 * 4 + 4] == b"\xff\xff\xff\xff"  # the "C"


def test_the_shipped_icons_are_exactly_the_rendered_ones():
    for name, render in (("color.png", render_color_icon), ("outline.png", render_outline_icon)):
        shipped = read_png((package.TEAMS_APP_DIR / name).read_bytes(), decode=True)
        assert shipped == read_png(render(), decode=True), f"{name}: run write_icons() and commit the result"


def test_the_same_inputs_give_the_same_bytes(tmp_path):
    first = build_package(tmp_path / "a.zip", **ARGS).read_bytes()
    second = build_package(tmp_path / "b.zip", **ARGS).read_bytes()
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert all("/" not in entry.filename for entry in archive.infolist())
    assert not list(tmp_path.glob("*.partial"))


def test_given_urls_names_and_upper_case_ids_are_used(tmp_path):
    manifest = json.loads(_zip(build_package(
        tmp_path / "p.zip", app_id=APP_ID.upper(), bot_id=BOT_ID.upper(), public_base_url=BASE_URL + "/",
        version="2.0.10", developer_name='Coach "Co"', website_url="https://coach.example",
        privacy_url="https://coach.example/legal/privacy", terms_url="https://coach.example/legal/terms",
        short_name="Acme Coach"))["manifest.json"])

    assert (manifest["id"], manifest["bots"][0]["botId"]) == (APP_ID, BOT_ID)
    assert manifest["version"] == "2.0.10"
    assert manifest["validDomains"] == ["connect.coach.example"]
    assert manifest["developer"] == {
        "name": 'Coach "Co"', "websiteUrl": "https://coach.example",
        "privacyUrl": "https://coach.example/legal/privacy", "termsOfUseUrl": "https://coach.example/legal/terms"}
    assert manifest["name"]["short"] == "Acme Coach"
    assert manifest["name"]["full"].startswith("Acme Coach")


def test_a_loopback_build_warns_and_keeps_the_host_as_is(tmp_path):
    with pytest.warns(LocalBuildWarning, match="loopback"):
        out = build_package(tmp_path / "local.zip", **{**ARGS, "public_base_url": "http://127.0.0.1:7071"})

    manifest = json.loads(_zip(out)["manifest.json"])
    assert manifest["validDomains"] == ["127.0.0.1"]
    assert manifest["developer"]["privacyUrl"] == "http://127.0.0.1:7071/privacy"
    with pytest.warns(LocalBuildWarning):
        assert build_manifest(**{**ARGS, "public_base_url": "http://localhost:7071"})["validDomains"] == ["localhost"]


def _paeth(left: int, up: int, upper_left: int) -> int:
    estimate = left + up - upper_left
    distances = (abs(estimate - left), abs(estimate - up), abs(estimate - upper_left))
    return (left, up, upper_left)[distances.index(min(distances))]


def _filtered_png(width: int, rows: list[bytes], channels: int, colour_type: int) -> bytes:
    """A PNG whose rows use filter types 0-4 in turn, encoded straight from the specification."""
    data = bytearray()
    previous = bytes(len(rows[0]))
    for number, row in enumerate(rows):
        kind = number % 5
        data.append(kind)
        for index, value in enumerate(row):
            left = row[index - channels] if index >= channels else 0
            up = previous[index]
            upper_left = previous[index - channels] if index >= channels else 0
            predictor = (0, left, up, (left + up) // 2, _paeth(left, up, upper_left))[kind]
            data.append((value - predictor) % 256)
        previous = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, len(rows), 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(data)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize(("colour_type", "channels"), [(6, 4), (4, 2), (2, 3), (0, 1)])
def test_the_png_reader_undoes_every_filter_type(colour_type, channels):
    width = 7
    rows = [bytes((x * 37 + y * 91 + c * 53 + x * y * 11) % 256 for x in range(width) for c in range(channels))
            for y in range(10)]
    image = read_png(_filtered_png(width, rows, channels, colour_type), decode=True)

    def rgba(row: bytes) -> bytes:
        pixels = [row[index:index + channels] for index in range(0, len(row), channels)]
        widen = {4: lambda p: p, 3: lambda p: p + b"\xff", 2: lambda p: bytes((p[0], p[0], p[0], p[1])),
                 1: lambda p: bytes((p[0], p[0], p[0], 255))}[channels]
        return b"".join(widen(pixel) for pixel in pixels)

    assert (image.width, image.height, image.has_alpha) == (width, 10, colour_type in (4, 6))
    assert list(image.rgba) == [rgba(row) for row in rows]


# --- refusals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"app_id": "not-a-guid"}, "app id must be a GUID"),
    ({"app_id": APP_ID + "0"}, "app id must be a GUID"),
    ({"bot_id": "{" + BOT_ID + "}"}, "bot id must be a GUID"),
    ({"bot_id": ""}, "bot id must be a GUID"),
    ({"version": "1.2"}, "version must be MAJOR.MINOR.PATCH"),
    ({"version": "v1.2.3"}, "version must be MAJOR.MINOR.PATCH"),
    ({"version": "1.02.3"}, "version must be MAJOR.MINOR.PATCH"),
    ({"version": "1.2.3-beta"}, "version must be MAJOR.MINOR.PATCH"),
    ({"public_base_url": "http://connect.coach.example"}, "public base URL must be an https:// URL"),
    ({"public_base_url": "connect.coach.example"}, "public base URL must be an https:// URL"),
    ({"public_base_url": "https://203.0.113.7"}, "must use a host name"),
    ({"website_url": "http://coach.example"}, "website URL must be an https:// URL"),
    ({"privacy_url": "ftp://coach.example/privacy"}, "privacy URL must be an https:// URL"),
    ({"terms_url": "/terms"}, "terms of use URL must be an https:// URL"),
    ({"short_name": "x" * 31}, "name.short is 31 characters long; Teams allows 30 at most"),
    ({"short_name": "  "}, "name.short must not be empty"),
    ({"developer_name": "d" * 33}, "developer.name is 33 characters long; Teams allows 32 at most"),
])
def test_invalid_values_are_refused_with_a_message_naming_them(tmp_path, changes, message):
    out = tmp_path / "never.zip"
    with pytest.raises(PackageError, match=message):
        build_package(out, **{**ARGS, **changes})
    assert not out.exists()


@pytest.fixture
def manifest():
    return build_manifest(**ARGS)


@pytest.mark.parametrize(("path", "value", "message"), [
    (("name", "full"), "f" * 101, "name.full is 101 characters long; Teams allows 100 at most"),
    (("description", "short"), "s" * 81, "description.short is 81 characters long; Teams allows 80 at most"),
    (("description", "full"), "f" * 4001, "description.full is 4001 characters long; Teams allows 4000 at most"),
    (("description", "full"), " ", "description.full must not be empty"),
    (("developer",), {"name": "Coach"}, "developer.websiteUrl is missing"),
    (("validDomains",), ["https://connect.coach.example"], "must be a host name, without scheme"),
    (("validDomains",), ["connect.coach.example:443"], "must be a host name, without scheme"),
    (("validDomains",), [], "validDomains must list the public host name"),
    (("bots", 0, "scopes"), ["personal", "team"], "scopes must be"),
    (("bots", 0, "commandLists", 0, "commands", 0, "description"), "d" * 129,
     "description is 129 characters long; Teams allows 128 at most"),
    (("id",), "{{TEAMS_APP_ID}}", "manifest.id still holds a placeholder"),
    (("manifestVersion",), "1.16", "manifestVersion must be 1.19"),
    (("accentColor",), "blue", "accentColor must be a colour"),
    (("icons", "color"), "icon.png", "icons must name color.png and outline.png"),
])
def test_a_manifest_breaking_a_teams_limit_is_refused(manifest, path, value, message):
    broken = copy.deepcopy(manifest)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(PackageError, match=message):
        validate_manifest(broken)


def _app_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "teams_app"
    shutil.copytree(package.TEAMS_APP_DIR, directory)
    return directory


def test_an_unknown_placeholder_in_the_template_is_refused(tmp_path):
    app_dir = _app_dir(tmp_path)
    template = app_dir / "manifest.template.json"
    template.write_text(template.read_text().replace("{{SHORT_NAME}}: coaching", "{{PRODUCT}}: coaching"))
    with pytest.raises(PackageError, match=r"unknown placeholder \{\{PRODUCT\}\}"):
        build_package(tmp_path / "p.zip", **ARGS, app_dir=app_dir)


def _png(width: int, height: int, pixel: bytes) -> bytes:
    return encode_png(width, height, [pixel * width] * height)


@pytest.mark.parametrize(("name", "data", "message"), [
    ("color.png", _png(96, 96, b"\x3a\x5b\xc7\xff"), "color.png is 96x96; Teams requires 192x192"),
    ("outline.png", _png(64, 64, b"\xff\xff\xff\x00"), "outline.png is 64x64; Teams requires 32x32"),
    ("outline.png", _png(32, 32, b"\xff\x00\x00\xff"), "must be white on transparent"),
    ("outline.png", b"GIF89a", "not a PNG file"),
])
def test_icons_of_the_wrong_size_or_colour_are_refused(tmp_path, name, data, message):
    app_dir = _app_dir(tmp_path)
    (app_dir / name).write_bytes(data)
    with pytest.raises(PackageError, match=message):
        build_package(tmp_path / "p.zip", **ARGS, app_dir=app_dir)


def test_an_outline_without_an_alpha_channel_is_refused(tmp_path):
    app_dir = _app_dir(tmp_path)
    rgb = bytearray(_png(32, 32, b"\xff\xff\xff\xff"))
    rgb[8 + 8 + 9] = 2  # IHDR colour type: RGB, no alpha
    rgb[29:33] = struct.pack(">I", zlib.crc32(bytes(rgb[12:29])))
    (app_dir / "outline.png").write_bytes(bytes(rgb))
    with pytest.raises(PackageError, match="outline.png must have an alpha channel"):
        build_package(tmp_path / "p.zip", **ARGS, app_dir=app_dir)


# --- the command line --------------------------------------------------------------------------------


@pytest.fixture
def run(capsys):
    def run(*arguments: str) -> tuple[int, str, str]:
        code = main(["--no-local-settings", *arguments])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_the_cli_builds_the_package_from_its_options(run, tmp_path):
    out = tmp_path / "dist" / "teams-app.zip"
    code, stdout, stderr = run("--out", str(out), "--app-id", APP_ID, "--bot-id", BOT_ID,
                               "--public-base-url", BASE_URL, "--version", "3.1.4", "--short-name", "Acme Coach")
    assert code == 0, stderr
    assert stdout.startswith(f"wrote {out}")
    assert "Upload a custom app" in stderr
    manifest = json.loads(_zip(out)["manifest.json"])
    assert (manifest["id"], manifest["bots"][0]["botId"], manifest["version"]) == (APP_ID, BOT_ID, "3.1.4")
    assert manifest["name"]["short"] == "Acme Coach"


def test_the_cli_takes_missing_options_from_settings(run, tmp_path, monkeypatch):
    monkeypatch.setenv("MicrosoftAppId", BOT_ID)
    monkeypatch.setenv("PUBLIC_BASE_URL", BASE_URL)
    monkeypatch.setenv("TEAMS_APP_VERSION", "4.0.0")
    monkeypatch.setenv("TEAMS_APP_ID", "")
    out = tmp_path / "teams-app.zip"
    code, _, stderr = run("--out", str(out))
    assert code == 0, stderr
    manifest = json.loads(_zip(out)["manifest.json"])
    assert manifest["id"] == BOT_ID  # no TEAMS_APP_ID: the bot's id
    assert (manifest["bots"][0]["botId"], manifest["version"]) == (BOT_ID, "4.0.0")
    assert manifest["validDomains"] == ["connect.coach.example"]

    monkeypatch.setenv("TEAMS_APP_ID", APP_ID)
    monkeypatch.delenv("TEAMS_APP_VERSION")
    assert run("--out", str(out))[0] == 0
    manifest = json.loads(_zip(out)["manifest.json"])
    assert (manifest["id"], manifest["version"]) == (APP_ID, "1.0.0")


def test_the_cli_fills_unset_settings_from_the_local_settings_files(tmp_path, monkeypatch, capsys):
    local_settings = tmp_path / "local.settings.json"
    local_settings.write_text(json.dumps({"IsEncrypted": False, "Values": {
        "MicrosoftAppId": BOT_ID, "PUBLIC_BASE_URL": "http://127.0.0.1:7071"}}))
    monkeypatch.setattr(package, "LOCAL_SETTINGS_FILES", (local_settings, tmp_path / "missing.json"))
    for name in ("MicrosoftAppId", "PUBLIC_BASE_URL"):
        monkeypatch.setenv(name, "")  # restored after the test, though the loader fills them
    out = tmp_path / "teams-app.zip"

    assert main(["--out", str(out)]) == 0
    stderr = capsys.readouterr().err
    assert "warning: the public base URL http://127.0.0.1:7071 is a loopback address" in stderr
    manifest = json.loads(_zip(out)["manifest.json"])
    assert (manifest["bots"][0]["botId"], manifest["validDomains"]) == (BOT_ID, ["127.0.0.1"])


def test_a_missing_bot_id_is_a_usage_error_naming_the_setting_and_the_option(run, tmp_path, monkeypatch):
    monkeypatch.setenv("MicrosoftAppId", "")
    out = tmp_path / "teams-app.zip"
    code, stdout, stderr = run("--out", str(out), "--public-base-url", BASE_URL)
    assert code == 2
    assert stdout == ""
    assert stderr == ("error: the bot id is not set: pass --bot-id or set MicrosoftAppId "
                      "(the Azure Bot's Microsoft App ID)\n")
    assert not out.exists()


def test_a_missing_public_base_url_is_a_usage_error(run, tmp_path):
    code, _, stderr = run("--out", str(tmp_path / "p.zip"), "--bot-id", BOT_ID)
    assert code == 2
    assert stderr == "error: the public base URL is not set: pass --public-base-url or set PUBLIC_BASE_URL\n"


@pytest.mark.parametrize(("arguments", "environment", "message"), [
    (("--version", "1.0"), {}, "error: the version must be MAJOR.MINOR.PATCH"),
    (("--public-base-url", "http://connect.coach.example"), {}, "error: the public base URL must be an https://"),
    ((), {"MicrosoftAppId": "not-a-guid"}, "error: setting MicrosoftAppId is malformed"),
])
def test_invalid_options_and_settings_are_usage_errors(run, tmp_path, monkeypatch, arguments, environment, message):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    base = ["--out", str(tmp_path / "p.zip"), "--public-base-url", BASE_URL]
    if "MicrosoftAppId" not in environment:
        base += ["--bot-id", BOT_ID]
    code, _, stderr = run(*base, *arguments)
    assert code == 2
    assert stderr.startswith(message)
    assert "Traceback" not in stderr
