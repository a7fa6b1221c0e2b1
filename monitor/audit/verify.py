"""`readiness audit verify BUNDLE`: every file's hash, the events' chain, the signature; each fault named.

Strict by default: the verdict is OK only when everything was proved. What a clean result proves:
the files are the ones the manifest lists, events.jsonl is an unbroken run of the store's hash
chain ending where the manifest says, and the manifest is signed by a key the auditor trusts — one
given with ``--pubkey`` or pinned in a trusted-keys file. A signature by any other key proves only
that *someone* signed it (a forger can re-sign a changed bundle with their own key), so without a
trusted key the report says "signature not checked against a trusted key" and the verdict is not
OK. With ``--data-dir`` it also proves the store still holds those rows unchanged and still reaches
the chain head recorded at export and the store's own checkpoint: rows cut off or rewritten since
show. The report lists what was proved, what failed, and what could not be proved.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.audit.bundle import EVENTS, FORMAT, FORMAT_SHARDS, MANIFEST, manifest_bytes, signed_bytes
from monitor.errors import ReadinessError
from monitor.store.chain import HASHED_COLUMNS, Anchor, connect_readonly, hash_values, row_hash, verify_store

TRUSTED_KEYS_FILENAME = "trusted_keys"  # looked for in the data dir when no --trusted-keys is given


@dataclass(frozen=True, slots=True)
class Finding:
    where: str  # "readiness.csv", "events.jsonl line 12 (seq 48)", "manifest.json signature"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    problems: list[Finding] = field(default_factory=list)  # something is wrong
    unproven: list[str] = field(default_factory=list)  # something could not be checked
    proven: list[str] = field(default_factory=list)  # what the checks established
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """No check failed (but some may not have been made)."""
        return not self.problems

    @property
    def ok(self) -> bool:
        """Every check passed and nothing was left unproved: the only verdict that exits 0."""
        return not self.problems and not self.unproven

    def bad(self, where: str, message: str) -> None:
        self.problems.append(Finding(where, message))

    def text(self, name: str | Path) -> str:
        """Return what verify prints: each problem, what was not and what was proved, the notes, the verdict."""
        lines = [f"FAIL {p}" for p in self.problems] + [f"NOT PROVED: {u}" for u in self.unproven]
        lines += [f"proved: {p}" for p in self.proven] + [f"note: {n}" for n in self.notes]
        if self.problems:
            lines.append(f"NOT INTACT: {name}: {len(self.problems)} problem(s)")
        elif self.unproven:
            lines.append(f"NOT VERIFIED: {name}: no check failed, but {len(self.unproven)} thing(s) could not be "
                         f"proved (above)")
        else:
            lines.append(f"OK: {name} is intact and signed by a trusted key")
        return "\n".join(lines)


class _Bundle:
    """A bundle directory or zip, read file by file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip = zipfile.ZipFile(path) if path.is_file() else None

    def names(self) -> set[str]:
        if self.zip is not None:
            return {n for n in self.zip.namelist() if not n.endswith("/")}
        return {p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()}

    def read(self, name: str) -> bytes:
        """Return a file's bytes; OSError/BadZipFile/KeyError if it cannot be read."""
        if self.zip is not None:
            return self.zip.read(name)
        return (self.path / name).read_bytes()

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def verify_bundle(path: str | Path, *, pubkey: str | Path | None = None, trusted_keys: str | Path | None = None,
                  data_dir: str | Path | None = None) -> VerifyReport:
    """Check a bundle; return every problem found, named by file and row, and what was and was not proved.

    The signature counts only against ``pubkey`` or a key in the ``trusted_keys`` file.
    """
    report = VerifyReport()
    try:
        bundle = _Bundle(Path(path))
    except (OSError, zipfile.BadZipFile) as exc:
        report.bad(str(path), f"cannot open the bundle: {exc}")
        return report
    try:
        manifest = _manifest(bundle, report)
        if manifest is None:
            return report
        before = len(report.problems)
        contents = _files(bundle, manifest, report)
        if len(report.problems) == before:
            report.proven.append(f"the {len(contents)} files are the ones the manifest lists (SHA-256 and size)")
        if manifest.get("format") == FORMAT_SHARDS:
            _shards(manifest, contents, data_dir, report)
        elif EVENTS in contents:
            chain = manifest.get("chain") or {}
            before = len(report.problems)
            rows = _chain(contents[EVENTS], chain, report)
            if len(report.problems) == before:
                report.proven.append(f"{EVENTS} is an unbroken run of the hash chain, rows "
                                     f"{chain.get('first_seq')}..{chain.get('last_seq')} ({len(rows)}), as the "
                                     f"manifest says")
            if data_dir is not None:
                _against_store(rows, chain, data_dir, report)
            else:
                report.notes.append("the store was not consulted (--data-dir): whether it still holds these rows "
                                    "is not part of this verdict")
        _signature(manifest, pubkey, trusted_keys, report)
    finally:
        bundle.close()
    return report


