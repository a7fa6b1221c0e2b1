"""The demo's SNMP world: one snmpsim agent serving every county's fiber switch and backup router.

Fiber switches carry transceiver readings (most healthy, a few drifting toward the -25 dBm threshold,
one under it), encoded as real switches do (ENTITY-SENSOR-MIB watts, scale milli, precision 4: see
``monitor.snmpsim.optical_watts``), one port is oper down although its address still answers ICMP over
loopback, and one county's switch never answers at all (its recording does not exist).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from monitor.demo import province as dp
from monitor.demo.snmpsim import DeviceSpec, Port, SnmpsimHandle, interface_device, numeric, start_snmpsim, write_device


def _ports(sites: list[dict[str, Any]], device: str) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for s in sites:
        for link in s["links"]:
            ref = link.get("snmp")
            if ref and ref["auth"] == device:
                out.append((ref.get("if_index") or int(ref["if_name"].split("/")[1]), s))
    return out


def devices(sites: list[dict[str, Any]], seed: int = 1405) -> dict[str, DeviceSpec]:
    """Return the device specs of the province, by community name (the dead switch left out)."""
    rnd = random.Random(seed)
    out: dict[str, DeviceSpec] = {}
    for name in dp.snmp_devices(sites):
        if name == f"sw-{dp.DEAD_SWITCH}":
            continue
        fiber = name.startswith("sw-")
        ports = []
        for if_index, site in sorted(_ports(sites, name), key=lambda p: p[0]):
            traffic = rnd.randint(2_000, 40_000) * 1000  # octets per second
            rx = round(rnd.uniform(-17.0, -6.0), 1) if fiber else None
            roll = rnd.random()
            if fiber and roll < 0.08:
                rx = round(rnd.uniform(-24.8, -23.1), 1)  # drifting toward the threshold: warning band
            elif fiber and roll < 0.11:
                rx = round(rnd.uniform(-27.5, -25.5), 1)  # under -25 dBm: degraded
            oper = not (fiber and 0.11 <= roll < 0.14)
            ports.append(Port(
                if_index=if_index, name=f"Gi0/{if_index}", alias=site["name"], oper_up=oper,
                last_change_ticks=rnd.randint(100, 8_000_000),
                in_octets=numeric("Counter64", initial=rnd.randint(0, 10**12), rate=traffic),
                out_octets=numeric("Counter64", initial=rnd.randint(0, 10**12), rate=traffic // 3),
                in_errors=numeric("Counter32", initial=0, rate=3.0) if roll > 0.97 else 0,
                rx_dbm=rx, tx_dbm=round(rnd.uniform(-4.0, -1.0), 1) if fiber else None,
            ))
        out[name] = DeviceSpec(ports=ports, name=name)
    return out


def start(workdir: Path, sites: list[dict[str, Any]], port: int = dp.SNMP_PORT) -> SnmpsimHandle:
    """Write the recordings under ``workdir`` and start snmpsim on 127.0.0.1:``port``."""
    data = workdir / "snmp"
    data.mkdir(parents=True, exist_ok=True)
    for name, spec in devices(sites).items():
        write_device(data, name, interface_device(spec))
    return start_snmpsim(data, port, work_dir=workdir / "snmpsim")
