"""Print the package-level import graph of `app/` and fail on a cycle, on a module over
MAX_LINES lines, or on a `global` statement (state lives on `app.state`, never in a module).

A package is a folder directly below `app/` (`app/pipeline/…` is `pipeline`); a module at the top
(`app/main.py`) is its own node. Every import counts, including those inside functions and under
`TYPE_CHECKING`: a cycle hidden behind a late import is still a cycle for a reader.

    python scripts/import_graph.py        # exit 1, with what is wrong, when anything is
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"
MAX_LINES = 400


def node_of(module: str) -> str | None:
    """`app.pipeline.run` → `pipeline`; `app.main` → `main`; outside `app` → None."""
    parts = module.split(".")
    if parts[0] != "app" or len(parts) < 2:
        return None
    return parts[1]


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            if target == "app":  # `from app import core` names a package
                for alias in node.names:
                    yield f"app.{alias.name}"


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in sorted(APP.rglob("*.py")):
        source = node_of(module_name(path))
        if source is None:
            continue
        edges.setdefault(source, set())
        for module in imported_modules(path):
            target = node_of(module)
            if target is not None and target != source:
                edges[source].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path that ends where it starts, or None (depth-first, three colours)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def house_rules() -> list[str]:
    """Modules over MAX_LINES lines, and `global` statements, as `path: what` lines."""
    problems = []
    for path in sorted(APP.rglob("*.py")):
        text = path.read_text()
        lines = text.count("\n")
        where = path.relative_to(ROOT)
        if lines > MAX_LINES:
            problems.append(f"{where}: {lines} lines (at most {MAX_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Global):
                problems.append(f"{where}:{node.lineno}: global {', '.join(node.names)}")
    return problems


def main() -> int:
    edges = graph()
    for source in sorted(edges):
        print(f"{source:12} -> {', '.join(sorted(edges[source])) or '(nothing)'}")
    failed = False
    cycle = find_cycle(edges)
    if cycle is not None:
        print(f"import cycle: {' -> '.join(cycle)}", file=sys.stderr)
        failed = True
    for problem in house_rules():
        print(problem, file=sys.stderr)
        failed = True
    if not failed:
        print(f"no import cycle between the packages of app/, no module over {MAX_LINES} lines, no global")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