def _manifest(bundle: _Bundle, report: VerifyReport) -> dict[str, Any] | None:
    try:
        raw = bundle.read(MANIFEST)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        report.bad(MANIFEST, f"missing or unreadable ({exc}): nothing can be checked")
        return None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        report.bad(MANIFEST, f"not valid JSON ({exc})")
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        report.bad(MANIFEST, "not a bundle manifest (no file list)")
        return None
    if manifest.get("format") not in (FORMAT, FORMAT_SHARDS):
        report.bad(MANIFEST, f"format {manifest.get('format')!r}, expected {FORMAT!r} or {FORMAT_SHARDS!r}")
    if manifest_bytes(manifest) != raw:
        report.bad(MANIFEST, "edited: its bytes are not the form the exporter writes")
    return manifest


def _files(bundle: _Bundle, manifest: dict[str, Any], report: VerifyReport) -> dict[str, bytes]:
    contents: dict[str, bytes] = {}
    listed: dict[str, Any] = manifest["files"]
    for name, entry in sorted(listed.items()):
        try:
            data = bundle.read(name)
        except (OSError, KeyError) as exc:
            report.bad(name, f"missing ({exc.__class__.__name__})")
            continue
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a zip member damaged: bad CRC or deflate
            report.bad(name, f"corrupt in the zip ({exc})")
            continue
        contents[name] = data
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            report.bad(name, f"SHA-256 {actual} differs from the manifest's {expected} (file changed)")
        elif entry.get("bytes") != len(data):
            report.bad(name, f"{len(data)} bytes, the manifest says {entry.get('bytes')}")
    for name in sorted(bundle.names() - set(listed) - {MANIFEST}):
        report.bad(name, "not listed in the manifest (added)")
    return contents


def _shards(manifest: dict[str, Any], contents: dict[str, bytes], data_dir: str | Path | None,
            report: VerifyReport) -> None:
    """Verify each shard's events file as its own chain; name the shard of every fault."""
    entries = manifest.get("shards")
    if not isinstance(entries, list) or not entries:
        report.bad(f"{MANIFEST} shards", "a multi-shard bundle without its list of shards")
        return
    for number, entry in enumerate(entries, start=1):
        try:
            k, n, name, chain = entry["shard"], entry["shards"], entry["events"], entry["chain"]
        except (KeyError, TypeError):
            report.bad(f"{MANIFEST} shards[{number - 1}]", "not a shard entry (shard, shards, events, chain)")
            continue
        label = f"shard {k} of {n}"
        if k != number or n != len(entries):
            report.bad(f"{MANIFEST} {label}", f"listed as entry {number} of {len(entries)}: shards must be 1..N "
                                              f"in order, each once")
        if name is None:
            report.notes.append(f"{label}: no store was given at export; its {entry.get('sites')} site(s) are "
                                f"reported blind, not ready nor not_ready")
            continue
        if name not in contents:
            if name not in manifest["files"]:
                report.bad(f"{MANIFEST} {label}", f"its events file {name} is not listed in the manifest")
            continue  # a listed file that is missing is already named
        before = len(report.problems)
        rows = _chain(contents[name], chain if isinstance(chain, dict) else {}, report, name, label)
        if len(report.problems) == before:
            report.proven.append(f"{label}: {name} is an unbroken run of its store's hash chain, rows "
                                 f"{chain.get('first_seq')}..{chain.get('last_seq')} ({len(rows)}), as the "
                                 f"manifest says")
    if data_dir is not None:
        report.unproven.append(f"store {data_dir}: not consulted for a multi-shard bundle; verify each shard's "
                               f"store with `readiness audit verify --data-dir DIR`")


