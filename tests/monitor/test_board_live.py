"""The board in a real headless Chromium against a real service: a site's page with its timeline from the event
store, the live refresh swapping a figure without a reload, an action opened through the API showing in the
owner / open action column, and access control and TLS driven from the browser. Each test saves its screenshot
under its temporary directory."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.runtime.actions import ActionDesk
from monitor.runtime.readback import StoreHistory
from monitor.runtime.recorder import Recorder
from monitor.runtime.snapshot import Snapshot
from monitor.store.events import EventStore, Transition
from monitor.web import chrome
from monitor.web.app import make_app
from tests.helpers import free_port, require, require_tool
from tests.monitor.board_sample import sample_snapshot
from tests.monitor.browser import available, browser, full_screenshot, trusting_home

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _browser_here() -> None:
    """Skip without Chromium and its driver, except under CI=true, where these tests must run."""
    require(not available(), available())
_ASCII = str.maketrans("۰۱۲۳۴۵۶۷۸۹٫٪", "0123456789.%")
HOUR = 3600.0


class Loop:
    """An asyncio loop in a thread, for a server the (blocking) WebDriver talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class Served:
    url: str
    current: dict[str, Snapshot]
    store: EventStore
    site: str  # a site with recorded history


def _recorded_store(data: Path, snap: Snapshot, site: str) -> EventStore:
    """A store holding two days of one site's (and its primary link's) history, then the snapshot as recorded."""
    store = EventStore(data)
    store.open()
    version = snap.config.version
    store.append_config(snap.at - 3 * 86400, version, snap.config.record())
    steps = [(-48, "ready", ()), (-30, "not_ready", ("primary.down",)), (-20, "degraded", ("backup.down",)),
             (-6, "ready", ())]
    for hours, state, reasons in steps:
        link = "down" if reasons == ("primary.down",) else "up"
        store.append([Transition(snap.at + hours * HOUR, f"site:{site}", None, state, reasons, version),
                      Transition(snap.at + hours * HOUR, f"link:{site}/primary", None, link,
                                 reasons if link == "down" else (), version)])
    assert store.flush()
    Recorder(store)(snap, None)  # the sample as the service would record it now
    assert store.flush()
    return store


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setattr(chrome, "REFRESH_SECONDS", 1)  # the page polls every second: the test waits seconds
    snap = sample_snapshot(now=time.time())
    site = next(s.id for s in snap.config.reported_sites() if s.id.startswith("ILM-") and s.kind == "polling")
    store = _recorded_store(tmp_path / "data", snap, site)
    current = {"snap": snap}
    desk = ActionDesk(store, lambda: current["snap"].config, time.time)
    history = StoreHistory(lambda: current["snap"].config, store.data_dir, refresh_seconds=0)
    loop = Loop()
    runner = web.AppRunner(make_app(lambda: current["snap"], desk=desk, history=history))
    loop.run(runner.setup())
    port = free_port()
    loop.run(web.TCPSite(runner, "127.0.0.1", port).start())
    try:
        yield Served(f"http://127.0.0.1:{port}", current, store, site)
    finally:
        loop.run(runner.cleanup())
        loop.stop()
        store.close()


@pytest.fixture
def driver() -> Iterator[Any]:
    d = browser(1400)
    yield d
    d.quit()


