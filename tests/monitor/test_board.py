"""The committee board: words for every reason code, the figures of monitor/core/figures.py, one render per
snapshot off the event loop, the monitor's own health; and, in a real headless Chromium, the page itself."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.core.reasons import LINK_CODES, ROLES, SITE_CODES, Reason
from monitor.runtime.snapshot import Snapshot
from monitor.web import board
from monitor.web.app import make_app
from monitor.web.board import BoardCache, View, monitor_health, render_board
from monitor.web.i18n import LANGS, LINK_WORDS, SITE_WORDS, STATE_WORDS, reason_words
from tests.helpers import free_port, require
from tests.monitor.board_sample import sample_snapshot
from tests.monitor.browser import available, browser, full_screenshot

_ASCII = str.maketrans("۰۱۲۳۴۵۶۷۸۹٫٪", "0123456789.%")


def ascii_digits(text: str) -> str:
    return text.translate(_ASCII)


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    return sample_snapshot(now=time.time())


def site_state_of(snap: Snapshot, site_id: str) -> str:
    r = snap.sites.get(site_id)
    return r.state if r is not None else "unknown"


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_every_reason_code_has_words_in_both_languages() -> None:
    """Every code of monitor/core/reasons.py reads in Persian and English, and nothing else is in the tables."""
    assert set(LINK_WORDS) == set(LINK_CODES) and set(SITE_WORDS) == set(SITE_CODES)
    for table in (LINK_WORDS, SITE_WORDS, STATE_WORDS):
        for code, text in table.items():
            assert set(text) == set(LANGS) and all(text[lang].strip() for lang in LANGS), code
    for name in LINK_CODES:
        for role in ROLES:
            r = Reason(f"{role}.{name}", ">1%" if LINK_CODES[name].form == "limit" else "")
            fa, en = reason_words(r, "fa"), reason_words(r, "en")
            assert fa != en and re.search("[\u0600-\u06ff]", fa) and ("primary" in en or "backup" in en)
    assert reason_words("upstream AGG-2 down", "en") == "behind node AGG-2, which is down"
    assert reason_words("terminals 3/5", "fa") == "پایانه‌های پاسخ‌گو 3/5"
    assert reason_words("something unheard of", "en") == "something unheard of"


def test_the_board_shows_the_figures(snap: Snapshot) -> None:
    """The share, the state counts and the nodes on the page are monitor/core/figures.py's, in both languages."""
    fig = snap.figures()
    p = fig.province
    for view in (View(), View("en", True), View("fa", True)):
        page = render_board(snap, view)
        text = ascii_digits(page)
        assert f'data-figure="share">{p.share_text()}<' in text
        for state, n in p.states.items():
            assert f'data-figure="{state}">{n}<' in text
            assert f'data-figure="nodes-total">{fig.nodes.total}<' in text
        assert ('lang="fa" dir="rtl"' in page) == (view.lang == "fa")
        assert 'name="viewport"' in page and "http://" not in page and "https://" not in page
    fa = render_board(snap, View())
    assert "۷" in fa or "۸" in fa  # Persian digits by default
    assert re.search(r"data-figure=\"share\">[0-9]", render_board(snap, View("fa", True)))  # Latin by setting
    assert "Dec 2026" in ascii_digits(fa) and "آذر" in fa  # Jalali with the Gregorian beside it


def test_a_county_view_lists_only_its_sites(snap: Snapshot) -> None:
    page = render_board(snap, View("en", True, "Mehran"))
    ids = re.findall(r'<tr data-site="([^"]+)" data-state="\w+" data-county="([^"]+)"', page)
    wanted = {s.id for s in snap.config.reported_sites() if s.county == "Mehran"}
    assert {i for i, _ in ids} == wanted and {c for _, c in ids} == {"Mehran"}
    with pytest.raises(ValueError, match="unknown county"):
        View.of({"county": "Atlantis"}, ["Mehran"])
    assert View.of({"county": "mehran", "lang": "en"}, ["Mehran"]) == View("en", True, "Mehran")


