"""Reading recipe YAML safely: plain data only, bounded size, duplicate keys refused, one-line errors.

Hand-written on top of PyYAML's SafeLoader because it lacks two guards a recipe needs: aliases are
shared, not copied, while loading, so a 300-byte "billion laughs" document loads fast and explodes
only later (validation, messages, dumps); and a repeated key silently keeps the last value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import UserError, shorten

MAX_NODES = 100_000  # values in the document once every alias is expanded; a full recipe has a few hundred
MAX_BYTES = 1_000_000  # a recipe file is a few kB


def _check_graph(root: Node, where: str) -> None:
    """Count the nodes of the document as if every alias were copied; refuse cycles and duplicate keys."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node) -> int:
        nid = id(node)
        if nid in sizes:
            return sizes[nid]
        if nid in active:
            raise UserError(f"{where}: an alias refers to the value that contains it (line "
                            f"{node.start_mark.line + 1}); allowed: plain values or non-recursive anchors")
        active.add(nid)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(c) for c in node.value)
        elif isinstance(node, MappingNode):
            _no_duplicates(node, where)
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(nid)
        sizes[nid] = total
        if total > MAX_NODES:
            raise UserError(f"{where}: the document expands to more than {MAX_NODES:,} values once its aliases "
                            f"(*name) are copied (at line {node.start_mark.line + 1}); refused before expanding "
                            "it; allowed: a recipe without nested aliases")
        return total

    size(root)


def _no_duplicates(node: MappingNode, where: str) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *base` merges may be overridden by the mapping's own keys
        line = key.start_mark.line + 1
        if (key.tag, key.value) in seen:
            raise UserError(f"{where}: duplicate key {shorten(key.value)!r} at lines {seen[key.tag, key.value]} "
                            f"and {line} (YAML would silently keep the last one); allowed: each key once per "
                            "section")
        seen[key.tag, key.value] = line


def exists(path: str | Path) -> bool:
    """Path.exists that answers False for a name the OS refuses (too long, NUL byte) instead of raising."""
    try:
        return Path(path).expanduser().exists()
    except (OSError, ValueError):
        return False


def parse_yaml(text: str, where: str) -> Any:
    """Plain data from YAML text: SafeLoader (no Python objects from tags), checked before it is built."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as e:
            raise UserError(f"{where} is not valid YAML (tags that build Python objects are refused): "
                            f"{_one_line(e)}") from None
        if node is None:
            return None
        _check_graph(node, where)
        try:
            return loader.construct_document(node)
        except yaml.YAMLError as e:
            raise UserError(f"{where} is not valid YAML (tags that build Python objects are refused): "
                            f"{_one_line(e)}") from None
    finally:
        loader.dispose()


def _one_line(e: yaml.YAMLError) -> str:
    """PyYAML's message without its quoted source snippet: problem and where, on one line."""
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return shorten(" ".join(str(e).split()), 200)


def read_recipe_text(path: str | Path) -> str:
    """The text of a recipe file: a clear line for a folder, a missing or huge file, or non-UTF-8 bytes."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"recipe {path} is a folder, not a file; allowed: a .yaml recipe file")
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise UserError(f"recipe {path} is {size:,} bytes; allowed: up to {MAX_BYTES:,} (a recipe is a few kB)")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"recipe {path} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                        "allowed: a UTF-8 YAML file") from None


def load_yaml(path: str | Path, sections: tuple[str, ...]) -> dict[str, Any]:
    """Read a recipe file as plain data. An empty file is refused: `{}` says "all defaults" on purpose."""
    path = Path(path)
    data = parse_yaml(read_recipe_text(path), str(path))
    if data is None:
        raise UserError(f"recipe {path} is empty (no settings, only blanks or comments); allowed: a mapping of "
                        f"sections ({', '.join(sections)}), or `{{}}` for all defaults")
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a mapping of sections ({', '.join(sections)}), "
                        f"got {type(data).__name__} {shorten(repr(data))}")
    return sections_are_mappings(data, sections, f"recipe {path}")


def sections_are_mappings(data: dict[str, Any], sections: tuple[str, ...], where: str) -> dict[str, Any]:
    """`data: 5` is the file's mistake: say so before an override is applied to it; `data:` (empty) is {}."""
    out = {}
    for k, v in data.items():
        if k in sections and v is not None and not isinstance(v, dict):
            raise UserError(f"{where}: section {k!r} must be a mapping of its keys, got {type(v).__name__} "
                            f"{shorten(repr(v))}; e.g. {k}: {{KEY: VALUE}}")
        out[k] = {} if k in sections and v is None else v
    return out
