"""Headless Chromium for tests: open a local page, read its DOM, list what it requested.

Drives the system Chromium (Debian packages ``chromium`` and ``chromium-driver``) through
selenium; nothing is downloaded. Name resolution is switched off, so a page that tries to
reach the network fails fast, and the attempt still shows in the performance log.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,900",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
LOCAL = ("file:", "data:", "about:")

# Every image, its natural width (0: did not load) and every section with its heading.
PAGE_STATE = """
return {
  images: Array.from(document.images).map(i => [i.currentSrc || i.src,
                                                  i.complete ? i.naturalWidth : 0]),
  sections: Array.from(document.querySelectorAll("section")).map(
      s => [s.id, (s.querySelector("h2") || {}).textContent || ""]),
};
"""


@dataclass
class Page:
    sections: list[tuple[str, str]]
    images: list[str]
    image_widths: list[int]
    broken_images: list[str]
    external_requests: list[str]
    console_errors: list[str]


class Browser:
    def __init__(self, driver):
        self.driver = driver

    def open(self, path: Path) -> Page:
        """Load ``path``, wait until every image has settled, and describe the page."""
        from selenium.webdriver.support.ui import WebDriverWait

        uri = Path(path).resolve().as_uri()
        self.driver.get(uri)
        WebDriverWait(self.driver, 30).until(lambda d: d.execute_script(
            "return document.readyState === 'complete' && "
            "Array.from(document.images).every(i => i.complete)"))
        state = self.driver.execute_script(PAGE_STATE)
        images = [src for src, _ in state["images"]]
        widths = [int(w) for _, w in state["images"]]
        return Page(
            sections=[tuple(s) for s in state["sections"]],
            images=images,
            image_widths=widths,
            broken_images=[src for src, w in zip(images, widths, strict=True) if w == 0],
            external_requests=self._requests(uri),
            console_errors=[e["message"] for e in self.driver.get_log("browser")
                            if e["level"] == "SEVERE"],
        )

    def _requests(self, uri: str) -> list[str]:
        """URLs the page at ``uri`` asked for that are not on this machine (or inline).

        Only requests made by that page count: the browser's own start page is not ours.
        """
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] != "Network.requestWillBeSent":
                continue
            params = message["params"]
            url = params["request"]["url"]
            if params.get("documentURL") == uri and not url.startswith(LOCAL):
                urls.append(url)
        return list(dict.fromkeys(urls))

    def screenshot(self, path: Path) -> None:
        """The whole page, not only the window, as PNG."""
        size = self.driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
        })
        Path(path).write_bytes(base64.b64decode(shot["data"]))


@contextlib.contextmanager
def browser_or_skip(profile: Path):
    """A :class:`Browser` on a fresh profile; skip when Chromium is not installed (fail in
    CI, where ``.ci/run`` installs it, so the check never goes quietly missing)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        reason = "Chromium not installed: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (.ci/run installs it)")
        pytest.skip(reason)
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        driver.set_page_load_timeout(30)
        yield Browser(driver)
    finally:
        driver.quit()