def test_owner_column_shows_owners_and_overdue_actions(snap: Snapshot) -> None:
    """Every listed site names its owner (the county's, from the config); an open action on it shows with its id,
    owner and due date, marked overdue once past due at the snapshot's time; a closed one is gone."""
    import dataclasses

    from monitor.core.actions import close_record, fold, open_record

    mehran = [s for s in snap.config.reported_sites() if s.county == "Mehran" and s.kind == "polling"]
    late, later, done = mehran[0].id, mehran[1].id, mehran[2].id
    records = [open_record({}, site=late, county="Mehran", owner="Mehran ICT team", due=snap.at - 60,
                           due_text="x", note="", by="op", at=snap.at - 3600)]
    records.append(open_record(fold(records), site=later, county="Mehran", owner="Sara Ahmadi", due=snap.at + 86400,
                               due_text="y", note="", by="op", at=snap.at - 3600))
    records.append(open_record(fold(records), site=done, county="Mehran", owner="Ali", due=snap.at - 60,
                               due_text="z", note="", by="op", at=snap.at - 3600))
    records.append(close_record(fold(records)["A3"], result="fixed", by="op", at=snap.at - 30))
    with_actions = dataclasses.replace(snap, actions=tuple(fold(records).values()))
    for view, overdue in ((View("en", True, "Mehran"), "overdue"), (View("fa", False, "Mehran"), "دیرکرد")):
        page = render_board(with_actions, view)
        cells = dict(re.findall(r'data-owner-for="([^"]+)">(.*?)</td>', page))
        assert set(cells) == {s.id for s in snap.config.reported_sites() if s.county == "Mehran"}
        assert all("Mehran ICT team" in c for c in cells.values())
        assert 'data-action="A1"' in cells[late] and overdue in cells[late] and "late" in cells[late]
        assert 'data-action="A2"' in cells[later] and "Sara Ahmadi" in cells[later] and overdue not in cells[later]
        assert "data-action" not in cells[done]


def test_not_enough_history_says_so(tmp_path: Path) -> None:
    snap = sample_snapshot(history_days=0.5, now=time.time())
    assert not snap.forecasts[("province", "")].enough_history
    assert 'data-forecast="none"' in render_board(snap, View("en", True))
    assert "not enough history" in render_board(snap, View("en", True))


def test_health_banner(snap: Snapshot) -> None:
    assert monitor_health(snap, snap.at)[0] == "fresh"
    state, notes = monitor_health(snap, snap.at + 3600)
    assert state == "stale" and notes
    page = render_board(snap, View("en", True), (state, notes))
    assert 'data-health="stale"' in page and "stale" in page
    from dataclasses import replace
    assert monitor_health(replace(snap, evaluated=False), snap.at)[0] == "blind"


async def test_rendered_once_per_snapshot_off_the_loop(snap: Snapshot) -> None:
    """Two requests for the same snapshot and view render once, in a worker thread, not on the event loop."""
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def counting(*args: Any) -> str:
        threads.append(threading.get_ident())
        return render_board(*args)

    current = {"snap": snap}
    app = make_app(lambda: current["snap"])
    cache: BoardCache | None = None
    for route in app.router.routes():
        if route.resource is not None and route.resource.canonical == "/":
            cache = route.handler.__closure__[0].cell_contents  # type: ignore[union-attr,index]
    assert isinstance(cache, BoardCache)
    cache.render, cache.clock = counting, lambda: snap.at
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    import aiohttp
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(3):
                async with s.get(f"http://127.0.0.1:{port}/") as r:
                    assert r.status == 200
            assert len(threads) == 1 and threads[0] != loop_thread
            async with s.get(f"http://127.0.0.1:{port}/?lang=en") as r:
                assert r.status == 200
            assert len(threads) == 2
            current["snap"] = sample_snapshot(now=snap.at)  # a new snapshot: rendered anew
            async with s.get(f"http://127.0.0.1:{port}/") as r:
                assert r.status == 200
            assert len(threads) == 3
            async with s.get(f"http://127.0.0.1:{port}/?county=Atlantis") as r:
                assert r.status == 400
            async with s.get(f"http://127.0.0.1:{port}/static/board/fonts/Vazirmatn-Regular.woff2") as r:
                assert r.status == 200 and len(await r.read()) > 10_000
            async with s.get(f"http://127.0.0.1:{port}/static/board/../app.py") as r:
                assert r.status == 404
    finally:
        await runner.cleanup()


