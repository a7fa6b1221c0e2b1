"""``readiness dashboards build|push``. The Grafana SDK and client load only when a command runs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dashboards import FOLDER_TITLE, FOLDER_UID
from monitor.cli.exits import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    from dashboards.build import HERE, stale, write

    out = Path(args.out) if args.out else HERE
    if args.check:
        bad = stale(out)
        for name in bad:
            print(f"stale: {out / name} (run `readiness dashboards build`)", file=sys.stderr)
        return EXIT_FAILURE if bad else EXIT_OK
    for path in write(out):
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def cmd_push(args: argparse.Namespace) -> int:
    from dashboards.build import PushError, push

    token = os.environ.get(args.token_env, "")
    if not token:
        print(f"error: set {args.token_env} to a Grafana service-account token", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.url.startswith(("http://", "https://")):
        print(f"error: --url must start with http:// or https://, got {args.url!r}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        uids = push(args.url, token, folder_uid=args.folder_uid, folder_title=args.folder_title)
    except PushError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    for uid in uids:
        print(f"pushed {uid} to {args.url.rstrip('/')}/d/{uid}", file=sys.stderr)
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `readiness dashboards build|push` on the CLI's subparsers."""
    p = sub.add_parser("dashboards", help="Grafana dashboards: regenerate the JSON or push it to Grafana")
    dsub = p.add_subparsers(dest="dashboards_command", required=True)
    q = dsub.add_parser("build", help="write dashboards/*.json from the builders")
    q.add_argument("--out", help="directory to write into (default: the dashboards package)")
    q.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed file is stale")
    q.set_defaults(func=cmd_build)
    q = dsub.add_parser("push", help="save every dashboard in a Grafana folder through its HTTP API")
    q.add_argument("--url", required=True, help="Grafana base URL, e.g. https://grafana.example:3000")
    q.add_argument("--token-env", default="GRAFANA_TOKEN",
                   help="environment variable holding the service-account token (default GRAFANA_TOKEN)")
    q.add_argument("--folder-uid", default=FOLDER_UID, help=f"folder to save into (default {FOLDER_UID})")
    q.add_argument("--folder-title", default=FOLDER_TITLE, help="title if the folder must be created")
    q.set_defaults(func=cmd_push)
