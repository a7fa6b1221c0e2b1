"""``readiness rules``: write the Prometheus recording and alerting rules."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def cmd_rules(args: argparse.Namespace) -> int:
    from monitor.rules import RuleOptions, render_rules

    options = RuleOptions(grafana_url=args.grafana_url, runbook_url=args.runbook_url, job=args.job,
                          for_scale=args.for_scale)
    if args.config:
        from monitor.config.loader import load_config
        options = replace(options, policy=load_config(args.config).policy)
    text = render_rules(options)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``readiness rules``: write the Prometheus recording and alerting rules."""
    p = sub.add_parser("rules", help="generate the Prometheus recording and alerting rules")
    p.add_argument("-o", "--output", help="write here instead of stdout")
    p.add_argument("--config", help="take the policy from this config (default: the built-in policy)")
    p.add_argument("--grafana-url", default="http://127.0.0.1:3000", help="Grafana base URL for dashboard links")
    p.add_argument("--runbook-url", default="docs/runbook.md", help="runbook URL; alert anchors are appended")
    p.add_argument("--job", default="readiness", help="Prometheus job that scrapes the monitors")
    p.add_argument("--for-scale", type=_positive, default=1.0, metavar="FACTOR",
                   help="multiply every `for:` and `keep_firing_for:` (tests: 0.02 turns 5m into 6s)")
    p.set_defaults(func=cmd_rules)