def _chain(data: bytes, chain: dict[str, Any], report: VerifyReport, name: str = EVENTS,
           label: str = "") -> list[dict[str, Any]]:
    """Re-compute every row's hash and link; return the rows that parsed. ``label`` (``shard 2 of 3``) names
    whose chain it is in every fault."""
    tag = f" ({label})" if label else ""
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"{name}{tag} line {number}"
        try:
            row = json.loads(line.decode("utf-8"))
            if not isinstance(row, dict) or set(row) != {*HASHED_COLUMNS, "hash"}:
                raise ValueError(f"fields must be {', '.join((*HASHED_COLUMNS, 'hash'))}")
            computed = row_hash(row)
        except (UnicodeDecodeError, ValueError, TypeError) as exc:
            report.bad(where, f"not a stored row ({exc})")
            continue
        rows.append((number, row))
        if computed != row["hash"]:
            report.bad(f"{where} (seq {row['seq']})", "content does not match its hash (row edited)")
    _order_and_links([(n, r) for n, r in rows if isinstance(r["seq"], int)], chain, report, name + tag)
    _ends(rows, chain, report, name + tag)
    return [row for _, row in rows]


def _order_and_links(rows: list[tuple[int, dict[str, Any]]], chain: dict[str, Any], report: VerifyReport,
                     events: str = EVENTS) -> None:
    """Name dropped, duplicated, reordered and re-linked rows (by seq, so one fault is reported once)."""
    by_seq: dict[int, tuple[int, dict[str, Any]]] = {}
    for number, row in rows:
        if row["seq"] in by_seq:
            report.bad(f"{events} line {number} (seq {row['seq']})",
                       f"seq {row['seq']} appears again (first at line {by_seq[row['seq']][0]}): duplicated")
        by_seq.setdefault(row["seq"], (number, row))
    first, last = chain.get("first_seq"), chain.get("last_seq")
    if isinstance(first, int) and isinstance(last, int):
        for seq in range(first, last + 1):
            if seq not in by_seq:
                after = by_seq.get(seq - 1)
                where = f"after line {after[0]}" if after else "in the run"
                report.bad(f"{events} seq {seq}", f"missing {where} (dropped)")
    highest = None
    for number, row in rows:
        seq = row["seq"]
        if highest is not None and seq < highest:
            report.bad(f"{events} line {number} (seq {seq})", f"comes after seq {highest}: out of order (reordered)")
        highest = seq if highest is None else max(highest, seq)
        before = by_seq.get(seq - 1)
        link = chain.get("first_prev_hash") if seq == first else (before[1]["hash"] if before else None)
        if link is not None and row["prev_hash"] != link:
            report.bad(f"{events} line {number} (seq {seq})",
                       f"prev_hash does not match seq {seq - 1}'s hash (a row before it was replaced or inserted)")


def _ends(rows: list[tuple[int, dict[str, Any]]], chain: dict[str, Any], report: VerifyReport,
          events: str = EVENTS) -> None:
    where = f"{MANIFEST} chain" if events == EVENTS else f"{MANIFEST} chain of {events}"
    if len(rows) != chain.get("rows"):
        report.bad(events, f"{len(rows)} rows, the manifest says {chain.get('rows')}")
    if not rows:
        return
    by_seq = {row["seq"]: (number, row) for number, row in rows}
    first, last = chain.get("first_seq"), chain.get("last_seq")
    for number, row in rows:
        if isinstance(first, int) and isinstance(last, int) and not first <= row["seq"] <= last:
            report.bad(f"{events} line {number} (seq {row['seq']})",
                       f"outside the exported run {first}..{last} (inserted)")
    if last in by_seq and by_seq[last][1]["hash"] != chain.get("last_hash"):
        report.bad(f"{events} line {by_seq[last][0]} (seq {last})",
                   f"the run should end with hash {chain.get('last_hash')} (last row replaced)")
    head = chain.get("head_seq")
    if not isinstance(head, int) or head < (chain.get("last_seq") or 0):
        report.bad(where, f"chain head {head} is before the last exported row {chain.get('last_seq')}")
    elif head == chain.get("last_seq") and chain.get("head_hash") != chain.get("last_hash"):
        report.bad(where, "the chain head and the last exported row are the same row with different hashes")


