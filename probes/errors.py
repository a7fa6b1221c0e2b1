"""Errors a probe raises on purpose; everything else a probe meets is an Observation with ``ok=False``."""

from __future__ import annotations


class ProbeError(Exception):
    """Base of every error a probe raises on purpose."""


class ProbeUnavailable(ProbeError):
    """A probe kind cannot run on this machine (e.g. no ICMP socket permitted)."""