def _until(check: Any, timeout: float = 30.0) -> Any:
    """Return ``check()`` once truthy (or its last value after ``timeout``); an element the page swapped out under
    the check (the live refresh replaces the board) is looked up again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    end = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (StaleElementReferenceException, NoSuchElementException):
            value = None
        if value or time.monotonic() > end:
            return value
        time.sleep(0.2)


def test_site_page_shows_its_timeline(served: Served, driver: Any, tmp_path: Path) -> None:
    """/sites/{id}: the state strip holds the recorded changes, the change list says them in words; unknown → 404."""
    from selenium.webdriver.common.by import By

    driver.get(f"{served.url}/sites/{served.site}?lang=en")
    full_screenshot(driver, str(tmp_path / "site-en-1400.png"), 1400)
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith(served.site)
    strip = driver.find_elements(By.CSS_SELECTOR, f'#timeline .strip-wide rect[data-entity="site:{served.site}"]')
    states = [r.get_attribute("data-state") for r in strip]
    assert states[:4] == ["ready", "not_ready", "degraded", "ready"], states
    link_rects = f'#timeline .strip-wide rect[data-entity="link:{served.site}/primary"]'
    link = {r.get_attribute("data-state") for r in driver.find_elements(By.CSS_SELECTOR, link_rects)}
    assert {"up", "down"} <= link
    changes = driver.find_element(By.CSS_SELECTOR, "table.changes").text
    assert "primary link: is down" in changes and "backup link: is down" in changes
    assert re.search(r"\d+ (Azar|Dey|Aban) 14\d\d", changes) and re.search(r"\(\d+ \w{3} 20\d\d\)", changes)
    limits = driver.find_element(By.CSS_SELECTOR, '#links tr[data-link="primary"] [data-measure="loss"]').text
    assert "(max 1.0%)" in limits  # fiber's threshold from the policy
    # Persian first, same page
    driver.get(f"{served.url}/sites/{served.site}")
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("dir") == "rtl"
    assert driver.find_elements(By.CSS_SELECTOR, f'#timeline .strip-wide rect[data-entity="site:{served.site}"]')
    with urllib.request.urlopen(f"{served.url}/sites/{served.site}") as r:
        assert r.status == 200
    try:
        urllib.request.urlopen(f"{served.url}/sites/NO-SUCH-SITE")
        raise AssertionError("an unknown site must be a 404")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404 and "NO-SUCH-SITE" in exc.read().decode()
    # The worst-sites table links to it
    driver.get(f"{served.url}/?lang=en")
    href = driver.find_element(By.CSS_SELECTOR, "#sites a.site-link").get_attribute("href")
    assert "/sites/" in href


def test_live_refresh_swaps_the_figures_without_a_reload(served: Served, driver: Any, tmp_path: Path) -> None:
    """A new evaluation is published: within a few polls the share shows it, in the same page (no reload), and equals
    /api/v1/summary fetched by the page at that moment; "updated N s ago" ticks."""
    from selenium.webdriver.common.by import By

    driver.get(f"{served.url}/?lang=en")
    driver.execute_script("window.__same_page = 42")
    before = driver.find_element(By.ID, "share").text
    new = sample_snapshot(seed=3, now=served.current["snap"].at + 30)
    after = new.figures().province.share_text()
    assert after != before, "the second sample must differ to show a swap"
    served.current["snap"] = new
    assert _until(lambda: driver.find_element(By.ID, "share").text == after), driver.find_element(By.ID, "share").text
    assert driver.execute_script("return window.__same_page") == 42  # swapped in place, not reloaded
    summary = driver.execute_async_script(
        "const done = arguments[0]; fetch('/api/v1/summary').then(r => r.json()).then(done)")
    shown = {s: int(driver.find_element(By.CSS_SELECTOR, f'[data-figure="{s}"]').text) for s in
             ("ready", "degraded", "not_ready", "unknown")}
    assert shown == {s: summary["summary"][s] for s in shown}
    assert driver.find_element(By.ID, "share").text == f"{summary['summary']['ready_share'] * 100:.1f}%"
    assert re.fullmatch(r"\d+ (s|min) ago", driver.find_element(By.ID, "ago").text)
    full_screenshot(driver, str(tmp_path / "board-after-refresh.png"), 1400)


def test_the_board_prints_on_a4(served: Served, driver: Any, tmp_path: Path) -> None:
    """Printed (Chromium's own print to PDF, the page's CSS deciding the paper): A4 portrait pages, the navigation
    and the ticking "ago" left out, and the headline, the share and every county of the table on paper."""
    import base64
    import subprocess

    from selenium.webdriver.common.by import By

    require_tool("pdfinfo")
    require_tool("pdftotext")
    driver.get(f"{served.url}/?lang=en")
    share = driver.find_element(By.ID, "share").text
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    hidden = driver.execute_script(
        "return ['header nav', '#ago'].map(s => getComputedStyle(document.querySelector(s)).display)")
    assert hidden == ["none", "none"]
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    pdf = tmp_path / "board.pdf"
    printed = driver.execute_cdp_cmd("Page.printToPDF", {"preferCSSPageSize": True, "printBackground": True})
    pdf.write_bytes(base64.b64decode(printed["data"]))
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, timeout=60, check=True).stdout
    size = re.search(r"^Page size:\s+([\d.]+) x ([\d.]+) pts", info, re.M)
    assert size and abs(float(size[1]) - 595.3) < 1 and abs(float(size[2]) - 841.9) < 1, info  # A4, portrait
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M)[1])  # type: ignore[index]
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60,
                          check=True).stdout
    # (the headline is the programme's Persian name: pdftotext reorders Persian ligatures, so it is not compared)
    assert share in text and "Last updated" in text and "Counties (worst first)" in text
    counties = {s.county for s in served.current["snap"].config.reported_sites()}
    assert counties and all(c in text for c in counties), sorted(c for c in counties if c not in text)
    assert 1 <= pages <= 12, pages


def test_an_action_opened_through_the_api_shows_in_the_owner_column(served: Served, driver: Any,
                                                                     tmp_path: Path) -> None:
    """POST /api/v1/actions for a site on the worst-sites list: its row shows the owner and the open action."""
    from selenium.webdriver.common.by import By

    driver.get(f"{served.url}/?lang=en")
    row = driver.find_element(By.CSS_SELECTOR, '#sites tr[data-state="not_ready"]')
    site = row.get_attribute("data-site")
    body = json.dumps({"site": site, "owner": "Reza Karimi", "due": "1405-09-30", "note": "replace the ONT"}).encode()
    request = urllib.request.Request(served.url + "/api/v1/actions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as r:
        assert r.status == 200
    cell = f'#sites tr[data-site="{site}"] td.owner'
    assert _until(lambda: "Reza Karimi — replace the ONT" in driver.find_element(By.CSS_SELECTOR, cell).text)
    assert driver.find_element(By.CSS_SELECTOR, cell).is_displayed()
    full_screenshot(driver, str(tmp_path / "board-with-action.png"), 1400)
    driver.get(f"{served.url}/sites/{site}?lang=en")  # the site's own page, before any new evaluation
    assert _until(lambda: "Reza Karimi" in driver.find_element(By.CSS_SELECTOR, "#owner .act").text)
    assert not driver.find_element(By.CSS_SELECTOR, "#owner .no-act").is_displayed()


# -- access control, from the browser ------------------------------------------------------------------------------


def _statuses(d: Any, url_part: str) -> list[int]:
    """The HTTP statuses the browser received for requests whose URL ends with ``url_part``."""
    out = []
    for entry in d.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.responseReceived" and msg["params"]["response"]["url"].endswith(url_part):
            out.append(msg["params"]["response"]["status"])
    return out


def _post_reload(d: Any) -> int:
    return int(d.execute_async_script(
        "const done = arguments[0]; fetch('/-/reload', {method: 'POST'}).then(r => done(r.status), e => done(-1))"))


def test_access_control_and_tls_in_the_browser(tmp_path: Path) -> None:
    """With a web config (bcrypt users, admins, TLS from a test CA): an anonymous page load gets 401; a viewer sees
    the board but a fetch() POST /-/reload from it gets 403; an admin's succeeds. The browser trusts the test CA
    (an NSS database of its own: the chain is checked for real, no certificate error is ignored), and a browser
    that does not trust it refuses the page."""
    from selenium.webdriver.common.by import By

    from monitor.demo.tls import TestCA
    from tests.monitor.test_access import PASSWORDS, serve, write_web_config

    require_tool("certutil")  # Debian: libnss3-tools, to make the browser trust the test CA
    ca = TestCA(tmp_path / "pki")
    ca.issue("board", ["127.0.0.1"])
    web_path = write_web_config(tmp_path, tls_server_config={"cert_file": "pki/board.pem", "key_file": "pki/board.key"})
    loop = Loop()
    runner, url = loop.run(serve(tmp_path, web_path))
    host = url.removeprefix("https://")
    home = trusting_home(tmp_path / "home", ca.ca_file)
    d = browser(1400, home=home)
    try:
        d.get(url + "/")  # anonymous
        assert 401 in _statuses(d, host + "/")
        assert not d.find_elements(By.ID, "board")
        d.save_screenshot(str(tmp_path / "anonymous-401.png"))
        # Credentials in the URL once, as an answer to the browser's Basic prompt; then the plain URL, which the
        # browser authenticates from its cache like any later request of the page (fetch() included).
        d.get(f"https://viewer:{PASSWORDS['viewer']}@{host}/?lang=en")
        d.get(url + "/?lang=en")
        assert d.find_element(By.ID, "board").is_displayed()
        assert d.execute_script("return location.protocol") == "https:"
        full_screenshot(d, str(tmp_path / "viewer-tls.png"), 1400)
        assert _post_reload(d) == 403
    finally:
        d.quit()
    d = browser(1400, home=home)  # the admin, in a browser of its own (the viewer's credentials are cached above)
    try:
        d.get(f"https://chair:{PASSWORDS['chair']}@{host}/?lang=en")
        d.get(url + "/?lang=en")
        assert d.find_element(By.ID, "board").is_displayed()
        assert _post_reload(d) == 200
        d.save_screenshot(str(tmp_path / "admin.png"))
    finally:
        d.quit()
    untrusting = browser(1400, home=tmp_path / "empty-home")  # the same browser without the test CA
    try:
        untrusting.get(f"https://viewer:{PASSWORDS['viewer']}@{host}/")
        assert not untrusting.find_elements(By.ID, "board")
        assert "privacy" in untrusting.title.lower() or "not private" in untrusting.page_source.lower()
        untrusting.save_screenshot(str(tmp_path / "untrusted.png"))
    finally:
        untrusting.quit()
        loop.run(runner._app_runner.cleanup())
        loop.stop()
