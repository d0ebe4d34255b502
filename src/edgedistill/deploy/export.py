"""ONNX export with dynamic batch and preprocessing metadata, and a parity check against the PyTorch model."""

from __future__ import annotations

import copy
import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from ..errors import UserError
from .capture import captured_output as _captured_output

INPUT, OUTPUT = "input", "logits"
_OP_RE = re.compile(r"(aten|prim|onnx)::[A-Za-z0-9_.]+")


def _module_of(message: str, op: str) -> str | None:
    """The dotted module name from the TorchScript graph line that uses `op` (its `scope:` annotation)."""
    for line in message.splitlines():
        if f"{op}(" in line and "scope:" in line:
            scope = line.split("scope:", 1)[1].split(" # ", 1)[0].strip()
            names = [part.split("::", 1)[1] for part in scope.split("/") if "::" in part]
            return ".".join(n for n in names if n) or "<top level>"
    return None


def _export_error(err: Exception, log: str) -> UserError:
    """A one-line UserError naming the unsupported op and, when the graph dump shows it, the module using it."""
    text = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
    found = _OP_RE.search(str(err))
    if not found:
        return UserError(f"ONNX export failed: {type(err).__name__}: {text}")
    op = found.group(0)
    where = _module_of(f"{err}\n{log}", op)
    place = f" in module {where!r}" if where else ""
    return UserError(f"ONNX export failed at op {op}{place}: {text}; allowed: a model without that op, "
                     "or another opset")


def export_onnx(model: nn.Module, path: str | Path, image_size: int, class_names: Sequence[str],
                mean: Sequence[float], std: Sequence[float], opset: int = 17,
                extra: dict[str, str] | None = None) -> Path:
    """Write an fp32 ONNX file (input NCHW, dynamic batch) that carries what predict needs to preprocess;
    `extra`: more metadata_props (a segmentation file says its task and ignore index)."""
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    m = copy.deepcopy(model).cpu().float().eval()
    x = torch.zeros(1, 3, image_size, image_size)
    log: list[str] = []  # on failure the exporter prints its TorchScript graph, with module scopes
    try:
        with warnings.catch_warnings(), _captured_output(log):
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(m, (x,), str(p), dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=opset,
                              do_constant_folding=True)
    except Exception as e:  # noqa: BLE001 — any exporter failure becomes a message the user can act on
        raise _export_error(e, "".join(log)) from None
    proto = onnx.load(str(p))
    onnx.helper.set_model_props(proto, {
        "class_names": json.dumps(list(class_names)), "mean": json.dumps([float(v) for v in mean]),
        "std": json.dumps([float(v) for v in std]), "image_size": str(int(image_size)),
        "producer": "edgedistill", **(extra or {})})
    onnx.checker.check_model(proto)
    onnx.save(proto, str(p))
    return p


def failed_path(onnx_path: str | Path) -> Path:
    """Where a file that failed parity is kept: beside the original, visibly marked."""
    p = Path(onnx_path)
    return p.with_name(f"{p.stem}.parity-failed{p.suffix}")


def check_parity(model: nn.Module, onnx_path: str | Path, images: torch.Tensor, atol: float = 1e-4,
                 rtol: float = 1e-3, rename_on_fail: bool = True) -> dict[str, Any]:
    """Compare ONNX Runtime logits with PyTorch's; a failing file is renamed `*.parity-failed.onnx`.

    The result's `path` is where the file now is; callers must not report a file with passed=False.
    """
    from .onnx_runtime import ort_predict, ort_session

    m = copy.deepcopy(model).cpu().float().eval()
    with torch.no_grad():
        ref = m(images.cpu().float()).numpy()
    got = ort_predict(ort_session(onnx_path), images.cpu().float().numpy())
    diff = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    agree = float(np.mean(got.argmax(1) == ref.argmax(1))) if ref.size else 1.0
    passed = bool(got.shape == ref.shape and np.allclose(got, ref, atol=atol, rtol=rtol))
    path = Path(onnx_path)
    if not passed and rename_on_fail:
        path = path.replace(failed_path(path))
    return {"max_abs_diff": diff, "top1_agreement": agree, "passed": passed, "path": str(path)}
