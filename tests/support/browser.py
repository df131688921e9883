"""Headless Chromium for the dashboard tests: Debian's chromium and chromium-driver
driven by python3-selenium, with a temp user-data dir of its own, --no-sandbox when
run as root (Chromium's sandbox refuses root), and the browser's console kept so that
a test can assert it logged no error. Screenshots go to the build tree's
test-artifacts/ (tests/README.md)."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from pathlib import Path

from .paths import BIN_DIR

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS_DIR = BIN_DIR.parent / "test-artifacts"

try:
    from selenium.webdriver.common.by import By  # python3-selenium
except ImportError:  # browser_missing() says so; the tests skip
    By = None


def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    import importlib.util
    if importlib.util.find_spec("selenium") is None:
        return "python3-selenium is not installed"
    for p in (CHROMIUM, CHROMEDRIVER):
        if not os.access(p, os.X_OK):
            return f"{p} is not installed"
    return None


class Browser:
    """A headless Chromium window of width x height CSS pixels; use as a context
    manager. .driver is the Selenium WebDriver."""

    def __init__(self, width: int = 1280, height: int = 900):
        self.width, self.height = width, height
        self.driver = None
        self.profile = None

    def __enter__(self) -> "Browser":
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.profile = tempfile.mkdtemp(prefix="mailroom-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                  f"--user-data-dir={self.profile}",
                  f"--window-size={self.width},{self.height}"):
            opts.add_argument(a)
        if os.geteuid() == 0:
            opts.add_argument("--no-sandbox")
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=CHROMEDRIVER, log_path=os.devnull)
        try:
            self.driver = webdriver.Chrome(service=service, options=opts)
        except BaseException:
            shutil.rmtree(self.profile, ignore_errors=True)
            raise
        self.resize(self.width, self.height)
        return self

    def resize(self, width: int, height: int) -> None:
        """Makes the viewport (not the window) width x height CSS pixels."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1,
            "mobile": width < 600})
        self.width, self.height = width, height

    def console_errors(self) -> list:
        """The console messages of level SEVERE since the last call."""
        return [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    def screenshot(self, name: str) -> Path:
        """Saves a PNG of the whole page as test-artifacts/<name>.png and returns its
        path: the viewport is made as tall as the page for the shot (Chromium's own
        capture beyond the viewport leaves scrolling boxes blank), then put back."""
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS_DIR / f"{name}.png"
        width, height = self.width, self.height
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        try:
            self.resize(width, max(height, int(size["height"]) + 1))
            shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        finally:
            self.resize(width, height)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def __exit__(self, *exc) -> None:
        try:
            if self.driver:
                self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
