"""`readiness dashboards push` against a local HTTP server that checks the requests Grafana's API documents.

POST /api/dashboards/db takes {"dashboard": {...}, "folderUid": ..., "overwrite": true} with
"Authorization: Bearer <token>"; GET /api/folders/:uid answers 404 for a missing folder, which
POST /api/folders {"uid", "title"} creates.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dashboards import MODULES, build
from tests.dashboards import panels as P
from tests.helpers import require

TOKEN = "glsa_test-token-0123456789"
ROOT = Path(__file__).parents[2]


@dataclass
class FakeGrafana:
    """Grafana's folder and dashboard endpoints, recording what they were sent."""

    folders: dict[str, str] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    reject_token: bool = False

    def app(self) -> web.Application:
        """The endpoints at the root and under /grafana/ (a reverse proxy's sub-path)."""
        app = web.Application(middlewares=[self._auth])
        for prefix in ("", "/grafana"):
            app.router.add_get(prefix + "/api/folders/{uid}", self.get_folder)
            app.router.add_post(prefix + "/api/folders", self.create_folder)
            app.router.add_post(prefix + "/api/dashboards/db", self.save_dashboard)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, request.path, body))
        if self.reject_token or request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"message": "Unauthorized"}, status=401)
        if request.method == "POST" and request.content_type != "application/json":
            self.problems.append(f"{request.path}: content type {request.content_type}")
        return await handler(request)

    async def get_folder(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        if uid not in self.folders:
            return web.json_response({"message": "folder not found"}, status=404)
        return web.json_response({"uid": uid, "title": self.folders[uid]})

    async def create_folder(self, request: web.Request) -> web.Response:
        body = await request.json()
        if set(body) - {"uid", "title", "parentUid"} or not body.get("title"):
            self.problems.append(f"folder body {body}")
        self.folders[body["uid"]] = body["title"]
        return web.json_response({"uid": body["uid"], "title": body["title"]})

    async def save_dashboard(self, request: web.Request) -> web.Response:
        body = await request.json()
        dash = body.get("dashboard", {})
        if body.get("overwrite") is not True:
            self.problems.append("overwrite is not true")
        if body.get("folderUid") not in self.folders:
            self.problems.append(f"folderUid {body.get('folderUid')} does not exist")
        if not dash.get("uid") or not dash.get("title") or "panels" not in dash:
            self.problems.append(f"not a dashboard: {sorted(dash)}")
        if dash.get("id") is not None:
            self.problems.append("a dashboard id would address one instance's copy; send the uid only")
        self.dashboards[dash["uid"]] = body
        return web.json_response({"status": "success", "uid": dash["uid"], "version": 1,
                                  "url": f"/d/{dash['uid']}/x", "id": len(self.dashboards)})


@pytest.fixture
async def grafana() -> AsyncIterator[tuple[FakeGrafana, str]]:
    """The fake Grafana on a free loopback port."""
    require(importlib.util.find_spec("grafana_client") is not None,
            "grafana-client (the grafana extra: pip install 'readiness-monitor[grafana]')")
    fake = FakeGrafana()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_push_creates_the_folder_and_saves_every_dashboard(grafana: tuple[FakeGrafana, str]) -> None:
    """A fresh Grafana: the folder is created, then all five dashboards are saved into it, as built."""
    fake, url = grafana
    uids = await asyncio.to_thread(build.push, url, TOKEN)
    assert not fake.problems, fake.problems
    assert sorted(uids) == sorted(doc["uid"] for doc in P.committed().values())
    assert fake.folders == {build.FOLDER_UID: build.FOLDER_TITLE}
    assert [r[:2] for r in fake.requests[:2]] == [("GET", f"/api/folders/{build.FOLDER_UID}"), ("POST", "/api/folders")]
    committed = {doc["uid"]: doc for doc in P.committed().values()}
    for uid, body in fake.dashboards.items():
        assert body["dashboard"] == committed[uid]
        assert body["folderUid"] == build.FOLDER_UID and body["overwrite"] is True
    assert len(fake.dashboards) == len(MODULES)


async def test_push_into_an_existing_folder_behind_a_sub_path(grafana: tuple[FakeGrafana, str]) -> None:
    """An existing folder is reused, not recreated; a Grafana under /grafana (with or without the trailing
    slash) is reached there; pushing twice overwrites."""
    fake, url = grafana
    fake.folders["ops"] = "Ops"
    await asyncio.to_thread(lambda: build.push(url + "/grafana", TOKEN, folder_uid="ops"))
    await asyncio.to_thread(lambda: build.push(url + "/grafana/", TOKEN, folder_uid="ops"))
    assert not fake.problems, fake.problems
    assert all(path.startswith("/grafana/api/") for _, path, _ in fake.requests), fake.requests
    assert ("POST", "/grafana/api/folders") not in [r[:2] for r in fake.requests]
    saves = [r for r in fake.requests if r[1] == "/grafana/api/dashboards/db"]
    assert len(saves) == 2 * len(MODULES)
    assert all(body and body["folderUid"] == "ops" for _, _, body in saves)


async def test_push_reports_a_refused_token(grafana: tuple[FakeGrafana, str]) -> None:
    """401 from Grafana becomes a PushError that names the server and not the token."""
    fake, url = grafana
    fake.reject_token = True
    with pytest.raises(build.PushError) as err:
        await asyncio.to_thread(build.push, url, TOKEN)
    assert url in str(err.value) and TOKEN not in str(err.value)
    assert not fake.dashboards


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", "dashboards", "push", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env=env)


async def test_push_command(grafana: tuple[FakeGrafana, str]) -> None:
    """The CLI reads the token from GRAFANA_TOKEN (or --token-env) and never prints it; exit 0, 1 or 2."""
    fake, url = grafana
    base = {k: v for k, v in os.environ.items() if k != "GRAFANA_TOKEN"}
    missing = await asyncio.to_thread(_cli, "--url", url, env=base)
    assert missing.returncode == 2 and "GRAFANA_TOKEN" in missing.stderr
    ok = await asyncio.to_thread(_cli, "--url", url, env={**base, "GRAFANA_TOKEN": TOKEN})
    assert ok.returncode == 0, ok.stderr
    assert TOKEN not in ok.stdout + ok.stderr
    assert "pushed readiness-province" in ok.stderr
    other = await asyncio.to_thread(_cli, "--url", url, "--token-env", "MY_TOKEN", env={**base, "MY_TOKEN": TOKEN})
    assert other.returncode == 0, other.stderr
    fake.reject_token = True
    refused = await asyncio.to_thread(_cli, "--url", url, env={**base, "GRAFANA_TOKEN": TOKEN})
    assert refused.returncode == 1 and "Unauthorized" in refused.stderr and TOKEN not in refused.stderr
    bad_url = await asyncio.to_thread(_cli, "--url", "grafana:3000", env={**base, "GRAFANA_TOKEN": TOKEN})
    assert bad_url.returncode == 2
    assert fake.folders == {build.FOLDER_UID: build.FOLDER_TITLE}
