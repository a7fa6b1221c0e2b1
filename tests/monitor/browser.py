"""Headless Debian Chromium through chromedriver (Selenium), offline: nothing is downloaded, no request leaves."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")


def available() -> str:
    """Return "" when a browser can run here, else why not."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for tool in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: chromium, chromium-driver)"
    return ""


def browser(width: int = 1400, height: int = 1000, home: Path | None = None) -> Any:
    """Return a headless Chromium WebDriver at ``width`` CSS pixels (close it with ``.quit()``); ``home`` is the
    HOME it runs with (its ``.pki/nssdb`` holds the certificate authorities it trusts: see `trusting_home`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="board-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    env = None if home is None else {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env=env), options=options)
    driver.set_page_load_timeout(60)
    driver.set_window_size(width, height)
    return driver


def full_screenshot(driver: Any, path: str, width: int) -> None:
    """Save a screenshot of the whole page at ``width`` CSS pixels."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": int(height), "deviceScaleFactor": 1, "mobile": width < 600})
    driver.save_screenshot(path)
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def trusting_home(home: Path, ca_file: Path) -> Path:
    """Make ``home`` a HOME whose NSS database (the one Chromium reads on Linux) trusts ``ca_file`` to issue
    server certificates, and nothing else of ours: the browser then checks a test certificate's chain for real."""
    certutil = shutil.which("certutil")
    if certutil is None:
        raise RuntimeError("certutil is not installed (Debian: libnss3-tools)")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    subprocess.run([certutil, "-N", "-d", f"sql:{db}", "--empty-password"], check=True, capture_output=True)
    subprocess.run([certutil, "-A", "-d", f"sql:{db}", "-t", "C,,", "-n", "readiness test CA", "-i", str(ca_file)],
                   check=True, capture_output=True)
    return home
