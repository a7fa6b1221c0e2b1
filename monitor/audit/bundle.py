"""The audit bundle's format: its file names and the one byte form of its manifest.

Shared by the exporter and the verifier; imports only the store's canonical JSON, so an auditor's
``readiness audit verify`` loads no probe, web or config code.

Two forms, both a directory or a zip of flat files, each listed in ``manifest.json`` with its SHA-256 and size:

- ``readiness-audit-bundle/1``, from one store: ``events.jsonl`` is the store's contiguous run of rows over the
  period and ``manifest.chain`` its ends (``first_seq``, ``first_prev_hash``, ``last_seq``, ``last_hash``, ``rows``)
  and the store's head at export (``head_seq``, ``head_hash``).
- ``readiness-audit-bundle/2``, from the stores of a deployment's shards (``--shard K/N``, one store each):
  no ``events.jsonl`` and no ``manifest.chain``; instead ``manifest.shards`` lists every shard 1..N in order:
  ``shard`` (K), ``shards`` (N), ``sites`` (the reported sites it owns), ``blind`` (the intervals it has no
  record of, or was blind in, as ``{start, end}``), ``store`` (the data dir's name, null when none was given),
  ``events`` (``events-shard-K-of-N.jsonl``, null without a store) and ``chain`` (that file's chain facts, as
  ``manifest.chain`` above, null without a store). Each shard's file is a run of its own store's hash chain,
  verified apart from the others; the figures (summary.json, the sheets, the report) cover the whole inventory,
  each site from the shard that owns it, a shard's blind time its sites' unknown time.

A /1 verifier refuses a /2 bundle by its format, rather than passing it without checking any chain.
"""

from __future__ import annotations

import json
from typing import Any

from monitor.store.chain import canonical_json

FORMAT = "readiness-audit-bundle/1"
FORMAT_SHARDS = "readiness-audit-bundle/2"
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


def shard_events_name(k: int, n: int) -> str:
    """Return the events file of shard ``k`` of ``n`` in a multi-shard bundle."""
    return f"events-shard-{k}-of-{n}.jsonl"
