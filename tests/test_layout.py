"""The house rules of the code: no import cycles, probes import nothing from monitor, each package
imports only the packages below it, and an auditor's `audit verify` loads no probe or web library.

Imports are read from the source with ``ast`` (nothing is executed), lazy imports inside functions
included; only imports under ``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOPS = ("monitor", "probes")

# What each package may import (besides the standard library and third-party packages). Top-level
# modules of monitor/ are their own nodes; probes/ is one package that imports nothing of ours.
ALLOWED: dict[str, set[str]] = {
    "probes": set(),
    "monitor.errors": set(),
    "monitor": set(),  # monitor/__init__.py: the version
    "monitor.core": {"probes", "monitor.errors"},
    "monitor.store": {"monitor.errors"},
    "monitor.config": {"monitor.core", "monitor.errors", "probes"},
    "monitor.rules": {"monitor.core"},
    "monitor.runtime": {"monitor.core", "monitor.config", "monitor.store", "monitor.errors", "monitor", "probes"},
    "monitor.web": {"monitor.core", "monitor.config", "monitor.runtime", "monitor.errors", "monitor"},
    "monitor.audit": {"monitor.core", "monitor.config", "monitor.store", "monitor.errors", "monitor"},
    "monitor.demo": {"monitor.core", "monitor.config", "monitor.runtime", "monitor.web", "monitor.store",
                     "monitor.errors", "monitor", "probes"},
    "monitor.cli": {"monitor.core", "monitor.config", "monitor.runtime", "monitor.web", "monitor.store",
                    "monitor.audit", "monitor.demo", "monitor.rules", "monitor.errors", "monitor", "probes",
                    "dashboards"},
    "monitor.__main__": {"monitor.cli"},
}


def modules() -> dict[str, Path]:
    """Return every module of monitor/ and probes/ by dotted name."""
    out = {}
    for top in TOPS:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[tuple[str, list[str]]]:
    """Yield (module, imported names) for every import that can run."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, [a.name for a in node.names]
        stack.extend(ast.iter_child_nodes(node))


def graph() -> dict[str, set[str]]:
    """Return module -> the modules of ours it imports."""
    mods = modules()
    out: dict[str, set[str]] = {}
    for name, path in mods.items():
        edges = set()
        for module, names in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if module.split(".")[0] not in (*TOPS, "dashboards"):
                continue
            subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in mods]
            edges.update(subs or [module])
        out[name] = edges - {name}
    return out


def package(module: str) -> str:
    """Return the node a module belongs to: its subpackage of monitor/, a top-level module, or probes."""
    parts = module.split(".")
    if parts[0] != "monitor":
        return parts[0]
    return ".".join(parts[:2])


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_modules() -> None:
    """No module of monitor/ or probes/ reaches itself through imports, lazy imports included."""
    assert cycles(graph()) == []


def test_no_import_cycle_between_packages() -> None:
    """The packages form layers: no two import each other, directly or around a circle."""
    pkg: dict[str, set[str]] = {}
    for module, targets in graph().items():
        pkg.setdefault(package(module), set()).update(package(t) for t in targets)
    for name in pkg:
        pkg[name].discard(name)
    assert cycles(pkg) == []


def test_probes_import_nothing_from_monitor() -> None:
    """probes/ receive targets, settings and a deadline: they never import the service."""
    bad = {m: sorted(t for t in ts if t.startswith("monitor")) for m, ts in graph().items() if m.startswith("probes")}
    assert {m: ts for m, ts in bad.items() if ts} == {}


def test_each_package_imports_only_what_it_may() -> None:
    """Every import between packages is one that docs/architecture.md allows."""
    wrong = []
    for module, targets in graph().items():
        allowed = ALLOWED[package(module)]
        wrong += [f"{module} -> {t}" for t in sorted(targets) if package(t) != package(module)
                  and package(t) not in allowed]
    assert wrong == []


def test_architecture_doc_lists_every_package() -> None:
    """docs/architecture.md names every package of monitor/ and what it may import."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    packages = {p.parent.name for p in (ROOT / "monitor").glob("*/__init__.py")}
    missing = [name for name in sorted(packages) if f"`monitor/{name}/`" not in text]
    assert missing == []


def test_audit_verify_loads_no_probe_or_web_library() -> None:
    """An auditor runs `readiness audit verify` on a bundle alone: no pysnmp, aiohttp, pydantic or openpyxl."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "monitor", "audit", "verify", "--help"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    loaded = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert not {m for m in loaded if m.split(".")[0] in ("pysnmp", "aiohttp", "openpyxl", "apscheduler")}
    code = ("import sys, monitor.audit.verify; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pysnmp', 'aiohttp', 'pydantic', 'openpyxl'}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_every_probe_kind_has_a_target_builder() -> None:
    """The probe registry and the config's target builders name the same kinds."""
    from monitor.config.targets import BUILDERS
    from probes import PROBES

    assert set(BUILDERS) == set(PROBES)


def test_a_failing_command_module_is_an_error() -> None:
    """Commands are registered explicitly: the CLI imports each command module, so a broken one fails loudly."""
    from monitor.cli import main

    assert all(callable(add) for add in main.COMMANDS)
    assert not hasattr(main, "_extensions")
