"""The demo's web terminals: real HTTPS servers with a CA made at start-up, checked by the real HTTP probe
through the demo config (one answers 500, one's certificate expires before the deadline)."""

from __future__ import annotations

import time
from pathlib import Path

from monitor.config.loader import load_config
from monitor.config.targets import build_targets
from monitor.core.readiness import Freshness, evaluate
from monitor.core.reasons import texts
from monitor.demo import province as dp
from monitor.demo.run import WebTerminals
from probes.http import PROBE


def test_every_county_has_a_web_terminal() -> None:
    sites = dp.province()
    web = dp.https_terminals(sites)
    assert len(web) == len(dp.COUNTIES)
    assert {dp.HTTPS_ERROR_SITE, dp.HTTPS_SHORT_CERT_SITE} <= {site for site, _ in web}


async def test_web_terminals_through_the_demo_config(tmp_path: Path) -> None:
    for name, text in dp.files().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    config = load_config(tmp_path / "demo.yaml")
    deadline = config.programme.deadline.timestamp()
    now = min(time.time(), deadline - 20 * 86400)  # as if the demo ran three weeks before its deadline
    web = WebTerminals(tmp_path, dp.province(), deadline, now)
    assert (tmp_path / dp.CA_FILE).is_file(), "the CA lands where the inventory's relative ca_file points"
    await web.set_down(set())
    try:
        targets = build_targets(config.sites)["http"]
        settings = config.probe_settings("http")
        observations = await PROBE.run(targets, settings, time.monotonic() + 10)
    finally:
        await web.close()
    by_site = {o.key.split("/")[0]: o for o in observations}
    assert len(by_site) == len(dp.COUNTIES)
    error = by_site[dp.HTTPS_ERROR_SITE]
    assert (error.ok, error.failure, error.values["status_code"]) == (False, "status_mismatch", 500)
    short = by_site[dp.HTTPS_SHORT_CERT_SITE]
    assert short.ok and short.values["tls_not_after_timestamp_seconds"] < deadline
    healthy = [o for site, o in by_site.items() if site not in (dp.HTTPS_ERROR_SITE, dp.HTTPS_SHORT_CERT_SITE)]
    assert all(o.ok and o.values["tls_cert_valid"] == 1 for o in healthy), [o for o in healthy if not o.ok]
    # Judged at `now`: the short certificate is a warning on its site.
    fresh = Freshness({"http": 1e9})
    result = evaluate(config.sites, config.policy, {o.key: o for o in observations}, short.at, fresh,
                      deadline=deadline).sites[dp.HTTPS_SHORT_CERT_SITE]
    assert any(w.startswith("certificate.") and " W1 " in w for w in texts(result.warnings + result.reasons))
