"""The built-in demo province: about 120 sites across Ilam's counties, deterministic, on 127.x addresses.

`readiness demo` serves this province; config/demo.yaml and config/demo-sites.yaml hold the same
(a test regenerates them and fails if they differ).
"""

from __future__ import annotations

import random
from typing import Any

import yaml

# (id code, county, Persian county name, lat, lon, polling sites)
COUNTIES = (
    ("ILM", "Ilam", "ایلام", 33.637, 46.423, 20),
    ("EYV", "Eyvan", "ایوان", 33.827, 46.310, 11),
    ("CHD", "Chardavol", "چرداول", 33.766, 46.573, 10),
    ("SRV", "Sirvan", "سیروان", 33.683, 46.660, 8),
    ("MLK", "Malekshahi", "ملکشاهی", 33.383, 46.598, 8),
    ("MHR", "Mehran", "مهران", 33.122, 46.165, 10),
    ("BDR", "Badreh", "بدره", 33.306, 47.040, 7),
    ("DSH", "Darreh Shahr", "دره‌شهر", 33.142, 47.376, 11),
    ("ABD", "Abdanan", "آبدانان", 32.993, 47.419, 10),
    ("DHL", "Dehloran", "دهلران", 32.694, 47.268, 12),
    ("HLY", "Holeylan", "هلیلان", 33.730, 46.880, 5),
)
PLACES = ("دبستان", "دبیرستان", "مسجد", "حسینیه", "کانون فرهنگی", "فرمانداری", "بخشداری", "مدرسه", "سالن ورزشی",
          "خانه بهداشت")
NAMES = ("شهید بهشتی", "امام خمینی", "فردوسی", "سعدی", "حافظ", "شهید رجایی", "انقلاب", "آزادی", "بهار", "کوثر",
         "امام علی", "شهید مطهری", "فجر", "ولیعصر", "نور", "پیام", "شهید باهنر", "طالقانی", "زینبیه", "قائم")
VILLAGES = ("چشمه‌کبود", "سرابله", "زرنه", "ارکواز", "مورموری", "ماژین", "موسیان", "پهله", "صالح‌آباد", "میمه",
            "هفت‌چشمه", "بانکول", "گنجوان", "توحید", "چوار")
TERMINAL_PORT = 18080
SNMP_PORT = 16161  # the demo's snmpsim agent on 127.0.0.1
DEAD_SWITCH = "HLY"  # this county's fiber switch never answers SNMP
DEADLINE = "2026-12-31T23:59:59+03:30"
# Each county's first polling site has a web terminal ("W1") checked over HTTPS, its certificate issued at
# start-up by a throw-away CA (monitor/demo/tls.py) whose certificate the demo writes next to its config.
HTTPS_PORT = 18443
CA_FILE = "demo-ca.pem"
HTTPS_ERROR_SITE = "ILM-001"  # its web terminal answers 500
HTTPS_SHORT_CERT_SITE = "EYV-001"  # its web terminal's certificate expires before the deadline


def primary_address(i: int) -> str:
    return f"127.11.{i // 250}.{i % 250 + 1}"


def backup_address(i: int) -> str:
    return f"127.12.{i // 250}.{i % 250 + 1}"


