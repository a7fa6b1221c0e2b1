"""Probe kinds. The one registry: kind -> probe. Config validation takes the allowed kinds from here."""

from __future__ import annotations

from probes import http, icmp, snmp, tcp
from probes.base import Observation, Probe, ProbeSettings, Target

_ALL: tuple[Probe, ...] = (icmp.PROBE, tcp.PROBE, snmp.PROBE, http.PROBE)
PROBES: dict[str, Probe] = {probe.kind: probe for probe in _ALL}

__all__ = ["PROBES", "Observation", "Probe", "ProbeSettings", "Target"]
