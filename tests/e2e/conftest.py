"""Browser tests (``pytest.mark.browser``): Debian's headless Chromium driven by selenium.

Contract:
- a test marked ``browser`` skips, with the apt-get command in the reason, when /usr/bin/chromium or
  /usr/bin/chromedriver is missing; when the environment variable ``CI`` is set (non-empty) it fails
  instead, so that a CI image without the browser cannot pass by skipping;
- the ``chromium`` fixture opens browsers (``chromium(*extra_arguments)``) from those two paths only,
  so selenium-manager never looks for or downloads a driver, and quits them after the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
NOT_INSTALLED = "Chromium and chromium-driver are not installed: apt-get install chromium chromium-driver"
# --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start;
# --disable-dev-shm-usage: containers often have a 64 MB /dev/shm, too small for the renderer.
BASE_ARGUMENTS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Runs before the test's fixtures, so a missing browser costs no Postgres or host start."""
    if item.get_closest_marker("browser") is None:
        return
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if not missing:
        return
    reason = f"{NOT_INSTALLED} (missing {', '.join(missing)})"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the browser tests must run, not skip", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Callable[..., WebDriver]]:
    """``chromium(*extra_arguments)``: a fresh headless browser (its own profile: no cookies carried over)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers: list[WebDriver] = []

    def open_browser(*extra_arguments: str) -> WebDriver:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in (*BASE_ARGUMENTS, *extra_arguments):
            options.add_argument(argument)
        log = tmp_path / f"chromedriver-{len(drivers)}.log"
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER), log_output=str(log)), options=options)
        driver.set_page_load_timeout(30)
        drivers.append(driver)
        return driver

    yield open_browser
    for driver in drivers:
        driver.quit()
