"""Headless Chromium for the web page's tests: Debian's ``chromium`` and ``chromium-driver``,
driven by selenium with the driver's path given, so selenium-manager never runs and nothing is
downloaded. ``.ci/run`` installs both packages when they are missing.

Every test that uses the ``browser`` fixture (tests/conftest.py) fails on a JavaScript console
error (a script error, a refused Content-Security-Policy, a failed request), unless it allowed
that message first; :meth:`Page.screenshot` writes PNGs into docs/images when
``TRACEHOUSE_SCREENSHOTS=1``, else into the test's temporary directory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--window-size=1366,860",
)
# The viewer's time zone in the tests: not UTC, so local times differ from the UTC ones.
TIMEZONE = "Asia/Kolkata"  # UTC+05:30, no daylight saving
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def missing() -> str | None:
    """Why the browser tests cannot run on this machine, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (apt-get install {package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


def start_chromium(profile_dir: str) -> Any:
    """A fresh headless Chromium (its own profile), logging every console message."""
    os.environ["SE_OFFLINE"] = "true"  # should selenium-manager ever be asked: download nothing
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


class Page:
    """The session's browser, for one test."""

    def __init__(self, driver: Any, tmp_path: Path) -> None:
        self.driver = driver
        self.tmp_path = tmp_path
        self.allowed: list[str] = []

    def reset(self) -> None:
        """No cookies (they are per host, not per port: servers of earlier tests would get
        them), nothing left in the log, the test time zone."""
        self.driver.get("about:blank")
        self.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        self.driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": TIMEZONE})
        self.color_scheme("light")
        self.driver.get_log("browser")

    def color_scheme(self, scheme: str) -> None:
        """What the system prefers, light or dark, as the page sees it."""
        features = [{"name": "prefers-color-scheme", "value": scheme}]
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": features})

    def open(self, url: str) -> Page:
        self.driver.get(url)
        return self

    def css(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def one(self, selector: str) -> Any:
        found = self.wait(lambda: self.css(selector), f"an element {selector!r}")
        return found[0]

    def text(self, selector: str = "body") -> str:
        return self.one(selector).text

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        """The first truthy value of ``condition()``, polled until ``timeout``."""
        from selenium.common.exceptions import StaleElementReferenceException

        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except StaleElementReferenceException:  # a live page swapped the element meanwhile: look again
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout:.0f}s for {what}; the page shows:\n{self.text()[:2000]}")
            time.sleep(0.2)

    def allow_console(self, fragment: str) -> None:
        """A console message holding ``fragment`` is expected (a 401 the test provoked)."""
        self.allowed.append(fragment)

    def console_errors(self) -> list[str]:
        entries = self.driver.get_log("browser")
        return [
            e["message"]
            for e in entries
            if e["level"] == "SEVERE" and not any(fragment in e["message"] for fragment in self.allowed)
        ]

    def screenshot(self, name: str) -> Path:
        """A PNG of the window: docs/images/NAME.png with TRACEHOUSE_SCREENSHOTS=1, else in tmp."""
        folder = DOCS_IMAGES if os.environ.get("TRACEHOUSE_SCREENSHOTS") == "1" else self.tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path
