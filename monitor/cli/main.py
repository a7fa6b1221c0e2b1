"""The `readiness` command line. Exit codes: 0 ok, 1 runtime failure, 2 bad input.

Every command group is a module of this package with ``add_parser(sub)``, listed once in
:data:`COMMANDS`: a module that fails to import is an error, never a silently missing command. The
modules import their work inside the handlers, so ``readiness audit verify`` loads no probe library.
"""

from __future__ import annotations

import argparse
import logging
import sys

from monitor.cli import actions, audit, dashboards, reports, rules, service
from monitor.cli.exits import EXIT_BAD_INPUT, EXIT_FAILURE
from monitor.errors import ConfigError, ReadinessError

COMMANDS = (service.add_parser, rules.add_parser, audit.add_parser, dashboards.add_parser, actions.add_parser,
            reports.add_parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="readiness", description="Election site readiness monitor.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_parser in COMMANDS:
        add_parser(sub)
    return parser


def _print_problems(exc: ConfigError) -> None:
    print(f"error: {len(exc.problems)} problem(s):", file=sys.stderr)
    for p in exc.problems:
        print(f"  {p}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # A line per job run is noise at INFO; skipped (overrunning) cycles are still logged as warnings.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_BAD_INPUT
    except ReadinessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
