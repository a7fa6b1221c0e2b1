"""Each probe kind's targets, built from the config: the probes themselves never see the config.

One builder per kind in :data:`BUILDERS`, keyed like the probe registry (``probes.PROBES``); a test
keeps the two in step. Target keys are the contract with the readiness core: ``SITE/primary``,
``SITE/terminal/ID``, ``SITE/primary/snmp``, ``SITE/neighbours``; and the witnesses' ``monitor/witness/LABEL``
(ICMP, from the config's ``witnesses:``, added by `build_targets`).

A terminal is probed by exactly one kind, under its one key ``SITE/terminal/ID``: HTTP when it declares an
``http:`` check (the check connects too, so a refused connect is still ``refused``), else TCP when it
declares a port, else ICMP.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from monitor.core.model import Site, Terminal, Witness
from monitor.core.readiness import WITNESS_SITE, witness_key
from probes.base import EMPTY, Target
from probes.route import is_address


def icmp_targets(sites: Sequence[Site]) -> list[Target]:
    """Return every link address, and every terminal without a service port.

    A backup sent from a source address carries its primary's address and source, so the probe can tell
    whether its echoes really leave through another interface than the primary's.
    """
    out: list[Target] = []
    for site in sites:
        primary = next((x for x in site.links if x.role == "primary"), None)
        for link in site.links:
            extra = ({"primary_address": primary.address, "primary_source": primary.source or ""}
                     if primary is not None and link is not primary and is_address(link.source) else EMPTY)
            # Interned: the evaluation's flap memory and the proven set key the link by the same text, one copy.
            key = sys.intern(f"{site.id}/{link.role}")
            out.append(Target(key, site.id, link.address, source=link.source, extra=extra))
        out += [Target(f"{site.id}/terminal/{t.id}", site.id, t.address) for t in site.terminals
                if t.port is None and t.http is None]
    return out


def tcp_targets(sites: Sequence[Site]) -> list[Target]:
    """Return one target per terminal that declares a service port and no HTTP check."""
    return [Target(f"{site.id}/terminal/{t.id}", site.id, t.address, t.port)
            for site in sites for t in site.terminals if t.port is not None and t.http is None]


def terminal_url(t: Terminal) -> str:
    """Return the absolute URL a terminal's HTTP check requests: a path goes to https://ADDRESS[:port]."""
    assert t.http is not None
    url = t.http.url
    if not url.startswith("/"):
        return url
    host = f"[{t.address}]" if ":" in t.address else t.address
    port = f":{t.port}" if t.port is not None and t.port != 443 else ""
    return f"https://{host}{port}{url}"


def http_targets(sites: Sequence[Site]) -> list[Target]:
    """Return one target per terminal with an HTTP check; it carries the auth's name only, never a secret."""
    out: list[Target] = []
    for site in sites:
        for t in site.terminals:
            h = t.http
            if h is None:
                continue
            out.append(Target(f"{site.id}/terminal/{t.id}", site.id, t.address, t.port, extra={
                "url": terminal_url(t), "method": h.method, "expect_status": h.expect_status,
                "expect_body": h.expect_body, "headers": dict(h.headers) if h.headers else EMPTY, "ca_file": h.ca_file,
                "tls_verify": h.tls_verify, "follow_redirects": h.follow_redirects, "auth": h.auth}))
    return out


def snmp_targets(sites: Sequence[Site]) -> list[Target]:
    """Return one target per link with an SNMP view, and one per site whose router lists neighbours.

    Each carries its auth's name only; the credentials reach the probe in its settings.
    """
    out: list[Target] = []
    for site in sites:
        neighbours = False
        for link in site.links:
            s = link.snmp
            if s is None:
                continue
            out.append(Target(f"{site.id}/{link.role}/snmp", site.id, s.device, s.port, extra={
                "auth": s.auth, "if_index": s.if_index, "if_name": s.if_name, "rx_sensor": s.rx_sensor,
                "tx_sensor": s.tx_sensor, "role": link.role, "medium": link.medium}))
            if s.neighbours and not neighbours:
                neighbours = True
                out.append(Target(f"{site.id}/neighbours", site.id, s.device, s.port, extra={
                    "auth": s.auth, "expected": tuple((t.id, t.address) for t in site.terminals),
                    "ignore": tuple(sorted({s.device, *(x.address for x in site.links)}))}))
    return out


Builder = Callable[[Sequence[Site]], list[Target]]
BUILDERS: dict[str, Builder] = {"icmp": icmp_targets, "tcp": tcp_targets, "snmp": snmp_targets, "http": http_targets}


def witness_targets(witnesses: Sequence[Witness]) -> list[Target]:
    """Return one ICMP target per witness: what the monitor must reach to trust its own view."""
    return [Target(witness_key(w.label), WITNESS_SITE, w.address) for w in witnesses]


def build_targets(sites: Sequence[Site], witnesses: Sequence[Witness] = ()) -> dict[str, list[Target]]:
    """Return every kind's targets for ``sites``, and the witnesses' among the ICMP targets."""
    out = {kind: build(sites) for kind, build in BUILDERS.items()}
    out["icmp"] = witness_targets(witnesses) + out.get("icmp", [])
    return out