def _against_store(rows: list[dict[str, Any]], chain: dict[str, Any], data_dir: str | Path,
                   report: VerifyReport) -> None:
    """Check that the store still holds the exported rows, the chain head recorded at export and its checkpoint."""
    where = f"store {data_dir}"
    head_seq, head_hash = chain.get("head_seq"), chain.get("head_hash")
    anchor = None
    if isinstance(head_seq, int) and head_seq > 0 and isinstance(head_hash, str):
        anchor = Anchor(head_seq, head_hash, "at export (manifest.json)")
    try:
        result = verify_store(data_dir, anchor=anchor)
    except ReadinessError as exc:
        report.bad(where, str(exc))
        return
    if not result.ok:
        report.bad(where, result.reason)
    report.unproven += [f"{where}: {u}" for u in result.unproven]
    report.notes += [f"{where}: {w}" for w in result.warnings]
    if result.ok:
        report.proven.append(f"{where}: its chain is intact ({result.rows} rows)"
                             + "".join(f"; it reaches {a}" for a in result.anchored))
    if not rows:
        return
    seqs = [row["seq"] for row in rows if isinstance(row.get("seq"), int)]
    if not seqs:
        return
    conn = connect_readonly(data_dir)
    try:
        stored = {values[0]: values for values in conn.execute(
            f"SELECT {', '.join(HASHED_COLUMNS)}, hash FROM events WHERE seq BETWEEN ? AND ?",
            (min(seqs), max(seqs)))}
    finally:
        conn.close()
    differ = []
    for row in rows:
        values = stored.get(row["seq"])
        try:
            same = values is not None and values[10] == row["hash"] and hash_values(values) == row_hash(row)
        except (TypeError, ValueError):
            same = False
        if not same:
            differ.append(row["seq"])
    if differ:
        report.bad(where, f"{len(differ)} exported row(s) differ from the store or are gone from it, first seq "
                          f"{differ[0]}")
    elif result.ok:
        report.proven.append(f"{where}: holds the exported rows {min(seqs)}..{max(seqs)} unchanged")


def _signature(manifest: dict[str, Any], pubkey: str | Path | None, trusted_keys: str | Path | None,
               report: VerifyReport) -> None:
    from monitor.audit import signing

    where = f"{MANIFEST} signature"
    sig = manifest.get("signature")
    trusted: dict[str, str] = {}  # fingerprint -> where it is trusted from
    try:
        if pubkey is not None:
            trusted[signing.fingerprint(signing.load_public_key(pubkey))] = f"the given key {pubkey}"
        if trusted_keys is not None:
            pinned = signing.load_trusted_keys(trusted_keys)
            trusted.update({fp: f"pinned in {trusted_keys} ({label})" for fp, label in pinned.items()
                            if fp not in trusted})
    except signing.SigningKeyError as exc:
        report.bad("trusted key", str(exc))
        return
    untrusted = "signature not checked against a trusted key"
    if sig is None:
        if trusted:
            report.bad(where, "missing: the bundle is not signed")
        else:
            report.unproven.append(f"{untrusted}: the bundle is not signed, so nothing shows who wrote it")
        return
    try:
        embedded = signing.public_key_from_text(sig["public_key"])
        value = sig["value"]
    except (KeyError, TypeError, ValueError) as exc:
        report.bad(where, f"malformed ({exc})")
        return
    fp = signing.fingerprint(embedded)
    if fp != sig.get("fingerprint"):
        report.bad(where, "the fingerprint does not belong to the public key")
    if trusted and fp not in trusted:
        given = ", ".join(sorted(trusted))
        report.bad(where, f"made with key {fp}, not a trusted one ({given}): re-signed by someone else")
        return
    if not signing.verify(embedded, signed_bytes(manifest), str(value)):
        report.bad(where, "does not verify: the manifest was changed after signing, or the signature replaced")
    elif not trusted:
        report.unproven.append(f"{untrusted}: it is signed by {fp}, but anyone can sign with a key of their own; "
                               f"give the committee's key with --pubkey or pin it in a {TRUSTED_KEYS_FILENAME} file")
    else:
        report.proven.append(f"the manifest is signed by {fp}, {trusted[fp]}")