def https_terminals(sites: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Return (site id, address) of every web terminal checked over HTTPS."""
    return [(s["id"], t["address"]) for s in sites for t in s.get("terminals", []) if "http" in t]


def terminal_address(i: int, k: int) -> str:
    return f"127.13.{i % 250}.{k + 1 + 10 * (i // 250)}"


def _port_ref(device: str, n: int) -> dict[str, Any]:
    # Every site's port on its county's switch; half by name, half by ifIndex, as inventories come.
    ref: dict[str, Any] = {"device": "127.0.0.1", "port": SNMP_PORT, "auth": device}
    if n % 2:
        ref["if_name"] = f"Gi0/{n}"
    else:
        ref["if_index"] = n
    return ref


def snmp_devices(sites: list[dict[str, Any]]) -> list[str]:
    """Return the community (= device) names the province's links refer to."""
    return sorted({link["snmp"]["auth"] for s in sites for link in s["links"] if "snmp" in link})


def province(seed: int = 1405) -> list[dict[str, Any]]:
    """Return the demo province's sites as inventory dicts (aggregation nodes first)."""
    rnd = random.Random(seed)
    sites: list[dict[str, Any]] = []
    i = 0
    for code, county, county_fa, lat, lon, count in COUNTIES:
        agg = f"AGG-{code}"
        sites.append({
            "id": agg, "name": f"گره تجمیع {county_fa}", "county": county, "area": "urban", "kind": "node",
            "location": {"lat": round(lat, 4), "lon": round(lon, 4)},
            "links": [{"role": "primary", "medium": "fiber", "address": primary_address(i)},
                      {"role": "backup", "medium": "microwave", "address": backup_address(i)}],
        })
        i += 1
        for n in range(1, count + 1):
            rural = n > count // 2
            place = rnd.choice(PLACES)
            where = rnd.choice(VILLAGES) if rural else county_fa
            name = f"{place} {rnd.choice(NAMES)} {where}"
            site: dict[str, Any] = {
                "id": f"{code}-{n:03d}", "name": name, "county": county, "area": "rural" if rural else "urban",
                "upstream": agg,
                "location": {"lat": round(lat + rnd.uniform(-0.18, 0.18), 4),
                             "lon": round(lon + rnd.uniform(-0.22, 0.22), 4)},
                "links": [{"role": "primary", "medium": "fiber", "address": primary_address(i),
                           "snmp": _port_ref(f"sw-{code}", n)}],
            }
            if rnd.random() > 0.05:
                medium = rnd.choice(("vsat", "lte")) if rural else rnd.choice(("lte", "microwave"))
                site["links"].append({"role": "backup", "medium": medium, "address": backup_address(i),
                                      "snmp": _port_ref(f"bk-{code}", n)})
            terminals = rnd.randint(2, 4) if rural else rnd.randint(3, 5)
            site["terminals"] = [{"id": f"T{k + 1}", "address": terminal_address(i, k), "port": TERMINAL_PORT}
                                 for k in range(terminals)]
            if n == 1:
                site["terminals"].append({"id": "W1", "address": terminal_address(i, terminals), "port": HTTPS_PORT,
                                          "http": {"url": "/health", "expect_body": "ready", "ca_file": CA_FILE}})
            sites.append(site)
            i += 1
    return sites


def county_owner(county: str) -> str:
    """Return who answers for a demo county (the config's ``counties:``; Alertmanager routes on it)."""
    return f"{county} ICT team"


SMTP_USER, SMTP_PASSWORD_ENV = "readiness-demo", "READINESS_DEMO_SMTP_PASSWORD"


def config_doc(port: int = 9108, inventory: str = "demo-sites.yaml", *, data_dir: str | None = None,
               smtp: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the demo config (without sites: they live in the inventory file); ``smtp`` overrides the mail
    server's settings (host, port, ca_file), ``data_dir`` names the event store."""
    doc = {
        "programme": {"name": "آمادگی انتخابات الکترونیکی استان ایلام", "deadline": DEADLINE,
                      "timezone": "Asia/Tehran", "calendar": "jalali"},
        "listen": {"host": "127.0.0.1", "port": port},
        "probes": {
            "icmp": {"interval_seconds": 15, "count": 3, "spacing_seconds": 0.2, "timeout_seconds": 1.0,
                     "jitter_seconds": 1},
            "tcp": {"interval_seconds": 15, "timeout_seconds": 2.0, "jitter_seconds": 1},
            "snmp": {"interval_seconds": 30, "timeout_seconds": 1.0, "retries": 1, "jitter_seconds": 1},
            "http": {"interval_seconds": 15, "timeout_seconds": 2.0, "jitter_seconds": 1},
        },
        # One auth per device: snmpsim picks the recording by community. Demo communities are not secret.
        "auths": {name: {"version": "2c", "community": name} for name in snmp_devices(province())},
        "policy": {"require_backup": True, "terminals_min_ratio": 0.75},
        # The demo shows every panel, so it exports the per-link detail too (docs/metrics.md: the budget).
        "metrics": {"detail": True},
        "inventory": [inventory],
        # Every county has an owner: the API, the board, the reports and the ActionOverdue alert name them.
        "counties": {county: {"owner": county_owner(county), "contact": f"ict-{code.lower()}@ilam.example"}
                     for code, county, *_ in COUNTIES},
        "actions": {"unowned_after_seconds": 3600},
        # The committee's weekly report, mailed over STARTTLS with a login (`readiness demo --smtp HOST:PORT`).
        "smtp": {"host": "127.0.0.1", "port": 2525, "starttls": True, "username": SMTP_USER,
                 "password_env": SMTP_PASSWORD_ENV, "sender": "readiness-demo@ilam.example", **(smtp or {})},
        "reports": [{"name": "weekly", "schedule": "0 8 * * sat", "formats": ["html", "pdf", "xlsx"],
                     "recipients": ["committee@ilam.example"]}],
    }
    if data_dir is not None:
        doc["data_dir"] = data_dir
    return doc


def dump(doc: Any) -> str:
    """Render YAML the way the committed demo files are written."""
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120)


def files(port: int = 9108, *, data_dir: str | None = None, smtp: dict[str, Any] | None = None) -> dict[str, str]:
    """Return {file name: text} of the demo config and inventory."""
    head = "# Generated by `python -m monitor.demo.province config/`: the province `readiness demo` serves.\n"
    return {"demo.yaml": head + dump(config_doc(port, data_dir=data_dir, smtp=smtp)),
            "demo-sites.yaml": head + dump({"sites": province()})}


if __name__ == "__main__":
    import sys
    from pathlib import Path

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "config")
    for name, text in files().items():
        (out / name).write_text(text, encoding="utf-8")
