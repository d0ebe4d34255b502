"""Cost first: every candidate is built, exported and timed with ONNX Runtime before any training.

Figures come from the untrained model: params, FLOPs, file size and latency depend on the architecture,
not on the weights. The int8 file (when the recipe quantizes) is calibrated on seeded random images: its
ranges change no op, shape or byte count, so size and latency are those of the trained model's int8 file.
Measurements are cached per candidate in a JSON file of the search folder, shared by every worker.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_text
from ..errors import UserError
from ..filelock import flock
from ..recipe import Recipe
from .space import Candidate

BUDGETS = {"latency_ms": "latency_ms", "size_mb": "size_mb", "params": "params", "flops": "flops"}


def quantizes(recipe: Recipe) -> str | None:
    """'static', 'dynamic' or None: how the recipe's compress stages make an int8 file."""
    for s in recipe.compress.stages:
        if s.name == "quantize":
            return s.mode
        if s.name == "qat":
            return "static"
    return None


def candidate_files(cand: Candidate, recipe: Recipe, num_classes: int, folder: Path) -> tuple[Any, Path, Path | None]:
    """The candidate as the search measures it (seeded random weights): the model, its fp32 ONNX file and, when
    the recipe quantizes, its int8 file (static: this CPU's format, random calibration), written in `folder`."""
    import torch

    from ..compress.cpu import detect_cpu, dynamic_resolved, resolve
    from ..compress.quantize import quantize_dynamic_onnx, quantize_static_onnx
    from ..deploy.export import export_onnx
    from ..models import create_model

    torch.manual_seed(0)
    model = create_model(cand.spec, num_classes, key="search.space").eval()
    s = cand.image_size
    fp32 = export_onnx(model, Path(folder) / "model.onnx", s, [str(i) for i in range(num_classes)],
                       recipe.data.mean, recipe.data.std, opset=recipe.compress.opset)
    mode = quantizes(recipe)
    if mode is None:
        return model, fp32, None
    int8 = Path(folder) / "model.int8.onnx"
    stage = next((st for st in recipe.compress.stages if st.name == "quantize"), None)
    resolved = resolve(getattr(stage, "format", "auto"), recipe.deploy.target, detect_cpu())
    fmt = resolved["format"]
    if mode == "dynamic":
        quantize_dynamic_onnx(fp32, int8, str(dynamic_resolved(resolved)["format"]))
    else:
        calib = np.random.default_rng(0).standard_normal((16, 3, s, s)).astype(np.float32)
        quantize_static_onnx(fp32, int8, calib, fmt=str(fmt), per_channel=getattr(stage, "per_channel", True))
    return model, fp32, int8


def ships_fp32_when_faster(recipe: Recipe) -> bool:
    """Whether the recipe's quantize stage ships the fp32 file when int8 is slower (ship: fastest, the default)."""
    stage = next((st for st in recipe.compress.stages if st.name == "quantize"), None)
    return stage is not None and getattr(stage, "ship", "fastest") == "fastest"


def measure_candidate(cand: Candidate, recipe: Recipe, num_classes: int, runs: int) -> dict[str, Any]:
    """params, FLOPs, fp32 (and int8) ONNX size and ORT latency at deploy.batch_size and deploy.threads."""
    from ..deploy.onnx_runtime import ort_latency
    from ..deploy.profile import count_flops, count_params

    s, d = cand.image_size, recipe.deploy
    shape = (d.batch_size, 3, s, s)
    with tempfile.TemporaryDirectory() as tmp:
        model, fp32, int8 = candidate_files(cand, recipe, num_classes, Path(tmp))
        out: dict[str, Any] = {"spec": cand.spec, "image_size": s, "params": count_params(model),
                               "flops": count_flops(model, (1, 3, s, s))}
        out["size_fp32_mb"] = fp32.stat().st_size / 1e6
        out["latency_fp32_ms"] = steady_latency(ort_latency, fp32, shape, d.threads, runs)
        out["size_mb"], out["latency_ms"] = out["size_fp32_mb"], out["latency_fp32_ms"]
        if int8 is not None:
            out["size_int8_mb"] = int8.stat().st_size / 1e6
            out["latency_int8_ms"] = steady_latency(ort_latency, int8, shape, d.threads, runs)
            out["size_mb"], out["latency_ms"] = out["size_int8_mb"], out["latency_int8_ms"]
            if ships_fp32_when_faster(recipe) and out["latency_fp32_ms"] < out["latency_int8_ms"]:
                out["size_mb"], out["latency_ms"] = out["size_fp32_mb"], out["latency_fp32_ms"]  # what compress ships
    return out


