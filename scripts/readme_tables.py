"""Write the README's recipe-key and method tables from the code, so the README cannot drift from it.

    python scripts/readme_tables.py          # rewrite README.md between the table markers
    python scripts/readme_tables.py --check  # exit 1 when README.md is stale (tests/test_readme.py does this)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from edgedistill.distill import METHODS
from edgedistill.recipe import describe_keys

README = Path(__file__).resolve().parents[1] / "README.md"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def keys_table() -> str:
    rows = [f"| `{key}` | `{_cell(default)}` | {_cell(desc)} |" for key, default, desc in describe_keys()]
    return "\n".join(["| key | default | meaning |", "|---|---|---|", *rows])


def methods_table() -> str:
    rows = []
    for e in METHODS:
        fields = e.obj.Params.model_fields.items()
        params = ", ".join(f"`{k}`={_cell(f.default)} ({_cell(f.description)})" for k, f in fields)
        rows.append(f"| `{e.name}` | {e.meta['family']} | {params or '–'} | {_cell(e.meta['paper'])} |")
    return "\n".join(["| name | family | parameters (default) | paper |", "|---|---|---|---|", *rows])


def render(text: str) -> str:
    """Replace each `<!-- NAME:start -->…<!-- NAME:end -->` block with the generated table."""
    for name, table in (("keys", keys_table()), ("methods", methods_table())):
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(\n<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md lacks the <!-- {name}:start --> / <!-- {name}:end --> markers")
        text = pattern.sub(lambda m: m.group(1) + table + m.group(2), text)
    return text


def main() -> None:
    text = README.read_text()
    new = render(text)
    if "--check" in sys.argv:
        sys.exit(0 if new == text else 1)
    README.write_text(new)


if __name__ == "__main__":
    main()
