"""The layout stays a one-way spine (docs/architecture.md): no import cycles (lazy imports counted, type-only ones
too between parts), imports between parts only as the table allows, cli.py parses only, no private helper used across
modules, no source file over 400 lines."""

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import import_cycles  # noqa: E402


def test_no_import_cycles(capsys):
    assert import_cycles.main() == 0, capsys.readouterr().out


def test_the_check_finds_a_lazy_cycle_and_ignores_type_only_imports(tmp_path, capsys):
    pkg = tmp_path / "pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("from .build import build\n")
    (pkg / "data" / "build.py").write_text("def build():\n    from ..recipe import Recipe\n    return Recipe\n")
    (pkg / "recipe.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .models import M\n"
                                   "class Recipe:\n    def check(self):\n        from .data import build\n")
    (pkg / "models.py").write_text("from .recipe import Recipe\nclass M: ...\n")
    assert import_cycles.main(pkg) == 1
    out = capsys.readouterr().out
    assert "cycle between parts: data, recipe" in out and "data.build → recipe" in out
    assert "models" not in out.split("cycle between parts")[1].split("\n")[0]  # type-only import not counted
    (pkg / "data" / "build.py").write_text("def build():\n    return None\n")
    assert import_cycles.main(pkg) == 0


def test_no_source_file_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in (REPO / "src").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"split these before they grow further: {long}"


# Which top-level part may import which, lazy and type-only imports included. Leaf modules anyone may import
# (errors, atomic, filelock, registry, usertext, the package itself) are left out. A new edge is a design
# decision: add it here and to docs/architecture.md, or move the code to the part that owns it.
LEAVES = {"", "errors", "atomic", "filelock", "registry", "usertext"}
MAY_IMPORT = {
    "__main__": {"cli"},
    "cli": {"commands", "output_folder"},
    "commands": {"analysis", "compress", "data", "deploy", "distill", "engine", "evaluate", "jobs", "models",
                 "output_folder", "pipeline", "preflight", "recipe", "recipes", "report", "run", "search", "tasks",
                 "teachers"},
    "analysis": {"data", "distill", "evaluate", "memory_estimate", "models", "recipe", "run", "teachers"},
    "search": {"compress", "data", "deploy", "engine", "jobs", "models", "pipeline", "preflight", "recipe", "report",
               "run", "teachers"},
    "jobs": {"pipeline", "recipe", "run", "teachers"},
    "pipeline": {"compress", "deploy", "distill", "engine", "evaluate", "models", "output_folder", "preflight",
                 "recipe", "report", "run", "tasks", "teachers", "track"},
    "tasks": {"compress", "data", "deploy", "distill", "engine", "evaluate", "models", "output_folder", "recipe",
              "report", "run"},
    "preflight": {"compress", "data", "distill", "engine", "memory_estimate", "models", "output_folder", "recipe",
                  "teachers", "track"},
    "memory_estimate": {"recipe", "teachers"},
    "teachers": {"data", "distill", "engine", "evaluate", "models", "recipe", "run"},
    "run": {"data", "engine", "models", "output_folder", "recipe", "track"},
    "report": {"deploy", "evaluate", "recipe"},
    "compress": {"deploy", "distill", "engine", "evaluate", "models", "recipe", "run"},  # run: the Context type
    "deploy": set(),
    "evaluate": {"engine", "losses"},
    "engine": {"recipe"},
    "distill": {"losses", "models", "recipe"},
    "losses": set(),
    "data": {"recipe"},
    "models": set(),
    "recipe": {"data", "distill", "models", "output_folder"},
    "recipes": set(),
    "track": {"recipe"},  # type hints: a tracker opens with the recipe
    "output_folder": set(),
}


def _part_edges() -> dict[str, set[str]]:
    graph = import_cycles.import_graph(type_checking=True)
    return {a: {b for b in bs if b not in LEAVES} for a, bs in import_cycles.part_graph(graph).items()}


def test_parts_import_only_what_the_table_allows():
    extra = {a: sorted(bs - MAY_IMPORT.get(a, set())) for a, bs in _part_edges().items()}
    extra = {a: bs for a, bs in extra.items() if bs}
    assert not extra, f"imports the table (MAY_IMPORT) does not allow: {extra}"


# The one allowed circle, type hints only: data/ and distill/ name the recipe's config classes while the recipe
# checks names against their registries (lazily). These edges must stay under `if TYPE_CHECKING:`.
TYPE_ONLY = {("data", "recipe"), ("distill", "recipe")}


def test_no_cycle_between_parts_even_type_only():
    runtime = import_cycles.part_graph(import_cycles.import_graph())
    assert not [e for e in TYPE_ONLY if e[1] in runtime.get(e[0], set())], "these may be type hints only"
    typed = {a: {b for b in bs if (a, b) not in TYPE_ONLY} for a, bs in _part_edges().items()}
    comps = import_cycles.cycles(typed)
    assert not comps, f"parts that import each other (if TYPE_CHECKING: counted): {comps}"


def test_cli_parses_only():
    """cli.py reaches the work through commands/ alone (errors and the disk-error line it prints aside)."""
    assert _part_edges().get("cli", set()) <= {"commands", "output_folder"}


def test_no_private_name_imported_from_another_module():
    found = []
    for path in (import_cycles.ROOT).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("edgedistill")):
                found += [f"{path.relative_to(REPO)}:{node.lineno} {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, f"give these helpers public names (they are used across modules): {found}"
