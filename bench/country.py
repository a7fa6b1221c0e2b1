"""A country on one machine: four `readiness run --shard K/4` instances over one 60,000-site inventory, real
probes in a namespace, a real Prometheus with the generated rules; then one shard is killed.

Needs root (a network namespace, nftables) and Debian's prometheus and promtool.

    python bench/country.py                                   # 4 shards x 15,000 sites, 30 s cycle
    python bench/country.py --shards 2 --sites-per-shard 500 --interval 10 --minutes 0.5 --json

The lab is bench/province.py's (bench/netlab.py): a namespace with lo up, one TCP listener for every terminal,
nftables dropping echo requests to two /16s and a port nobody listens on, so that about 4% of the sites lose
their primary, 5% their backup, 2% both and 4% a terminal. The inventory (CSV, 30 counties, urban and rural)
has ``--shards`` x ``--sites-per-shard`` polling places with primary and backup ICMP and two TCP terminals each;
shard K of N owns the sites rendezvous hashing gives it (about 1/N of them, not exactly). Every shard probes
ICMP and TCP every ``--interval`` s (its event store on); Prometheus scrapes them all every
``--scrape-interval`` s (15 s, as config/prometheus/prometheus.yml) and evaluates a bench-only copy of the
rules made by `readiness rules --for-scale F` (every `for:` multiplied by F, 0.1 by default: ShardDown's 2m
becomes 12 s; the expressions are the committed ones).

Note: a sharded instance checks that a cycle fits its interval against the *whole* inventory (the config is
validated before the shard is selected), so TCP is given timeout_seconds 1 (loopback answers in microseconds)
and a concurrency that fits every terminal of the inventory into 90% of the interval.

What it measures and checks:
- per shard: sites and targets owned, CPU share over a steady window of ``--minutes`` after
  ``--warmup-cycles`` cycles (CPU seconds from /proc/PID/stat / wall seconds; 1.0 is one core), VmRSS and
  KiB per target, the last cycle's duration per kind; Prometheus's CPU share over the same window, the
  series in its head block and how long each rule group's last evaluation took (/api/v1/rules: it must stay
  well under ``--scrape-interval``, which is also the evaluation interval).
- the roll-ups: the province, county and area counts by state and the ready shares that Prometheus's recording
  rules computed at one evaluation equal the sum of the shards' own figures (`readiness_sites`, which each shard
  computes with monitor/core/figures.py, the same as its /api/v1/summary) from the scrapes that evaluation
  used (queried at the evaluation's timestamp). Each site is judged by exactly one shard and no site here has
  an upstream node, so that sum is what a single instance over the whole inventory reports on the same
  verdicts; tests/monitor/test_shards.py compares with a single instance directly, nodes included, on injected
  observations. Comparing with the shards' /api/v1/summary *now* is not exact on a loaded machine: a few
  verdicts change between a scrape and the query (a reply lost under load); that count is printed. The totals
  (sites, terminals) must equal the inventory's.
- one shard killed (SIGKILL, shard ``--kill``, 3 by default): the roll-ups then equal the other shards' figures
  plus its sites (as its last /api/v1/summary counted them) in `unknown`, its terminals unknown, the totals
  stay the inventory's, and ShardDown names it, pending or firing; the seconds until each is seen are printed.
If the machine cannot keep up at 30 s, give a longer ``--interval`` (the figures say how long cycles took and
how many were skipped). Everything is bounded in time; the namespace, processes and files go on the way out.

Measured on the 2-core development machine (load average 0.2 to 1.6), at the stop that closed issue 13,
`--interval 120 --scrape-interval 60 --minutes 4` (at 30 s and 15 s four shards and Prometheus need more than
two cores: cycles ran out of time, sites went unknown):

    per shard ~15,000 sites, 60,000 targets: CPU share 0.056-0.063 at 120 s, RSS 263-267 MB (4.5 KiB per
    target; peak 398 MB while loading the 60,000-site inventory); last cycles up to 14.7 s (ICMP), 3.8 s (TCP)
    Prometheus: CPU share 0.81, RSS 3.9 GB, 847,864 series; one evaluation of the alert rules 28.0 s, of the
    roll-ups 10.8 s
    roll-ups equal the shards' figures (province, 30 counties, 2 areas); 41 verdicts changed between a scrape
    and the API read; shard 3 killed (14,919 sites): counted unknown and ShardDown pending after 66 s

The first run (main at 3868e00, load 1.4 to 4.2): shards 600-610 MB (10.3 KiB per target), CPU 0.12;
Prometheus 0.85 of a core, 5.1 GB, 954,558 series, alert rules 26.9 s, roll-ups 19.5 s.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.netlab import (
    REPO,
    CpuWindow,
    Lab,
    Proc,
    cycle_end,
    cycles,
    get,
    head_series,
    lab,
    metrics_text,
    query,
    samples,
    say,
    scrape_timeout,
    start_prometheus,
    wait_for,
    warm,
    write_config,
    write_inventory,
)
from tests.lab import sh

PROMETHEUS_PORT, FIRST_SHARD_PORT = 19090, 19201
STATES = ("ready", "degraded", "not_ready", "unknown")
COUNTIES = 30
TCP_TIMEOUT_SECONDS = 1.0


def shard_port(k: int) -> int:
    return FIRST_SHARD_PORT + k - 1


def tcp_concurrency(terminals: int, interval: float) -> int:
    """The least concurrency that fits ``terminals`` connects of TCP_TIMEOUT_SECONDS into 90% of the interval."""
    rounds = max(1, int(interval * 0.9 // TCP_TIMEOUT_SECONDS))
    return max(64, math.ceil(terminals / rounds))


# ---- the figures -----------------------------------------------------------------------------------------------

Figures = dict[str, Any]  # {"province": tally, "counties": {name: tally}, "areas": {name: tally}}


def tally(doc: dict[str, Any]) -> dict[str, Any]:
    """The parts of an /api/v1/summary tally the roll-ups carry: counts by state, terminals up/unknown/total."""
    t = doc["terminals"]
    return {**{s: int(doc[s]) for s in STATES}, "terminals": int(t["total"]), "terminals_up": int(t["up"] or 0),
            "terminals_unknown": int(t["unknown"])}


def add(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in set(a) | set(b)}


def summaries(ports: dict[int, int]) -> dict[int, Figures]:
    """Each shard's figures from its /api/v1/summary."""
    out = {}
    for k, port in ports.items():
        s = json.loads(get(f"http://127.0.0.1:{port}/api/v1/summary"))["summary"]
        out[k] = {"province": tally(s), "counties": {n: tally(t) for n, t in s["counties"].items()},
                  "areas": {n: tally(t) for n, t in s["areas"].items()}}
    return out


