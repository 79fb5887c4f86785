#!/usr/bin/env python3
"""camctl's import graph, by layer, and a check that every import runs downwards.

    python scripts/import_graph.py            # the graph between packages, then any violation
    python scripts/import_graph.py --modules  # every module's camctl imports
    python scripts/import_graph.py --check    # exit 1 on an upward import or an import cycle

Imports under `if TYPE_CHECKING:` count too: a type from a higher layer is still a dependency on it.
A module may import modules of its own layer or lower ones; there must be no cycle, neither between
modules nor between packages (camctl.config -> camctl.encoding -> ... -> camctl.config).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "camctl"

# Bottom to top. A module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["camctl", "camctl.errors", "camctl.units", "camctl.paths", "camctl.secrets", "camctl.demo_spec",
                    "camctl.envfile"]),
    # Pure rules that the config validates against; no I/O, import only the foundation.
    ("rules", ["camctl.rules"]),
    ("config", ["camctl.config"]),
    ("process", ["camctl.lifecycle", "camctl.storage", "camctl.bus", "camctl.metrics", "camctl.signing",
                 "camctl.offsite"]),
    ("media", ["camctl.media", "camctl.analysis", "camctl.onvif"]),
    ("work", ["camctl.recording", "camctl.encoding", "camctl.events"]),
    ("services", ["camctl.runtime", "camctl.web", "camctl.ingest", "camctl.client"]),
    ("run-all", ["camctl.runall"]),
    ("commands", ["camctl.commands"]),
    ("interface", ["camctl.render", "camctl.cli", "camctl.__main__"]),
]


def layer_of(module: str) -> int:
    best, level = "", -1
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, level = prefix, index
    if level < 0:
        raise SystemExit(f"{module}: in no layer; add it to LAYERS in {Path(__file__).name}")
    return level


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            # `from camctl.commands import probe` imports the module camctl.commands.probe.
            found |= {n for n in names if n.split(".")[0] == "camctl" and _is_module(n)}
        graph[module_name(path)] = found
    return graph


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (ROOT / relative).with_suffix(".py").is_file() or (ROOT / relative / "__init__.py").is_file()


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]}), a higher layer"
        for module, targets in graph.items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    # Packages too: a -> b -> a between packages ties them together even when no module cycles.
    found += [f"package cycle: {' -> '.join(cycle)}" for cycle in cycles(package_graph(graph))]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk (one per back edge)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target == module or _is_parent(target, module):
                continue  # a package's __init__ importing its own modules, or a module its package
            if state.get(target) == 1:
                found.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def _is_parent(a: str, b: str) -> bool:
    return b.startswith(a + ".") or a.startswith(b + ".")


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        edges[package(module)] |= {package(t) for t in targets if package(t) != package(module)}
    return edges


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", action="store_true", help="every module, not packages")
    parser.add_argument("--check", action="store_true", help="print only violations; exit 1 if any")
    args = parser.parse_args()
    graph = imports()
    problems = violations(graph)
    if not args.check:
        shown = graph if args.modules else package_graph(graph)
        for name, _prefixes in reversed(LAYERS):
            members = sorted(m for m in shown if layer_of(m) == [n for n, _ in LAYERS].index(name))
            if not members:
                continue
            print(f"[{name}]")
            for member in members:
                targets = sorted(shown[member])
                print(f"  {member} -> {', '.join(targets) if targets else '(nothing of camctl)'}")
    for problem in problems:
        print(f"VIOLATION: {problem}", file=sys.stderr)
    if args.check and not problems:
        print(f"{len(graph)} modules, {sum(len(t) for t in graph.values())} imports: every one runs downwards")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