def test_static_files_are_package_data() -> None:
    """The style, script and font ship with the package (pyproject's package-data), with the font's license."""
    import tomllib
    doc = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = doc["tool"]["setuptools"]["package-data"]["monitor.web"]
    shipped = {p.relative_to(board.STATIC.parent).as_posix() for p in board.STATIC.rglob("*") if p.is_file()}
    import fnmatch
    assert all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in shipped), shipped
    assert "board_static/fonts/Vazirmatn-OFL.txt" in shipped


# -- in a real browser -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def needs_browser() -> None:
    """Skip without Chromium and its driver, except under CI=true, where these tests must run."""
    require(not available(), available())


@pytest.fixture(scope="module")
def served(snap: Snapshot) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(lambda: snap))
    loop.run_until_complete(runner.setup())
    port = free_port()
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture(scope="module")
def wide(needs_browser: None) -> Iterator[Any]:
    driver = browser(1400)
    yield driver
    driver.quit()


@pytest.mark.slow
def test_board_in_a_browser(served: str, snap: Snapshot, wide: Any, tmp_path: Path) -> None:
    """Persian RTL with Persian digits; the numbers equal the figures; English by switch; a county by click."""
    from selenium.webdriver.common.by import By

    fig = snap.figures()
    wide.get_log("performance")  # drop what the browser did on its own at start (Debian's start page)
    wide.get(served + "/")
    full_screenshot(wide, str(tmp_path / "board-fa-1400.png"), 1400)
    html_el = wide.find_element(By.TAG_NAME, "html")
    assert html_el.get_attribute("lang") == "fa" and html_el.get_attribute("dir") == "rtl"
    assert wide.execute_script("return getComputedStyle(document.body).direction") == "rtl"
    shown = wide.find_element(By.ID, "share").text
    assert re.search("[۰-۹]", shown) and ascii_digits(shown) == fig.province.share_text()
    for state, n in fig.province.states.items():
        assert ascii_digits(wide.find_element(By.CSS_SELECTOR, f'[data-figure="{state}"]').text) == str(n)
    assert ascii_digits(wide.find_element(By.CSS_SELECTOR, '[data-figure="nodes-total"]').text) == str(fig.nodes.total)
    assert wide.execute_script("return document.fonts.check('16px Vazirmatn')")
    # English
    wide.find_element(By.ID, "lang-switch").click()
    assert wide.find_element(By.TAG_NAME, "html").get_attribute("dir") == "ltr"
    assert wide.find_element(By.ID, "share").text == fig.province.share_text()
    assert "Polling places ready" in wide.page_source
    # A county, by clicking its row in the counties table
    link = wide.find_element(By.CSS_SELECTOR, 'tr[data-county="Mehran"] a.county-link')
    link.click()
    rows = wide.find_elements(By.CSS_SELECTOR, "#sites tr[data-site]")
    wanted = {s.id for s in snap.config.reported_sites() if s.county == "Mehran"}
    assert {r.get_attribute("data-site") for r in rows} == wanted
    assert wide.find_element(By.ID, "share").text == fig.counties["Mehran"].share_text()
    full_screenshot(wide, str(tmp_path / "board-county-1400.png"), 1400)
    # Every located site has one marker on the map, of its state's colour (as the browser paints it) and shape
    wide.get(served + "/?lang=en")
    markers = wide.execute_script(
        "return [...document.querySelectorAll('#map g.pt')].map(g => {const m = g.firstElementChild;"
        " const s = getComputedStyle(m); return [g.dataset.site, g.dataset.state, m.tagName,"
        " m.getAttribute('stroke') ? s.stroke : s.fill]})")
    located = {s.id: site_state_of(snap, s.id) for s in snap.config.reported_sites() if s.location is not None}
    assert sorted(m[0] for m in markers) == sorted(located) and not wide.find_elements(By.CSS_SELECTOR, "#map .cluster")
    shape = {"ready": "circle", "degraded": "path", "not_ready": "path", "unknown": "path"}
    for site_id, state, tag, colour in markers:
        assert state == located[site_id] and tag == shape[state], (site_id, state, tag)
        assert colour == _rgb(board.STATE_COLOURS[state]), (site_id, state, colour)
    # Nothing was asked of anyone but the service, on any page visited since the start
    events = " ".join(e["message"] for e in wide.get_log("performance"))
    asked = re.findall(r'"Network.requestWillBeSent".*?"url":"([^"]+)"', events)
    assert asked and all(u.startswith(served) or u.startswith("data:") for u in asked), asked


