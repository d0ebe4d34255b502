"""Reading recipe files: bounded size, UTF-8, a mapping of sections; the YAML itself through usertext's reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError, shorten
from ..usertext import MAX_BYTES, parse_mapping, parse_yaml

__all__ = ["MAX_BYTES", "exists", "load_yaml", "parse_mapping", "parse_yaml", "read_recipe_text",
           "sections_are_mappings"]


def exists(path: str | Path) -> bool:
    """Path.exists that answers False for a name the OS refuses (too long, NUL byte) instead of raising."""
    try:
        return Path(path).expanduser().exists()
    except (OSError, ValueError):
        return False


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



def check_read_keys(overrides: list[str], read_keys: tuple[str, ...], why: str) -> None:
    """An override a command never reads is refused naming it (accepted, it would change nothing). A read key
    ending in '.' allows its whole section; any other is one exact key."""
    for item in overrides:
        key = item.partition("=")[0].strip()
        if not any(key.startswith(k) if k.endswith(".") else key == k for k in read_keys):
            shown = ", ".join(k + "*" if k.endswith(".") else k for k in read_keys)
            raise UserError(f"{shorten(item)!r} changes nothing here: {why}; allowed: {shown} overrides",
                            key=key or "override")
