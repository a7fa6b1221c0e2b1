"""``readiness audit export|verify|keygen``. Handlers import their work lazily: verifying loads no probe code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor.cli.exits import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from monitor.audit.export import AuditError, export, parse_period
    from monitor.audit.shards import export_shards, shard_stores
    from monitor.audit.signing import SigningKeyError
    from monitor.config.loader import load_config

    config = load_config(args.config)
    dirs = args.data_dir or [config.data_dir]
    try:
        if len(dirs) > 1:
            if len(set(map(Path, dirs))) < len(dirs):
                raise AuditError(f"a --data-dir is given twice: {', '.join(dirs)}")
            if args.with_report:
                raise AuditError("--with-report takes one --data-dir: the committee's report is one store's "
                                 "(export each shard's report with its own store)")
            shard_stores(config, dirs, force=args.force)  # a bad store is named before any other complaint
            period = parse_period(config, dirs, args.start, args.end)
            manifest = export_shards(config, dirs, args.output, period, county=args.county, sign_key=args.sign,
                                     force=args.force)
        else:
            period = parse_period(config, dirs[0], args.start, args.end)
            manifest = export(config, dirs[0], args.output, period, county=args.county, sign_key=args.sign,
                              force=args.force, with_report=args.with_report)
    except (ValueError, AuditError, SigningKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    signed = f", signed by {manifest['signature']['fingerprint']}" if "signature" in manifest else ""
    if "shards" in manifest:
        print(f"wrote {args.output}: {manifest['config']['sites']} sites from {len(manifest['shards'])} shards{signed}")
        for entry in manifest["shards"]:
            chain = entry["chain"]
            what = ("no store: its sites are blind" if chain is None else
                    f"{entry['store']}: {chain['rows']} events (rows {chain['first_seq']}..{chain['last_seq']}, "
                    f"chain head {chain['head_seq']})")
            print(f"  shard {entry['shard']} of {entry['shards']}, {entry['sites']} sites: {what}")
    else:
        chain = manifest["chain"]
        print(f"wrote {args.output}: {manifest['config']['sites']} sites, {chain['rows']} events "
              f"(rows {chain['first_seq']}..{chain['last_seq']}, chain head {chain['head_seq']}){signed}")
    if manifest["period"].get("clipped"):
        print(f"note: {manifest['period']['clipped']['note']}")
    if "committee_report" in manifest:
        print(f"with the committee's report for the period: {manifest['committee_report']['file']}")
    print(f"config versions in force over the period: {', '.join(manifest['config']['versions_in_force']) or 'none'}")
    if not manifest["config"]["recorded_in_store"]:
        print(f"warning: config {manifest['config']['version']} was never recorded in force (--force)")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from monitor.audit.verify import TRUSTED_KEYS_FILENAME, verify_bundle
    from monitor.store.chain import verify_store

    if args.bundle is None and args.data_dir is None:
        print("error: give a bundle, --data-dir, or both", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.bundle is None:
        result = verify_store(args.data_dir)
        print(f"{args.data_dir}: {result}")
        return EXIT_OK if result.proven else EXIT_FAILURE
    if not Path(args.bundle).exists():
        print(f"error: {args.bundle}: no such bundle", file=sys.stderr)
        return EXIT_BAD_INPUT
    trusted = args.trusted_keys
    if trusted is None and args.data_dir is not None and (Path(args.data_dir) / TRUSTED_KEYS_FILENAME).is_file():
        trusted = str(Path(args.data_dir) / TRUSTED_KEYS_FILENAME)
    report = verify_bundle(args.bundle, pubkey=args.pubkey, trusted_keys=trusted, data_dir=args.data_dir)
    print(report.text(args.bundle))
    return EXIT_OK if report.ok else EXIT_FAILURE


def cmd_keygen(args: argparse.Namespace) -> int:
    from monitor.audit import signing

    prefix = Path(args.output)
    private, public = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    fp = signing.generate_keypair(private, public, force=args.force)
    print(f"wrote {private} (private, mode 0600: keep it offline) and {public} (give this to auditors)\n"
          f"fingerprint {fp}")
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``readiness audit export|verify|keygen``."""
    p = sub.add_parser("audit", help="export verifiable audit bundles, verify them and the store")
    asub = p.add_subparsers(dest="audit_command", required=True)
    q = asub.add_parser("export", help="write an audit bundle (a directory, or a .zip)")
    q.add_argument("--config", required=True, help="the config: site names, counties, programme")
    q.add_argument("--data-dir", action="append", metavar="DIR",
                   help="the event store (default: data_dir from the config); repeat it, one per shard, for one "
                        "bundle of a sharded deployment (each shard's chain verified apart, figures for the whole "
                        "inventory, a shard without a store blind)")
    q.add_argument("--from", dest="start", metavar="DATE",
                   help="period start: YYYY-MM-DD[ HH:MM], Jalali (1404-12-01) or Gregorian (default: first event)")
    q.add_argument("--to", dest="end", metavar="DATE", help="period end; a bare date includes that day (default: now)")
    q.add_argument("--county", help="only this county's sites")
    q.add_argument("--sign", metavar="KEYFILE", help="sign the manifest with this Ed25519 private key")
    q.add_argument("--force", action="store_true",
                   help="export even with a config version the store never recorded in force (the report says so)")
    q.add_argument("--with-report", action="store_true",
                   help="add the committee's report for the period as a PDF (needs headless Chromium); listed in "
                        "the manifest and checked by verify like every other file")
    q.add_argument("-o", "--output", required=True, metavar="OUT", help="bundle directory, or OUT.zip")
    q.set_defaults(func=cmd_export)
    q = asub.add_parser("verify", help="check a bundle's files, events and signature, and/or a store's chain; "
                                       "exits 0 only when everything was proved")
    q.add_argument("bundle", nargs="?", help="bundle directory or .zip")
    q.add_argument("--pubkey", metavar="KEY", help="the public key the bundle must be signed with")
    q.add_argument("--trusted-keys", metavar="FILE",
                   help="keys the bundle may be signed with, one a line (default: DATA_DIR/trusted_keys if there); "
                        "without it or --pubkey a bundle is never verified as trusted")
    q.add_argument("--data-dir", help="verify this store's chain and checkpoint (with a bundle: also against "
                                      "the bundle)")
    q.set_defaults(func=cmd_verify)
    q = asub.add_parser("keygen", help="write an Ed25519 key pair for signing bundles")
    q.add_argument("-o", "--output", default="readiness-audit", metavar="PREFIX",
                   help="writes PREFIX.key (0600) and PREFIX.pub (default: readiness-audit)")
    q.add_argument("--force", action="store_true", help="replace existing key files")
    q.set_defaults(func=cmd_keygen)
