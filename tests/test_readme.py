"""The README is the front door: every key, method and command it shows must be real."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from edgedistill.cli import app
from edgedistill.distill import METHODS
from edgedistill.errors import UserError
from edgedistill.recipe import build_recipe, describe_keys

README = (Path(__file__).parents[1] / "README.md").read_text()
COMMANDS = {c.name or c.callback.__name__ for c in app.registered_commands}


def test_every_recipe_key_is_documented():
    missing = [k for k, _, _ in describe_keys() if f"`{k}`" not in README]
    assert not missing, f"README lacks recipe keys {missing}; regenerate with scripts/readme_tables.py"


def test_every_method_is_documented():
    assert all(f"`{e.name}`" in README for e in METHODS)


def test_generated_tables_are_current():
    root = Path(__file__).parents[1]
    done = subprocess.run([sys.executable, str(root / "scripts" / "readme_tables.py"), "--check"], check=False)
    assert done.returncode == 0, "README tables are stale: run python scripts/readme_tables.py"


def test_cli_examples_use_real_commands_and_keys():
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", README, re.S))
    lines = [m.strip() for m in re.findall(r"^(?:\$ )?(edgedistill [^\n#]*)", blocks, re.M)]
    assert len(lines) >= 5
    for line in lines:
        words = line.split()
        assert words[1] in COMMANDS, line
        overrides = [w for w in words[2:] if "=" in w and not w.startswith(("-", "data.root="))]
        build_recipe({}, overrides)  # raises on an unknown or invalid key


def test_readme_commands_are_the_cli_commands():
    assert set(typer.main.get_command(app).commands) == COMMANDS == {"demo", "run", "eval", "profile", "list", "compress", "predict", "compare", "search", "audit", "explain", "deploy"}


def test_shown_error_is_the_real_error():
    block = re.search(r"```text\n\$ (edgedistill .*?)\n(.*?)```", README, re.S)
    words, shown = block.group(1).split(), block.group(2)
    with pytest.raises(UserError) as e:
        build_recipe({}, words[2:])
    real = f"error: {e.value}"
    for line in shown.strip().splitlines():
        assert line.split("…")[0].rstrip(", ") in real, line