def total(figures: list[Figures]) -> Figures:
    """The sum of several shards' figures: what a single instance over their sites reports."""
    out: Figures = {"province": {}, "counties": {}, "areas": {}}
    for f in figures:
        out["province"] = add(out["province"], f["province"])
        for scope in ("counties", "areas"):
            for name, t in f[scope].items():
                out[scope][name] = add(out[scope].get(name, {}), t)
    return out


def as_unknown(f: Figures) -> Figures:
    """A dead shard's figures as the roll-ups should count them: every site unknown, its terminals unknown."""
    def one(t: dict[str, Any]) -> dict[str, Any]:
        return {**dict.fromkeys(STATES, 0), "unknown": sum(t[s] for s in STATES), "terminals": t["terminals"],
                "terminals_up": 0, "terminals_unknown": t["terminals"]}
    return {"province": one(f["province"]), "counties": {n: one(t) for n, t in f["counties"].items()},
            "areas": {n: one(t) for n, t in f["areas"].items()}}


def share(t: dict[str, Any]) -> float | None:
    n = sum(t[s] for s in STATES)
    return t["ready"] / n if n else None


def instant(port: int, expr: str, at: float, *labels: str) -> dict[tuple[str, ...], float]:
    """An instant query at time ``at``, keyed by the values of ``labels``."""
    return {tuple(r["metric"].get(lb, "") for lb in labels): float(r["value"][1])
            for r in query(port, expr, at)}


