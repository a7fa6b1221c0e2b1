"""/api/v1/sites in pages, every API response built off the event loop and cached per snapshot; /metrics keeps
answering while several big API requests are being built."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from monitor.web.app import make_app
from tests.helpers import free_port
from tests.monitor.test_budget import evaluated


async def _serve(service):  # type: ignore[no-untyped-def]
    runner = web.AppRunner(make_app(lambda: service.snapshot))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def test_pages_cover_every_site_once(tmp_path: Path) -> None:
    """limit and cursor walk the sites once, filters hold on every page, bad paging is a 400."""
    service = evaluated(tmp_path, detail=False)
    runner, url = await _serve(service)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            seen: list[str] = []
            cursor = ""
            while True:
                async with http.get(f"{url}/api/v1/sites", params={"county": "c1", "limit": "40",
                                                                    **({"cursor": cursor} if cursor else {})}) as r:
                    assert r.status == 200
                    doc = json.loads(await r.text())
                assert doc["total"] == 100 and all(s["county"] == "C1" for s in doc["sites"])
                seen += [s["id"] for s in doc["sites"]]
                cursor = doc["next_cursor"]
                if cursor is None:
                    break
            assert len(seen) == len(set(seen)) == 100
            for params in ({"limit": "0"}, {"limit": "x"}, {"cursor": "NOPE"}, {"county": "nowhere"},
                           {"colour": "red"}):
                async with http.get(f"{url}/api/v1/sites", params=params) as r:
                    assert r.status == 400, params
                    assert "error" in json.loads(await r.text())
            async with http.get(f"{url}/api/v1/sites") as r:  # no paging asked: the first page, all 300 here
                assert len(json.loads(await r.text())["sites"]) == 300
    finally:
        await runner.cleanup()


async def test_metrics_answers_while_the_api_is_busy(tmp_path: Path) -> None:
    """Several /api/v1/sites requests (each a different query, so each is built) are in flight; /metrics,
    rendered ahead and served from its cache, still answers within a generous bound."""
    service = evaluated(tmp_path, detail=True)
    runner, url = await _serve(service)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
            async with http.get(f"{url}/metrics") as r:  # the first render, whenever it happens
                assert r.status == 200

            async def api(i: int) -> int:
                async with http.get(f"{url}/api/v1/sites", params={"limit": str(250 + i)}) as r:
                    await r.read()
                    return r.status

            busy = [asyncio.create_task(api(i)) for i in range(8)]
            await asyncio.sleep(0)
            started = time.monotonic()
            async with http.get(f"{url}/metrics") as r:
                assert r.status == 200 and b"readiness_site_info" in await r.read()
            took = time.monotonic() - started
            in_flight = sum(not t.done() for t in busy)
            assert await asyncio.gather(*busy) == [200] * 8
            print(f"\n/metrics took {took:.3f} s with {in_flight} of 8 API requests still in flight")
            assert took < 20  # generous: two loaded shared cores; on the event loop it would queue behind all 8
    finally:
        await runner.cleanup()
