"""The README is a catalogue: its command table lists exactly the CLI's commands, and it opens with
the two commands CI runs."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from monitor.cli.main import build_parser

ROOT = Path(__file__).parents[1]


def cli_commands() -> set[str]:
    out = set()

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out.add(prefix)
            return
        for name, sub in subs[0].choices.items():
            walk(sub, f"{prefix} {name}".strip())

    walk(build_parser(), "")
    return out


def test_readme_lists_every_command() -> None:
    """Every leaf command of `readiness` has a row in the README's table, and no row names a ghost."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `readiness ([a-z][a-z ]*?)(?: [A-Z\[-].*?)?`", text, re.M)
    assert set(rows) == cli_commands()


def test_readme_opens_with_the_two_commands_ci_runs() -> None:
    """The first code block runs the demo and the tests; .ci/run runs the same test command."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```")[1]
    demo, tests = [line.split("#")[0].strip() for line in block.strip().splitlines()[1:3]]
    assert demo.endswith("readiness demo")
    test_command = tests.split("&& ", 1)[1]
    assert test_command in (ROOT / ".ci" / "run").read_text()