def rules_time(port: int) -> float:
    """When the recording rules were last evaluated: the timestamp of their newest sample."""
    return max(v for v in instant(port, "timestamp(province:readiness_sites:sum)", time.time()).values())


def from_rules(port: int, at: float) -> Figures:
    """The figures the recording rules computed at their evaluation ``at``."""
    out: Figures = {"province": {}, "counties": {}, "areas": {}}
    for scope, prefix, label in (("province", "province", ""), ("counties", "county", "county"),
                                 ("areas", "area", "area")):
        labels = (label,) if label else ()
        rows: dict[str, dict[str, Any]] = {}
        for key, value in instant(port, f"{prefix}:readiness_sites:sum", at, *labels, "state").items():
            rows.setdefault(key[0] if label else "", {})[key[-1]] = int(value)
        for suffix in ("terminals", "terminals_up", "terminals_unknown"):
            for key, value in instant(port, f"{prefix}:readiness_{suffix}:sum", at, *labels).items():
                rows.setdefault(key[0] if label else "", {})[suffix] = int(value)
        for key, value in instant(port, f"{prefix}:readiness_ready:ratio", at, *labels).items():
            rows.setdefault(key[0] if label else "", {})["ready_share"] = value
        out[scope] = rows if label else rows.get("", {})
    return out


def from_shards(port: int, at: float) -> Figures:
    """The shards' own figures (readiness_sites: monitor/core/figures.py in each shard) from the scrapes the
    rules evaluated ``at`` used: counts by state only."""
    out: Figures = {"province": {}, "counties": {}, "areas": {}}
    rows = instant(port, 'sum by (county, area, state) (readiness_sites{kind="polling"})', at,
                   "county", "area", "state")
    for (county, area, state), value in rows.items():
        for scope, name in (("counties", county), ("areas", area)):
            cell = out[scope].setdefault(name, dict.fromkeys(STATES, 0))
            cell[state] += int(value)
        out["province"][state] = out["province"].get(state, 0) + int(value)
    return out


def differences(expected: Figures, seen: Figures, keys: tuple[str, ...] = STATES) -> list[str]:
    """What differs between the expected figures and the roll-ups (empty: equal): ``keys`` and the ready share."""
    out = []

    def one(where: str, want: dict[str, Any], got: dict[str, Any]) -> None:
        for key in keys:
            if want.get(key, 0) != got.get(key, 0):
                out.append(f"{where} {key}: expected {want.get(key, 0)}, Prometheus {got.get(key)}")
        ratio, got_ratio = share(want), got.get("ready_share")
        if ratio is not None and (got_ratio is None or abs(ratio - got_ratio) > 1e-9):
            out.append(f"{where} ready share: expected {ratio:.6f}, Prometheus {got_ratio}")

    one("province", expected["province"], seen["province"])
    for scope in ("counties", "areas"):
        for name in sorted(set(expected[scope]) | set(seen[scope])):
            one(f"{'county' if scope == 'counties' else 'area'} {name}", expected[scope].get(name, {}),
                seen[scope].get(name, {}))
    return out


def agree(what: str, expect: Callable[[float], Figures], prometheus: Proc, timeout: float,
          every: float) -> tuple[Figures, Figures, float]:
    """Wait until the roll-ups of one rule evaluation equal ``expect(at)`` for that evaluation's time ``at``;
    return both and the seconds it took. (A scrape that straddles an evaluation can make one evaluation
    differ from a later query of the same instant: the next evaluation is tried.)"""
    started = time.monotonic()
    last: list[str] = []
    found: list[Figures] = []

    def check() -> bool:
        nonlocal last
        at = rules_time(PROMETHEUS_PORT)
        seen, want = from_rules(PROMETHEUS_PORT, at), expect(at)
        last = differences(want, seen)
        found[:] = [seen, want]
        return not last

    try:
        wait_for(what, check, timeout, prometheus, every=every)
    except RuntimeError:
        raise RuntimeError(f"{what}: not within {timeout:g}s:\n  " + "\n  ".join(last[:20])) from None
    return found[0], found[1], time.monotonic() - started


