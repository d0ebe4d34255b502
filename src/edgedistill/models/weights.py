"""Reading weight files (.safetensors / .pth) and loading them with errors a user can act on."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError, shorten
from .io import read_header, read_safetensors

_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP and torch.compile wrappers
_HEAD_RE = re.compile(r"(^|\.)(fc|classifier|head|heads\.head|last_linear)(\.\d+)?\.weight$")


def _normalise(obj: Any, path: str, key: str | None) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path} holds no state dict (expected tensors, or a dict with 'state_dict'/'model')",
                        key=key)
    out = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        for pre in _PREFIXES:
            while k.startswith(pre):
                k = k[len(pre):]
        out[k] = v
    return out


def read_state_dict(path: str | Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """A flat state dict from .safetensors or a torch.save file (raw, or under 'state_dict'/'model')."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"weights file does not exist: {p}", key=key)
    if p.suffix == ".safetensors":
        return _normalise(read_safetensors(p, key), str(p), key)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(_pickle_refusal(p, str(e)), key=key) from None
    except Exception as e:  # noqa: BLE001 — any unreadable file is the user's to fix
        raise UserError(f"cannot read weights {p}: {type(e).__name__}: {shorten(str(e).splitlines()[0], 200)}",
                        key=key) from None
    return _normalise(obj, str(p), key)


def _pickle_refusal(p: Path, torch_msg: str) -> str:
    """Why a pickle is refused and how to convert it, instead of torch's advice to turn the guard off."""
    found = re.search(r"GLOBAL\s+(\S+)", torch_msg)
    what = f" (e.g. {shorten(found.group(1).strip(), 80)})" if found else ""
    return (f"{p} holds pickled Python objects{what} beyond plain tensors; they are refused because loading "
            "them can run code. Allowed: a state dict of tensors. To convert a file you trust, once: "
            f"python -c \"import torch; from safetensors.torch import save_file; sd = torch.load('{p}', "
            "weights_only=False); sd = sd.get('state_dict', sd); save_file({k: v.contiguous() for k, v in "
            "sd.items()}, 'model.safetensors')\" and pass model.safetensors")


Shapes = dict[str, tuple[int, ...]]


def read_shapes(path: str | Path, key: str | None = None) -> tuple[Shapes, dict[str, Any]]:
    """Tensor shapes and edgedistill meta; header-only for .safetensors."""
    p = Path(path).expanduser()
    if p.suffix == ".safetensors" and p.is_file():
        header = read_header(p)
        md = header.pop("__metadata__", None) or {}
        meta = json.loads(md["edgedistill"]) if "edgedistill" in md else {}
        shapes = {k: tuple(v["shape"]) for k, v in header.items()}
        for pre in _PREFIXES:
            shapes = {(k.removeprefix(pre)): s for k, s in shapes.items()}
        return shapes, meta
    return {k: tuple(v.shape) for k, v in read_state_dict(p, key).items()}, {}


def guess_head_rows(shapes: Shapes) -> int | None:
    """Class count by name (fc/classifier/head weights), else the last 2-D weight's rows."""
    two_d = [k for k, s in shapes.items() if k.endswith(".weight") and len(s) == 2]
    named = [k for k in two_d if _HEAD_RE.search(k)]
    pick = (named or two_d or [None])[-1]
    return shapes[pick][0] if pick else None


def _few(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f" … ({len(keys)} in all)" if len(keys) > n else "")


def load_state(model: nn.Module, state: dict[str, torch.Tensor], what: str, key: str | None = None) -> None:
    """Strict load; missing, unexpected or mis-shaped keys become one readable UserError."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and state[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys: {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_few(unexpected)}")
    if wrong:
        problems.append(f"shape mismatches (file vs model): {_few(wrong)}")
    if problems:
        raise UserError(f"weights {what} do not fit {type(model).__name__}: " + "; ".join(problems), key=key)
    nonfinite = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if nonfinite:
        raise UserError(f"weights {what} hold NaN or infinite values in {_few(nonfinite)}; training from them "
                        "would stop at the first step; allowed: finite weights", key=key)
    model.load_state_dict(state, strict=True)
