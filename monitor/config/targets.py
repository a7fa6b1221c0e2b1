"""Each probe kind's targets, built from the config: the probes themselves never see the config.

One builder per kind in :data:`BUILDERS`, keyed like the probe registry (``probes.PROBES``); a test
keeps the two in step. Target keys are the contract with the readiness core: ``SITE/primary``,
``SITE/terminal/ID``, ``SITE/primary/snmp``, ``SITE/neighbours``.

A terminal is probed by exactly one kind, under its one key ``SITE/terminal/ID``: HTTP when it declares an
``http:`` check (the check connects too, so a refused connect is still ``refused``), else TCP when it
declares a port, else ICMP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from monitor.core.model import Site, Terminal
from probes.base import Target


def icmp_targets(sites: Sequence[Site]) -> list[Target]:
    """Return every link address, and every terminal without a service port."""
    out: list[Target] = []
    for site in sites:
        out += [Target(f"{site.id}/{link.role}", site.id, link.address, source=link.source) for link in site.links]
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
                "expect_body": h.expect_body, "headers": dict(h.headers), "ca_file": h.ca_file,
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


def build_targets(sites: Sequence[Site]) -> dict[str, list[Target]]:
    """Return every kind's targets for ``sites``."""
    return {kind: build(sites) for kind, build in BUILDERS.items()}