def api_difference(seen: Figures, ports: dict[int, int], dead: Figures | None = None) -> int:
    """Sites of the province whose state differs between the roll-ups and the shards' /api/v1/summary now (the
    verdicts that changed since the scrape; 0 when nothing did). ``dead``: a killed shard's figures as unknown."""
    now = total([*summaries(ports).values(), *([dead] if dead else [])])["province"]
    return sum(abs(now.get(s, 0) - seen["province"].get(s, 0)) for s in STATES) // 2


# ---- the run ---------------------------------------------------------------------------------------------------

def run(the: Lab, args: argparse.Namespace) -> dict[str, Any]:
    sites = args.shards * args.sites_per_shard
    write_inventory(the.work / "sites.csv", sites, counties=COUNTIES)
    write_config(the.work / "country.yml", "sites.csv", args.interval, 0,
                 tcp={"timeout_seconds": TCP_TIMEOUT_SECONDS, "concurrency": tcp_concurrency(2 * sites, args.interval)})
    rules = the.work / "readiness.rules.yml"
    sh(sys.executable, "-m", "monitor", "rules", "--for-scale", str(args.for_scale), "-o", str(rules))
    sh("promtool", "check", "rules", str(rules))
    the.drop_echoes()
    listener = the.terminals()
    ports = {k: shard_port(k) for k in range(1, args.shards + 1)}
    shards = {k: the.readiness(f"shard-{k}", the.work / "country.yml", "--shard", f"{k}/{args.shards}",
                               "--listen-port", str(port)) for k, port in ports.items()}
    startup = 180 + sites / 100  # each shard loads the whole inventory before it takes its share
    for k, port in ports.items():
        wait_for(f"shard {k}'s /metrics", functools.partial(cycles, port), startup, shards[k])
    prometheus = start_prometheus(the, "prometheus", PROMETHEUS_PORT, [
        {"job_name": "readiness", "scrape_timeout": scrape_timeout(args.scrape_interval),
         "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports.values()]}]}], args.scrape_interval, rules)
    for k, port in ports.items():
        warm(the, shards[k], port, ("icmp", "tcp"), args.warmup_cycles, args.interval, startup)

    window = CpuWindow({**{f"shard-{k}": p for k, p in shards.items()}, "prometheus": prometheus,
                        "listener": listener})
    before = {k: cycles(p) for k, p in ports.items()}
    cycle_end(ports[1], "icmp", 2 * args.interval + 60, shards[1])
    say(f"steady window: {args.minutes * 60:.0f} s to the end of an ICMP cycle of shard 1")
    window.start()
    until = time.monotonic() + max(0.0, args.minutes * 60 - args.interval / 2)
    while time.monotonic() < until:
        the.alive()
        time.sleep(min(5.0, max(0.0, until - time.monotonic())))
    cycle_end(ports[1], "icmp", 2 * args.interval + 60, shards[1])
    window.stop()
    after = {k: cycles(p) for k, p in ports.items()}

    per_shard: dict[int, dict[str, Any]] = {}
    for k, port in ports.items():
        text = metrics_text(port)
        targets = {m.split('"')[1]: v for m, v in samples(text, "readiness_probe_targets").items() if v}
        owned = samples(text, "readiness_shard_sites").get('kind="polling"', 0)
        skipped = samples(text, "readiness_probe_cycles_skipped_total")
        durations = samples(text, "readiness_probe_cycle_duration_seconds")
        rss, hwm = shards[k].memory_kib()
        per_shard[k] = {
            "sites": int(owned), "targets": int(sum(targets.values())),
            "cpu_share": round(window.share(f"shard-{k}"), 4),
            "rss_mb": round(rss / 1024, 1), "rss_peak_mb": round(hwm / 1024, 1),
            "kib_per_target": round(rss / max(1.0, sum(targets.values())), 3),
            "cycles_in_window": {kind: after[k].get(kind, 0) - before[k].get(kind, 0) for kind in targets},
            "cycles_skipped": {kind: skipped.get(f'kind="{kind}"', 0) for kind in targets},
            "last_cycle_seconds": {kind: round(durations.get(f'kind="{kind}"', 0), 2) for kind in targets}}
    out: dict[str, Any] = {
        "sites": sites, "shards": args.shards, "interval_seconds": args.interval,
        "scrape_interval_seconds": args.scrape_interval, "for_scale": args.for_scale,
        "window_seconds": round(window.seconds, 1), "per_shard": per_shard,
        "prometheus_cpu_share": round(window.share("prometheus"), 4),
        "listener_cpu_share": round(window.share("listener"), 4),
        "prometheus_rss_mb": round(prometheus.memory_kib()[0] / 1024, 1)}

    # The roll-ups equal the shards' own figures added up, both from the scrapes of one rule evaluation.
    timeout = 3 * max(args.interval, args.scrape_interval) + 60
    every = min(5.0, args.scrape_interval / 3)
    whole, _, _ = agree("the roll-ups equal the shards' figures", lambda at: from_shards(PROMETHEUS_PORT, at),
                        prometheus, timeout, every)
    if sum(whole["province"].get(s, 0) for s in STATES) != sites or whole["province"]["terminals"] != 2 * sites:
        raise RuntimeError(f"the province counts {whole['province']}, not the inventory's {sites} sites")
    out["prometheus_head_series"] = head_series(PROMETHEUS_PORT)
    groups = json.loads(get(f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/rules"))["data"]["groups"]
    out["rule_evaluation_seconds"] = {g["name"]: round(float(g["evaluationTime"]), 3) for g in groups}
    out["rollups"] = {"province": whole["province"], "areas": whole["areas"],
                      "counties_checked": len(whole["counties"]), "equal_to_shards": True,
                      "api_sites_changed_since": api_difference(whole, ports)}

    # Kill one shard: its sites turn unknown, the totals stay, ShardDown names it.
    k = args.kill
    last = summaries({k: ports[k]})[k]
    others = {j: p for j, p in ports.items() if j != k}
    say(f"killing shard {k} (SIGKILL)")
    the.kill(f"shard-{k}")
    killed_at = time.monotonic()

    def survivors(at: float) -> Figures:
        # Only the live shards' series are there at ``at`` once the dead one's went stale; its sites as unknown.
        return total([from_shards(PROMETHEUS_PORT, at), as_unknown(last)])

    dead, _, took = agree(f"shard {k}'s sites counted as unknown", survivors, prometheus, timeout, every)
    if sum(dead["province"].get(s, 0) for s in STATES) != sites or dead["province"]["terminals"] != 2 * sites:
        raise RuntimeError(f"with shard {k} down the province counts {dead['province']}, not the inventory's")
    if dead["province"]["terminals_unknown"] < last["province"]["terminals"]:
        raise RuntimeError(f"with shard {k} down only {dead['province']['terminals_unknown']} terminals are unknown, "
                           f"not its {last['province']['terminals']}")

    def shard_down() -> str:
        alerts = json.loads(get(f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/alerts"))["data"]["alerts"]
        mine = [a for a in alerts if a["labels"].get("alertname") == "ShardDown"]
        named = [(a["labels"].get("shard"), a["labels"].get("shards")) for a in mine]
        return mine[0]["state"] if named == [(str(k), str(args.shards))] else ""

    state = wait_for(f"ShardDown for shard {k}", shard_down, timeout, prometheus, every=1)
    alert_seconds = time.monotonic() - killed_at
    firing_seconds = None
    if args.wait_firing and state != "firing":
        wait_for(f"ShardDown for shard {k} firing", lambda: shard_down() == "firing", timeout, prometheus, every=1)
    if shard_down() == "firing":
        firing_seconds = round(time.monotonic() - killed_at, 1)
    out["killed"] = {"shard": k, "sites": sum(last["province"][s] for s in STATES),
                     "province": dead["province"], "areas": dead["areas"], "unknown_after_seconds": round(took, 1),
                     "api_sites_changed_since": api_difference(dead, others, as_unknown(last)),
                     "shard_down": state, "shard_down_after_seconds": round(alert_seconds, 1),
                     "firing_after_seconds": firing_seconds}
    return out


def table(r: dict[str, Any]) -> str:
    lines = [f"country: {r['sites']:,} sites on {r['shards']} shards, probes every {r['interval_seconds']:g} s, "
             f"Prometheus every {r['scrape_interval_seconds']:g} s (rules' for: x{r['for_scale']:g}); "
             f"window {r['window_seconds']:g} s",
             f"  {'shard':>5} {'sites':>7} {'targets':>8} {'CPU':>6} {'RSS MB':>7} {'KiB/t':>6}  cycles / skipped / "
             "last cycle s"]
    for k, s in r["per_shard"].items():
        lines.append(f"  {k:>5} {s['sites']:>7,} {s['targets']:>8,} {s['cpu_share']:>6.3f} {s['rss_mb']:>7.1f} "
                     f"{s['kib_per_target']:>6.2f}  {s['cycles_in_window']} / {s['cycles_skipped']} / "
                     f"{s['last_cycle_seconds']}")
    lines.append(f"  Prometheus: CPU share {r['prometheus_cpu_share']:.3f}, RSS {r['prometheus_rss_mb']} MB, "
                 f"{r['prometheus_head_series']:,} series; TCP listener CPU share {r['listener_cpu_share']:.3f}")
    lines.append(f"  rule groups' last evaluation, seconds: {r['rule_evaluation_seconds']}")
    ro = r["rollups"]
    lines.append(f"  roll-ups = sum of the shards' figures (province, {ro['counties_checked']} counties, areas): "
                 f"{'yes' if ro['equal_to_shards'] else 'NO'}")
    lines.append(f"    province {ro['province']}")
    lines.append(f"    (sites whose verdict changed between that scrape and the shards' /api/v1/summary now: "
                 f"{ro['api_sites_changed_since']})")
    for name, t in sorted(ro["areas"].items()):
        lines.append(f"    {name:8} {t}")
    x = r["killed"]
    lines.append(f"  shard {x['shard']} killed ({x['sites']:,} sites): unknown in the roll-ups after "
                 f"{x['unknown_after_seconds']} s; ShardDown {x['shard_down']} after {x['shard_down_after_seconds']} s"
                 + (f", firing after {x['firing_after_seconds']} s" if x["firing_after_seconds"] else ""))
    lines.append(f"    province {x['province']}")
    lines.append(f"load average {r['load_average_before']} before, {r['load_average_after']} after; "
                 f"{r['cores']} cores")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--sites-per-shard", type=int, default=15_000)
    ap.add_argument("--interval", type=float, default=30.0, help="probe cycle, seconds")
    ap.add_argument("--scrape-interval", type=float, default=15.0, help="Prometheus scrape and rule evaluation")
    ap.add_argument("--minutes", type=float, default=2.0, help="steady window for CPU and memory")
    ap.add_argument("--warmup-cycles", type=int, default=2)
    ap.add_argument("--for-scale", type=float, default=0.1, help="multiply the rules' `for:` (bench copy only)")
    ap.add_argument("--kill", type=int, default=0, help="the shard to kill (default: 3, or the last if fewer)")
    ap.add_argument("--wait-firing", action="store_true", help="after ShardDown is pending, wait until it fires")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.shards < 2:
        ap.error("--shards must be at least 2 (one is killed)")
    args.kill = args.kill or min(3, args.shards)
    if not 1 <= args.kill <= args.shards:
        ap.error(f"--kill must name a shard from 1 to {args.shards}")
    result: dict[str, Any] = {"load_average_before": [round(x, 2) for x in os.getloadavg()], "cores": os.cpu_count()}
    os.chdir(REPO)
    try:
        with lab("countrybench", keep=args.keep) as the:
            result.update(run(the, args))
    except KeyboardInterrupt:
        print("interrupted: the namespace and its processes are gone", file=sys.stderr)
        return 130
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1) if args.json else table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
