"""The committed dashboards are what the builders produce, survive the SDK's models, and hang together."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.models import prometheus as pm

from dashboards import MODULES, build
from dashboards import common as c
from tests.dashboards import panels as P

ROOT = Path(__file__).parents[2]
PROVISIONING = ROOT / "config" / "grafana" / "provisioning"
UIDS = {"province": "readiness-province", "county": "readiness-county", "site": "readiness-site",
        "link_quality": "readiness-link-quality", "monitor": "readiness-monitor"}
DS = {"type": "prometheus", "uid": "${datasource}"}


def _readiness(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_committed_json_is_what_the_builders_produce() -> None:
    """dashboards/*.json equal a fresh build, byte for byte (sorted keys): regenerate, never hand-edit."""
    fresh = build.render()
    assert sorted(fresh) == sorted(f"{m}.json" for m in MODULES)
    on_disk = {p.name for p in P.DASHBOARDS.glob("*.json")}
    assert on_disk == set(fresh), "a committed dashboard has no builder, or a builder's JSON is not committed"
    for name, text in fresh.items():
        assert (P.DASHBOARDS / name).read_text(encoding="utf-8") == text, \
            f"dashboards/{name} is stale: run `readiness dashboards build`"
        assert json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n" == text


def test_the_sdk_is_the_pinned_grafana_11_build() -> None:
    """pyproject.toml pins the SDK generated for the Grafana version the dashboards are written for."""
    version = importlib.metadata.version("grafana-foundation-sdk")
    assert version.split("!")[1] == c.GRAFANA_VERSION and c.GRAFANA_VERSION.startswith("11.")
    assert f'"grafana-foundation-sdk=={version}"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert {doc["schemaVersion"] for doc in P.committed().values()} == {41}


def test_build_command_writes_and_checks(tmp_path: Path) -> None:
    """`readiness dashboards build --out DIR` writes every file; `--check` exits 1 on a stale one, 0 when fresh."""
    assert _readiness("dashboards", "build", "--check").returncode == 0
    assert _readiness("dashboards", "build", "--out", str(tmp_path)).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{m}.json" for m in MODULES)
    assert _readiness("dashboards", "build", "--check", "--out", str(tmp_path)).returncode == 0
    (tmp_path / "site.json").write_text("{}", encoding="utf-8")
    run = _readiness("dashboards", "build", "--check", "--out", str(tmp_path))
    assert run.returncode == 1
    assert "site.json" in run.stderr


@pytest.mark.parametrize("name", MODULES)
def test_round_trip_through_the_sdk_models(name: str) -> None:
    """Decoding the committed JSON into grafana-foundation-sdk's models and encoding it again changes nothing,
    and every panel and query decodes into a known model (no unknown panel types or query kinds)."""
    text = (P.DASHBOARDS / f"{name}.json").read_text(encoding="utf-8")
    model = c.from_json(text)
    assert c.to_json(model) == text
    assert model.uid == UIDS[name]
    for panel in model.panels or []:
        for target in getattr(panel, "targets", None) or []:
            assert not isinstance(target, UnknownDataquery)
            assert isinstance(target, pm.Dataquery)


@pytest.mark.parametrize("name", MODULES)
def test_dashboard_shape(name: str) -> None:
    """Stable uid, the readiness tag, a bilingual title, unique panel ids, the grid respected, every panel and
    query on the data source variable, and every variable a query uses defined on the dashboard."""
    doc = P.committed()[name]
    assert doc["uid"] == UIDS[name]
    assert "readiness" in doc["tags"]
    assert any("\u0600" <= ch <= "\u06ff" for ch in doc["title"]), "titles are English and Persian"
    ids = [p["id"] for p in P.panels(doc)]
    assert len(ids) == len(set(ids))
    defined = {v["name"] for v in doc["templating"]["list"]}
    assert "datasource" in defined
    for panel in P.panels(doc):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DS, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == DS
        text = json.dumps(panel, ensure_ascii=False)
        assert P.variables_used(text) <= defined | P.BUILTIN_VARIABLES, panel["title"]
    for q in P.queries(name, doc):
        assert P.variables_used(q.expr) <= defined | P.BUILTIN_VARIABLES, q.id


def _urls(doc: dict) -> list[str]:
    text = json.dumps(doc)
    return [u.split("?")[0] for u in re.findall(r'"url": "(/d/[^"]+)"', text)]


def test_dashboards_link_province_to_county_to_site() -> None:
    """Province links to the county dashboard, county and province to the site dashboard, site back to county;
    every link points at a dashboard that exists; each dashboard offers the others in a drop-down."""
    docs = P.committed()
    uids = {doc["uid"] for doc in docs.values()}
    for name, doc in docs.items():
        for url in _urls(doc):
            assert url[len("/d/"):] in uids, f"{name} links to unknown {url}"
        drop = [link for link in doc["links"] if link["type"] == "dashboards"]
        assert drop and drop[0]["tags"] == ["readiness"] and drop[0]["includeVars"] and drop[0]["keepTime"]
    assert "/d/readiness-county" in _urls(docs["province"])
    assert "/d/readiness-site" in _urls(docs["province"])
    assert "/d/readiness-site" in _urls(docs["county"])
    assert "/d/readiness-county" in _urls(docs["site"])
    assert "/d/readiness-site" in _urls(docs["link_quality"])


def test_variables() -> None:
    """County, area and site variables where the brief asks for them; the site's links repeat per role."""
    docs = P.committed()
    names = {n: [v["name"] for v in d["templating"]["list"]] for n, d in docs.items()}
    assert names["province"][:2] == ["datasource", "area"]
    assert names["county"][:3] == ["datasource", "county", "area"]
    assert names["site"][:4] == ["datasource", "county", "site", "role"]
    assert {"county", "area", "medium"} <= set(names["link_quality"])
    rows = [p for p in docs["site"]["panels"] if p["type"] == "row" and p.get("repeat")]
    assert [r["repeat"] for r in rows] == ["role"]


def test_state_colours_cover_every_state() -> None:
    """The dashboards map exactly the states the monitor exports, each to its own code."""
    from monitor.core.reasons import LINK_STATES, SITE_STATES

    for ours, theirs in ((c.SITE_STATES, SITE_STATES), (c.LINK_STATES, LINK_STATES)):
        assert sorted(s for s, *_ in ours) == sorted(theirs)
        assert len({code for _, code, *_ in ours}) == len(ours)


def test_provisioning_matches_the_dashboards() -> None:
    """The provisioned data source has the uid the dashboards default to; the provider files them in the folder
    `push` uses."""
    ds = yaml.safe_load((PROVISIONING / "datasources" / "readiness.yaml").read_text(encoding="utf-8"))
    assert ds["apiVersion"] == 1
    [source] = ds["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == c.PROVISIONED_DATASOURCE_UID
    assert source["jsonData"]["timeInterval"] == "15s"
    for doc in P.committed().values():
        [var] = [v for v in doc["templating"]["list"] if v["name"] == "datasource"]
        assert var["current"]["value"] == c.PROVISIONED_DATASOURCE_UID and var["query"] == "prometheus"
    prov = yaml.safe_load((PROVISIONING / "dashboards" / "readiness.yaml").read_text(encoding="utf-8"))
    [provider] = prov["providers"]
    assert provider["type"] == "file" and provider["folderUid"] == build.FOLDER_UID
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"].startswith("/")


def test_grafana_client_is_not_imported_by_the_cli() -> None:
    """grafana-client (and niquests, which replaces urllib3) load only when `push` runs."""
    code = ("import sys, monitor.cli.main, dashboards.build; monitor.cli.main.build_parser(); "
            "print(sorted(m for m in ('grafana_client', 'niquests') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
