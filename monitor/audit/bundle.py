"""The audit bundle's format: its file names and the one byte form of its manifest.

Shared by the exporter and the verifier; imports only the store's canonical JSON, so an auditor's
``readiness audit verify`` loads no probe, web or config code.
"""

from __future__ import annotations

import json
from typing import Any

from monitor.store.chain import canonical_json

FORMAT = "readiness-audit-bundle/1"
MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
FILES = ("readiness.csv", "readiness.xlsx", "summary.json", EVENTS, "report.html")


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """Return the one byte form of a manifest that verify accepts (sorted keys, 2-space indent)."""
    return (json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=2) + "\n").encode("utf-8")


def signed_bytes(manifest: dict[str, Any]) -> bytes:
    """Return what the signature covers: the manifest's canonical JSON without the signature's value."""
    body = dict(manifest)
    if "signature" in body:
        body["signature"] = {k: v for k, v in body["signature"].items() if k != "value"}
    return canonical_json(body).encode("utf-8")
