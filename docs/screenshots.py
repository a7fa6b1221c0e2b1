"""Make the README's screenshots of the board from the demo: ``python docs/screenshots.py [OUT_DIR]``.

Starts ``readiness demo`` itself (a subprocess on a free loopback port, its store in a temporary dir), waits for its
first evaluation, then drives Debian's headless Chromium (chromium + chromium-driver, Selenium; nothing is
downloaded) over the board at 1400 px and 400 px, in Persian and English, and over the page of one site that is
not ready (after opening a remediation action for it through the API, so the owner column has something); writes
PNGs (default ``docs/img/``), most cut to their first ``MAX_HEIGHT`` CSS pixels so the repository stays small. Run it
as root for the demo's real link faults (nftables); without root every link answers. Stops the demo when done.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.monitor.browser import available, browser  # noqa: E402  (the harness the browser tests use)

MAX_HEIGHT = 1800  # CSS pixels: the first screens of a page, where the committee looks
SHOTS = (  # name, width, path, height cap (the English board whole: burn-up and map included)
    ("board-fa-1400", 1400, "/", MAX_HEIGHT),
    ("board-en-1400", 1400, "/?lang=en", 4200),
    ("board-fa-400", 400, "/", MAX_HEIGHT),
    ("board-en-400", 400, "/?lang=en", MAX_HEIGHT),
    ("site-en-1400", 1400, "/sites/{site}?lang=en", MAX_HEIGHT),
    ("site-fa-400", 400, "/sites/{site}", MAX_HEIGHT),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_evaluated(url: str, deadline: float) -> None:
    """Wait until the demo has evaluated once (its summary says when)."""
    import json

    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/api/v1/summary", timeout=5) as r:
                if json.load(r).get("evaluated_at"):
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"the demo at {url} did not evaluate in time")


def _worst_site(url: str) -> str:
    """Return a polling place that is not ready, for the site page's shot (the first one the board lists)."""
    import json

    with urllib.request.urlopen(url + "/api/v1/sites?state=not_ready&kind=polling", timeout=10) as r:
        sites = json.load(r)["sites"]
    return sites[0]["id"] if sites else "ILM-001"


def _open_action(url: str, site: str) -> None:
    """Open one remediation action through the API, as a county's ICT team would: the owner column shows it."""
    import json

    body = json.dumps({"site": site, "owner": "Ilam ICT team", "due": "1405-09-25",
                       "note": "replace the terminals' switch", "by": "screenshots"}).encode()
    request = urllib.request.Request(url + "/api/v1/actions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass


def shoot(driver: Any, url: str, path: Path, width: int, cap: int = MAX_HEIGHT) -> None:
    """Save the page at ``url`` as a PNG ``width`` CSS pixels wide and at most ``cap`` tall."""
    driver.get(url)
    time.sleep(1.0)  # the font and the owners column
    height = min(cap, int(driver.execute_script("return document.documentElement.scrollHeight")))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    try:
        driver.save_screenshot(str(path))  # the viewport, now the page's first ``cap`` pixels (right to left too)
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def main(out: Path) -> int:
    why = available()
    if why:
        print(f"cannot take screenshots: {why}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="readiness-shots-") as tmp:
        demo = subprocess.Popen([sys.executable, "-m", "monitor", "demo", "--port", str(port), "--data-dir",
                                 str(Path(tmp) / "data")], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "demo.log", "w"))  # noqa: SIM115
        try:
            _wait_evaluated(url, time.monotonic() + 120)
            site = _worst_site(url)
            _open_action(url, site)
            for width in (1400, 400):
                driver = browser(width, 1000)
                try:
                    for name, w, path, cap in SHOTS:
                        if w == width:
                            target = out / f"{name}.png"
                            shoot(driver, url + path.format(site=site), target, width, cap)
                            print(f"{target} ({target.stat().st_size // 1024} KiB)")
                finally:
                    driver.quit()
        finally:
            demo.send_signal(signal.SIGINT)  # the demo removes what it set up on Ctrl-C
            try:
                demo.wait(60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img"))
