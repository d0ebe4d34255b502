"""One-file model checkpoints: weights plus the JSON meta needed to rebuild and use them."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from ..atomic import atomic_path
from ..errors import UserError

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
            return json.loads(f.read(n))
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{p} is not a safetensors file ({e})") from None


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
        save_file(state, tmp, metadata={META_KEY: json.dumps(meta, default=str)})
    return p


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model named in the file's meta and load its weights strictly."""
    from .factory import create_model
    from .weights import load_state

    meta = read_meta(path)
    model = create_model(str(meta["model"]), int(meta["num_classes"]), key=str(path))
    load_state(model, load_file(str(Path(path).expanduser())), str(path), key=str(path))
    return model, meta
