"""/api/v1/availability over a store a real run filled: the same availability as the audit export, Jalali or
Gregorian dates, strict parameters (400 with the allowed values), 503 without a store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.audit.availability import StoreAvailability
from monitor.cli.main import main
from monitor.runtime.service import Service
from monitor.runtime.snapshot import Snapshot
from monitor.web.app import make_app
from tests.helpers import free_port
from tests.monitor.audit_fill import T0, Run, fill_store


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return fill_store(tmp_path_factory.mktemp("availability"))


@pytest.fixture(scope="module")
def summary(run: Run, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """summary.json of a real `audit export` of the audited day (1404-12-01)."""
    out = tmp_path_factory.mktemp("bundle") / "day"
    assert main(["audit", "export", "--config", str(run.config_path), "--data-dir", str(run.data_dir),
                 "--from", "1404-12-01", "--to", "1404-12-01", "-o", str(out)]) == 0
    doc: dict[str, Any] = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return doc


def _snapshot(run: Run) -> Snapshot:
    return Service(run.config, clock=lambda: T0).evaluate(force=True)


async def _serve(run: Run, reader: StoreAvailability | None) -> tuple[aiohttp.web.AppRunner, str]:
    snap = _snapshot(run)
    runner = aiohttp.web.AppRunner(make_app(lambda: snap, availability=reader))
    await runner.setup()
    port = free_port()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/api/v1/availability"


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.json(content_type=None)


async def test_availability_is_the_audit_reports(run: Run, summary: dict[str, Any]) -> None:
    """The province, each county and each site over the audited day: what summary.json and readiness.csv say."""
    runner, url = await _serve(run, StoreAvailability(lambda: run.config, run.data_dir))
    try:
        for query in ("from=1404-12-01&to=1404-12-01", "from=2026-02-20&to=2026-02-20"):  # Jalali, Gregorian
            status, doc = await _get(f"{url}?{query}")
            assert status == 200, doc
            assert doc["period"]["start"]["unix"] == summary["period"]["start"]["unix"]
            assert doc["period"]["end"]["unix"] == summary["period"]["end"]["unix"]
            assert doc["province"]["availability"] == summary["province"]["availability"]
            assert doc["province"]["blind_seconds"] == summary["province"]["blind_seconds"]
            for name, county in summary["counties"].items():
                assert doc["counties"][name]["availability"] == county["availability"]
        status, doc = await _get(f"{url}?from=1404-12-01&to=1404-12-01&county=eyvan")  # any letter case
        assert status == 200 and doc["scope"]["county"] == "Eyvan"
        assert doc["county"]["availability"] == summary["counties"]["Eyvan"]["availability"]
        assert {s["id"] for s in doc["sites"]} == {"EYV-001", "EYV-002"}
        status, doc = await _get(f"{url}?from=1404-12-01&to=1404-12-01&site=EYV-002")
        assert status == 200 and doc["site"]["id"] == "EYV-002"
        # EYV-002's primary was down 10-14h of the audited day: four hours down.
        assert doc["site"]["availability"]["primary"]["down_seconds"] == 4 * 3600
        # A future end is clipped to the last recorded moment, and says so.
        status, doc = await _get(f"{url}?from=1404-12-01&to=1410-01-01")
        assert status == 200 and doc["period"]["clipped"] is not None
        assert doc["period"]["end"]["unix"] <= run.truth[-1][0] + 3600
    finally:
        await runner.cleanup()


async def test_bad_queries_are_400_with_the_allowed_values(run: Run) -> None:
    runner, url = await _serve(run, StoreAvailability(lambda: run.config, run.data_dir))
    try:
        status, doc = await _get(f"{url}?colour=red")
        assert status == 400 and "colour" in doc["error"] and doc["allowed"]["parameters"] == ["from", "to", "site",
                                                                                             "county"]
        status, doc = await _get(f"{url}?county=Nowhere")
        assert status == 400 and doc["allowed"]["county"] == ["Eyvan", "Ilam", "Mehran"]
        status, doc = await _get(f"{url}?site=NOPE")
        assert status == 400 and "NOPE" in doc["error"]
        status, doc = await _get(f"{url}?site=EYV-001&county=Eyvan")
        assert status == 400
        status, doc = await _get(f"{url}?from=yesterday")
        assert status == 400 and "yesterday" in doc["error"]
        status, doc = await _get(f"{url}?from=1404-12-02&to=1404-12-01")
        assert status == 400 and "end after it starts" in doc["error"]
        status, doc = await _get(f"{url}?to=1404-12-01&to=1404-12-02")
        assert status == 400
    finally:
        await runner.cleanup()


async def test_without_a_store_503(run: Run, tmp_path: Path) -> None:
    """`run --no-store` hands no reader: 503 that says why; a reader over an empty data dir: 503 too."""
    runner, url = await _serve(run, None)
    try:
        status, doc = await _get(url)
        assert status == 503 and "--no-store" in doc["error"]
    finally:
        await runner.cleanup()
    runner, url = await _serve(run, StoreAvailability(lambda: run.config, tmp_path / "empty"))
    try:
        status, doc = await _get(url)
        assert status == 503 and "event store" in doc["error"]
    finally:
        await runner.cleanup()
