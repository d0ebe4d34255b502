"""The layout stays a one-way spine: no import cycles (lazy imports counted), no source file over 400 lines."""

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
