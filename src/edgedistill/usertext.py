"""Text a user gives, from a file or a flag (`--arms`, overrides, a model folder's config.json), read safely:
plain data only, bounded size, duplicate keys refused naming both positions, errors as one line naming where.

Hand-written on top of PyYAML's SafeLoader because it lacks two guards user text needs: aliases are shared,
not copied, while loading, so a 300-byte "billion laughs" document loads fast and explodes only later
(validation, messages, dumps); and a repeated key silently keeps the last value. json.loads has the second
flaw too. Below every part (like errors.py), so the recipe, models and commands share one reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import UserError, shorten

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
                            "it; allowed: a document without nested aliases")
        return total

    size(root)


def _no_duplicates(node: MappingNode, where: str) -> None:
    seen: dict[tuple[str, str], tuple[int, int]] = {}
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *base` merges may be overridden by the mapping's own keys
        here = (key.start_mark.line + 1, key.start_mark.column + 1)
        if (key.tag, key.value) in seen:
            at = _positions(seen[key.tag, key.value], here)
            raise UserError(f"{where}: duplicate key {shorten(key.value)!r} at {at} (YAML would silently keep the "
                            "last one); allowed: each key once per section")
        seen[key.tag, key.value] = here


def _positions(first: tuple[int, int], second: tuple[int, int]) -> str:
    """'lines 2 and 4' in a file; 'columns 5 and 30' in one-line text (a flag or an override)."""
    if first[0] != second[0]:
        return f"lines {first[0]} and {second[0]}"
    return f"columns {first[1]} and {second[1]}" + (f" of line {first[0]}" if first[0] > 1 else "")


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


def parse_mapping(text: str, where: str) -> dict[str, Any]:
    """A YAML/JSON mapping a user typed in a flag (`--arms '{kd: {}}'`): the bounded reader, then a mapping check."""
    if len(text) > MAX_BYTES:
        raise UserError(f"{where} is {len(text):,} characters; allowed: up to {MAX_BYTES:,}")
    data = parse_yaml(text, where)
    if not isinstance(data, dict):
        raise UserError(f"{where} must be a mapping like '{{name: {{key: value}}}}', got {type(data).__name__} "
                        f"{shorten(repr(data))}")
    return data


def parse_json(text: str, where: str) -> Any:
    """JSON a user supplies (a model folder's config.json): one line naming the file for a syntax error or a
    repeated key (json keeps the last one silently), instead of a JSONDecodeError traceback."""
    import json

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise UserError(f"{where}: duplicate key {shorten(k)!r} (JSON would silently keep the last one); "
                                "allowed: each key once per object")
            out[k] = v
        return out

    if len(text) > 10 * MAX_BYTES:
        raise UserError(f"{where} is {len(text):,} characters; allowed: up to {10 * MAX_BYTES:,}")
    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as e:
        raise UserError(f"{where} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except RecursionError:
        raise UserError(f"{where} nests too deeply to be a configuration; allowed: plain JSON") from None


def read_json_file(path: str | Path, what: str) -> Any:
    """A user's JSON file read through parse_json; a missing or non-UTF-8 file is one line naming it."""
    path = Path(path)
    try:
        return parse_json(path.read_text(encoding="utf-8"), f"{what} {path}")
    except UnicodeDecodeError:
        raise UserError(f"{what} {path} is not UTF-8 text; allowed: a UTF-8 JSON file") from None
    except OSError as e:
        raise UserError(f"{what} {path} cannot be read ({e.strerror})") from None


def _one_line(e: yaml.YAMLError) -> str:
    """PyYAML's message without its quoted source snippet: problem and where, on one line."""
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return shorten(" ".join(str(e).split()), 200)


