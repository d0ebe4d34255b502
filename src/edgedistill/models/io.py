"""One-file model checkpoints: weights plus the JSON meta needed to rebuild and use them."""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from ..atomic import atomic_path
from ..errors import UserError, shorten

META_KEY = "edgedistill"


def read_header(path: str | Path) -> dict[str, Any]:
    """The safetensors JSON header (shapes, dtypes, `__metadata__`) without reading any tensor data."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"no such model file: {p}")
    try:
        with p.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (struct.error, ValueError, UnicodeDecodeError, KeyError, TypeError, IndexError) as e:
        raise UserError(f"{p} is not a safetensors file ({shorten(str(e), 120)}); allowed: a .safetensors "
                        "file written by edgedistill or safetensors") from None
    have, need = p.stat().st_size, 8 + n + max(ends, default=0)
    if have < need:
        raise UserError(f"{p} is truncated: its header promises {need:,} bytes, the file holds {have:,} "
                        "(an interrupted copy or download?); allowed: the complete file")
    return header


def read_safetensors(path: str | Path, key: str | None = None) -> dict[str, Any]:
    """All tensors of a .safetensors file; a corrupt file becomes one UserError naming it, not a traceback."""
    p = Path(path).expanduser()
    read_header(p)  # names a truncated or foreign file precisely
    try:
        return load_file(str(p))
    except Exception as e:  # noqa: BLE001 — SafetensorError and friends: the file is the user's to fix
        raise UserError(f"cannot read {p}: {type(e).__name__}: {shorten(str(e), 200)}", key=key) from None


def _save_safetensors(state: dict[str, Any], path: Path, metadata: dict[str, str]) -> None:
    """save_file, with its I/O failures (full disk …) raised as the OSError they are, so the CLI names them."""
    try:
        save_file(state, path, metadata=metadata)
    except OSError:
        raise
    except Exception as e:  # SafetensorError wraps the OS error as text
        m = re.search(r"os error (\d+)", str(e))
        if m is None:
            raise
        code = int(m.group(1))
        raise OSError(code, os.strerror(code), str(path)) from None


def read_meta(path: str | Path) -> dict[str, Any]:
    """The meta `save_model` stored (model spec, num_classes, class_names, …), from the header only."""
    md = read_header(path).get("__metadata__") or {}
    if META_KEY not in md:
        raise UserError(f"{path} has no edgedistill metadata (not written by edgedistill); "
                        f"allowed: pass it as weights= with a model spec instead")
    return json.loads(md[META_KEY])


def save_model(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write weights + meta atomically (temp file, then rename), so a crash never leaves half a checkpoint."""
    p = Path(path).expanduser()
    meta = dict(meta)
    for required in ("model", "num_classes"):
        if required not in meta:
            raise ValueError(f"save_model meta needs {required!r}")
    meta.setdefault("class_names", [str(i) for i in range(int(meta["num_classes"]))])
    spec = str(meta["model"])
    if spec.startswith("file:") and Path(spec[5:]).expanduser().is_file():
        # Record the architecture, not the file it came from, so this checkpoint stands alone.
        meta["model"], meta["built_from"] = read_meta(spec[5:])["model"], spec
    # Cloning gives every tensor its own storage: safetensors refuses tied/shared weights.
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(p) as tmp:
        _save_safetensors(state, tmp, {META_KEY: json.dumps(meta, default=str)})
    return p
