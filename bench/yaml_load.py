"""Read a 50,000-site YAML inventory with our event reader and with PyYAML's own loaders, side by side.

The inventory is the one tests/monitor/test_scale.py loads (block style, as `readiness inventory import`
writes it; two links and three terminals a site), cut to ``--sites``. Every side parses with libyaml
(CSafeLoader) from the same text:

* ``events``: ``monitor.config.yamlsource``'s reader, which builds the data, the line of every key and
  the duplicate keys straight from parser events (what ``load_yaml`` does for a plain document);
* ``compose``: the same three results the library's way, ``compose`` + ``construct_document`` and a walk
  over the node tree (``load_yaml``'s path for documents with anchors, aliases or tags);
* ``safe_load``: ``yaml.load(text, CSafeLoader)``, the data only, no lines and no duplicate check:
  the least the library can do, shown for scale.

On a 1,000-site cut all three must return the same data (and the first two the same lines) before
anything is timed. Times are CPU seconds of this process, the best of ``--repeat`` runs; each side
runs with only the text in memory (the others' results are dropped first). About 80 s of CPU with the
defaults.

    python bench/yaml_load.py                      # 50,000 sites
    python bench/yaml_load.py --sites 10000 --repeat 3 --json
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from monitor.config.yamlsource import _EventReader, _Loader, _read_nodes
from tests.monitor import test_scale


def inventory() -> str:
    """Return the test's 50,000-site YAML inventory."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sites.yaml"
        test_scale.write_yaml(path)
        return path.read_text(encoding="utf-8")


def cut(text: str, sites: int) -> str:
    """Return the first ``sites`` sites of the inventory (the first 100 are the nodes the others hang off)."""
    return text if sites >= test_scale.SITES else text[: text.index(f"\n- id: S{sites:05d}\n") + 1]


def _readers(text: str) -> dict[str, Callable[[], Any]]:
    return {"events": lambda: _EventReader(text).read(), "compose": lambda: _read_nodes(text),
            "safe_load": lambda: yaml.load(text, Loader=_Loader)}  # CSafeLoader: safe_load in C


def _check(text: str) -> None:
    out = {name: read() for name, read in _readers(text).items()}
    (data, lines, dupes), (data2, lines2, dupes2) = out["events"], out["compose"]
    if not (data == data2 == out["safe_load"] and lines == lines2 and dupes == dupes2 == []):
        raise SystemExit("the readers disagree: the timings would mean nothing")


def _best(read: Callable[[], Any], repeat: int) -> tuple[float, int]:
    """Return the best CPU time of ``repeat`` calls and the size of what the last one returned."""
    times, size = [], 0
    for _ in range(repeat):
        gc.collect()
        started = time.process_time()
        out = read()
        times.append(time.process_time() - started)
        size = len(out[1]) if isinstance(out, tuple) else 0  # events, compose: the keys with a line
        del out
    return min(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=test_scale.SITES, help=f"at most {test_scale.SITES:,}")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per side (the best is shown)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args()
    if not 1 <= args.sites <= test_scale.SITES:
        raise SystemExit(f"--sites: 1 to {test_scale.SITES:,}")
    if _Loader is not getattr(yaml, "CSafeLoader", None):
        raise SystemExit("PyYAML has no libyaml binding here (yaml.CSafeLoader): the comparison would be unfair")
    full = inventory()
    _check(cut(full, 1000))
    text = cut(full, args.sites)
    del full
    (events_s, keys), (compose_s, _), (safe_s, _) = (_best(read, args.repeat) for read in _readers(text).values())
    figures = {"sites": args.sites, "megabytes": round(len(text.encode()) / 1e6, 1), "keys": keys,
               "events_seconds": round(events_s, 2), "compose_seconds": round(compose_s, 2),
               "safe_load_seconds": round(safe_s, 2), "compose_ratio": round(compose_s / events_s, 2),
               "safe_load_ratio": round(safe_s / events_s, 2), "repeat": args.repeat}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{args.sites:,} sites, {figures['megabytes']} MB, {keys:,} keys and items with a line; "
          f"CPU seconds, best of {args.repeat}")
    print(f"{'reader':<48} {'s':>7} {'x events':>9}")
    for name, seconds in (("events (ours: data, lines, duplicates)", events_s),
                          ("compose + construct + node walk (same results)", compose_s),
                          ("safe_load, CSafeLoader (data only)", safe_s)):
        print(f"{name:<48} {seconds:>7.2f} {seconds / events_s:>9.2f}")


if __name__ == "__main__":
    main()