@pytest.mark.slow
def test_board_at_400_px_has_no_horizontal_scroll(needs_browser: None, served: str, snap: Snapshot,
                                                   tmp_path: Path) -> None:
    driver = browser(400, 900)
    try:
        site = next(s.id for s in snap.config.reported_sites() if s.terminals and s.links)
        for path in ("/", "/?lang=en", "/?county=Holeylan", f"/sites/{site}", f"/sites/{site}?lang=en"):
            driver.get(served + path)
            query = path
            width = driver.execute_script("return window.innerWidth")
            scroll = driver.execute_script("return document.documentElement.scrollWidth")
            assert width <= 420 and scroll <= width, (query, scroll, width)
        full_screenshot(driver, str(tmp_path / "board-400.png"), 400)
    finally:
        driver.quit()


def test_burnup_from_the_store_ends_at_the_headline(snap: Snapshot) -> None:
    """With the store's samples the burn-up draws them (a gap where points are missing) and ends on the snapshot's
    own figure; without a store it falls back to the forecast's memory and says so."""
    from monitor.core.figures import PROVINCE

    fig = snap.figures().province
    hours = [snap.at - h * 3600 for h in range(48, 0, -1) if not 20 <= h < 26]  # six hours missing
    recorded = {PROVINCE: tuple((t, fig.ready - 5, fig.total) for t in hours)}
    points, source = board.burnup_points(snap, PROVINCE, fig, recorded)
    assert source == "store" and points[-1] == (snap.at, fig.ready, fig.total) and len(points) == len(hours) + 1
    page = render_board(snap, View("en", True), recorded=recorded)
    assert 'data-source="store"' in page and page.count('class="share-line"') == 2  # the gap splits the line
    assert 'data-source="memory"' in render_board(snap, View("en", True))


def test_map_tiles_only_when_configured(snap: Snapshot) -> None:
    """No tile server by default: nothing on the page points anywhere; with board.tile_url the map lays tiles."""
    from dataclasses import replace

    from monitor.config.loader import BoardSettings

    assert "<image" not in render_board(snap, View("en", True))
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    tiled = replace(snap, config=snap.config.model_copy(update={"board": BoardSettings(
        tile_url=url, tile_attribution="© OpenStreetMap contributors")}))
    page = render_board(tiled, View("en", True))
    tiles = re.findall(r'<image href="https://tiles\.example\.org/(\d+)/(\d+)/(\d+)\.png"', page)
    assert 1 <= len(tiles) <= board.MAX_TILES and len({z for z, _, _ in tiles}) == 1
    assert "© OpenStreetMap contributors" in page
    for bad in ("ftp://x/{z}/{x}/{y}", "https://x/{z}/{x}.png", "https://x/{z}/{x}/{y}/{s}.png",
                'https://x/{z}/{x}/{y}.png"onload="'):
        with pytest.raises(ValueError, match="tile_url"):
            BoardSettings(tile_url=bad)


def test_site_page(snap: Snapshot) -> None:
    """A site's page: links against their medium's thresholds, terminals, reasons in words, owner; its timeline
    from what the store holds; a 404 page of its own for an unknown id."""
    from monitor.runtime.readback import Change, SiteTimeline
    from monitor.web.site_page import render_missing, render_site

    bad = next(s for s in snap.config.reported_sites() if snap.sites[s.id].state == "not_ready" and s.links)
    line = SiteTimeline(snap.at - 3 * 86400, snap.at, {f"site:{bad.id}": [
        Change(snap.at - 3 * 86400, "ready", ()), Change(snap.at - 3600, "not_ready", ("primary.down",))]}, [])
    page = render_site(snap, View("en", True), bad, timeline=line)
    assert f'data-site="{bad.id}"' in page and 'data-state="not_ready"' in page
    assert '(max <bdi dir="ltr">1.0%</bdi>)' in page  # fiber loss threshold
    assert page.count(f'data-entity="site:{bad.id}"') == 2 * 2  # drawn wide and narrow
    assert "primary link: is down" in page
    assert all(f'data-terminal="{t.id}"' in page for t in bad.terminals)
    fa = render_site(snap, View(), bad, timeline=None)
    assert 'dir="rtl"' in fa and 'data-recorded="0"' in fa and "آذر" in fa
    missing = render_missing(snap, View("en", True), "<nope>")
    assert "&lt;nope&gt;" in missing and "<nope>" not in missing