LATENCY_ROUNDS = 3


def steady_latency(measure: Any, path: Path, shape: tuple[int, ...], threads: int | None, runs: int) -> float:
    """The lowest of LATENCY_ROUNDS medians: a cost is measured once per architecture and cached for the whole
    search, so one round disturbed by a neighbour's burst would mislabel the candidate for good (seen here:
    cifar:resnet8 at 24 px read 0.127 ms once, 0.082 ms otherwise); as timeit argues, the fastest repeat is
    the one the machine's noise touched least."""
    return min(measure(path, shape, threads=threads, runs=runs, warmup=5)["latency_ms_median"]
               for _ in range(LATENCY_ROUNDS))


def over_budget(cost: dict[str, Any], recipe: Recipe) -> dict[str, float]:
    """Budget key → measured minus limit, for every deploy.budget limit (> 0: over it)."""
    b = recipe.deploy.budget
    return {k: float(cost[k]) - float(getattr(b, k)) for k in BUDGETS if getattr(b, k) is not None}


class CostCache:
    """costs.json in the search folder: candidate key → measured figures; locked, written atomically."""

    def __init__(self, folder: Path, recipe: Recipe, num_classes: int):
        self.path, self.recipe, self.num_classes = folder / "costs.json", recipe, num_classes
        self.settings = {"threads": recipe.deploy.threads, "batch": recipe.deploy.batch_size,
                         "int8": quantizes(recipe), "runs": recipe.search.latency_runs}

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text())
        return data.get("costs", {}) if data.get("settings") == self.settings else {}

    def measured(self) -> dict[str, Any]:
        """Every candidate measured so far: key → figures."""
        return self._read()

    def get(self, cand: Candidate) -> dict[str, Any]:
        """The cached figures of `cand`, measured now when absent."""
        hit = self._read().get(cand.key)
        if hit is not None:
            return hit
        with flock(self.path.with_suffix(".lock")):
            costs = self._read()
            if cand.key not in costs:
                costs[cand.key] = measure_candidate(cand, self.recipe, self.num_classes, self.settings["runs"])
                atomic_write_text(self.path, json.dumps({"settings": self.settings, "costs": costs}, indent=1))
            return costs[cand.key]


def check_feasible(costs: dict[str, dict[str, Any]], recipe: Recipe) -> list[str]:
    """Keys of the feasible candidates; none → UserError naming the smallest candidate's figures vs the budget."""
    feasible = [k for k, c in costs.items() if all(v <= 0 for v in over_budget(c, recipe).values())]
    if feasible or not costs:
        return feasible
    b = recipe.deploy.budget
    smallest = min(costs.values(), key=lambda c: (c["latency_ms"], c["size_mb"]))
    figures = ", ".join(f"{k} {smallest[k]:.4g} > {getattr(b, k):.4g}" for k, v in over_budget(smallest, recipe).items()
                        if v > 0)
    raise UserError(f"no candidate of search.space fits deploy.budget: the smallest, {smallest['spec']} at "
                    f"{smallest['image_size']} px, measures {figures} (deploy.threads={recipe.deploy.threads}, "
                    f"deploy.batch_size={recipe.deploy.batch_size}); allowed: a looser deploy.budget or smaller "
                    "candidates", key="deploy.budget")
