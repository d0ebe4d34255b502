"""List import cycles inside src/edgedistill: between its top-level parts and between its modules.

    python scripts/import_cycles.py            # exit 1 and print each cycle when there is one

Every `import`/`from … import` is counted, lazy ones inside functions included; only imports under
`if TYPE_CHECKING:` are skipped (they never run). Parts are the first name under edgedistill
(`data`, `distill`, `recipe`, …). Hand-written
(a stdlib AST walk and Tarjan's strongly connected components) because the import linters that exist
(import-linter, pydeps) do not count imports inside functions.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "edgedistill"


def _module(path: Path, root: Path = ROOT) -> tuple[str, list[str]]:
    """Dotted module name under edgedistill and the package it lives in (for relative imports)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), parts[:-1]
    return ".".join(parts), parts[:-1]


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:`."""
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def _targets(node: ast.AST, package: list[str]) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package[: len(package) - node.level + 1]
            if node.module:
                return [".".join([*base, node.module])]
            return [".".join([*base, a.name]) for a in node.names]
        if node.module and (node.module == "edgedistill" or node.module.startswith("edgedistill.")):
            mod = node.module.removeprefix("edgedistill").lstrip(".")
            return [mod] if mod else [a.name for a in node.names]
    if isinstance(node, ast.Import):
        return [a.name.removeprefix("edgedistill.") for a in node.names if a.name.startswith("edgedistill.")]
    return []


def part(module: str) -> str:
    head = module.split(".")[0]
    return "recipe" if head.startswith("recipe_") else head


def import_graph(root: Path = ROOT, type_checking: bool = False) -> dict[str, set[str]]:
    """Module → modules it imports (names resolved to existing modules where a name is an attribute);
    type_checking: count the imports under `if TYPE_CHECKING:` too (tests/test_layout.py's table of parts)."""
    files = {(_module(p, root)[0]): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        package = _module(path, root)[1]
        tree = ast.parse(path.read_text())
        for node in (ast.walk(tree) if type_checking else _runtime_nodes(tree)):
            for t in _targets(node, package):
                while t and t not in files:  # `from .x import name` where name is not a module
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph.setdefault(mod, set()).add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def part_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, bs in graph.items():
        for b in bs:
            if part(a) != part(b) and part(a) and part(b):
                out.setdefault(part(a), set()).add(part(b))
    return out


def main(root: Path = ROOT) -> int:
    graph = import_graph(root)
    bad = 0
    for level, g in (("parts", part_graph(graph)), ("modules", graph)):
        for comp in cycles(g):
            bad += 1
            edges = [f"{a} → {b}" for a in comp for b in sorted(g.get(a, ())) if b in comp]
            print(f"cycle between {level}: {', '.join(comp)}\n  " + "\n  ".join(edges))
    if not bad:
        print(f"no import cycles among {len(graph)} modules of src/edgedistill (lazy imports included)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
