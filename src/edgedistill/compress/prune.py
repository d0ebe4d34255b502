"""Structured (channel) pruning with Torch-Pruning's DepGraph, and checkpoints that reload pruned shapes."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import torch
import torch_pruning as tp
from torch import nn
from torch.nn import functional as F

from ..errors import UserError
from ..models.heads import head_name
from ..models.io import read_meta, read_safetensors, save_model

Importance = Literal["magnitude", "taylor", "bn_scale"]
TARGET_TICKS = 50  # target mode: Torch-Pruning's schedule in this many ticks, stopping once under target
MAX_TARGET_RATIO = 0.95  # target mode never asks any group for more than this share of its channels
MAX_LAYER_RATIO = 0.9  # global scope: default cap on the share of any one layer's channels removed
# Module attributes that record a layer's width; pruning changes them and load_pruned restores them.
_SHAPE_ATTRS = ("in_channels", "out_channels", "groups", "in_features", "out_features", "num_features",
                "num_channels", "normalized_shape", "embed_dim")


def _importance(kind: str) -> tp.importance.Importance:
    """The Torch-Pruning criterion for a name: L2 weight magnitude, first-order Taylor, or BN gamma."""
    if kind == "magnitude":
        return tp.importance.MagnitudeImportance(p=2)
    if kind == "taylor":
        return tp.importance.TaylorImportance()
    if kind == "bn_scale":
        return tp.importance.BNScaleImportance()
    raise UserError(f"unknown pruning importance {kind!r}; allowed: magnitude, taylor, bn_scale")


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Layers whose output channels pruning can remove (convs and linears)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and n]


def layer_width(m: nn.Module) -> int:
    return m.out_channels if isinstance(m, nn.Conv2d) else m.out_features


def _check_widths(model: nn.Module) -> None:
    """A layer with no output channels cannot run; name it so the user can lower the ratio."""
    for name, m in prunable_layers(model):
        if layer_width(m) <= 0:
            raise UserError(f"pruning left layer {name!r} with 0 channels; allowed: a smaller ratio/target")


def rounded_keep(kept: int, current: int, round_to: int | None) -> int:
    """Channels a layer keeps under round_to: the multiple of round_to nearest `kept`, or the layer's current
    width when that is nearer (ties keep more); never 0.

    Torch-Pruning rounds the kept count down, so a small cut of a 16-channel layer at round_to 16 asks to
    empty it and a params/FLOPs target overshoots by a whole multiple per layer; nearest keeps the share asked.
    """
    if not round_to or kept >= current:
        return min(kept, current)
    lo = kept // round_to * round_to
    hi = min(lo + round_to, current)
    return hi if lo < 1 or hi - kept <= kept - lo else lo


class _Pruner(tp.pruner.BasePruner):
    """BasePruner whose round_to keeps the nearest multiple (rounded_keep), not the next one down."""

    def _round_to(self, n_pruned: int, current_channels: int, round_to: int) -> int:
        return current_channels - rounded_keep(current_channels - n_pruned, current_channels, round_to)


def check_round_to(model: nn.Module, round_to: int | None) -> None:
    """round_to must be a positive integer below the widest prunable layer, or nothing could ever be pruned."""
    if round_to is None:
        return
    if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
        raise UserError(f"round_to {round_to!r} is not a positive channel count; allowed: an integer >= 1 "
                        "(8 or 16 match CPU vector widths), or none")
    head = model.get_submodule(head_name(model))
    widths = [layer_width(m) for _, m in prunable_layers(model) if m is not head]
    if widths and round_to >= max(widths):
        raise UserError(f"round_to {round_to} leaves no layer prunable: every layer has at most {max(widths)} "
                        f"channels and keeps at least one multiple of round_to; allowed: round_to < {max(widths)} "
                        "(8 or 16 match CPU vector widths), or none")


def _check_ratio(pruner: tp.pruner.BasePruner, model: nn.Module, ratio: float, round_to: int | None) -> None:
    """Torch-Pruning silently skips a layer the ratio would empty; refuse instead, naming the layer."""
    names = {m: n for n, m in model.named_modules()}
    for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                          root_module_types=pruner.root_module_types):
        layer = group[0].dep.target.module
        channels = pruner.DG.get_out_channels(layer) or 0
        kept = rounded_keep(int(channels * (1 - ratio)), channels, round_to)
        if channels and kept < 1:
            raise UserError(f"pruning ratio {ratio} would remove every channel of layer {names.get(layer, '?')!r} "
                            f"({channels} channels); allowed: a ratio below {1 - 1 / channels:.3f}")


class _KeepFloor(tp.importance.Importance):
    """Global ranking can put a whole layer under its threshold; the layer's best `floor` channels rank +inf.

    Torch-Pruning's own max_pruning_ratio only skips a group that is already past its cap when a step
    starts, so one step can still empty a layer; this wrapper (plus trimming in `_step`) cannot.
    """

    def __init__(self, base: tp.importance.Importance, floors: dict[nn.Module, int]) -> None:
        self.base, self.floors, self.kept, self.scores = base, floors, {}, {}

    def __call__(self, group: Any) -> torch.Tensor | None:
        imp = self.base(group)
        if imp is None:
            return None
        root = group[0].dep.target.module
        top = torch.topk(imp, min(self.floors.get(root, 1), len(imp))).indices
        imp = imp.clone()
        imp[top] = float("inf")
        self.kept[root], self.scores[root] = set(top.tolist()), imp
        return imp


def _floors(model: nn.Module, max_layer_ratio: float, min_channels: dict[str, int] | None) -> dict[nn.Module, int]:
    """Channels each layer keeps under global ranking: (1 - max_layer_ratio) of its width (or of the widths
    `min_channels` names, e.g. the unpruned model's in iterative pruning), and never fewer than one."""
    floors = {}
    for name, m in prunable_layers(model):
        base = (min_channels or {}).get(name)
        floors[m] = max(1, base if base is not None else int(layer_width(m) * (1 - max_layer_ratio)))
    return floors


def min_channels(model: nn.Module, max_layer_ratio: float) -> dict[str, int]:
    """Per-layer floors by name, computed once from a model so that later pruning steps keep honouring them."""
    return {name: max(1, int(layer_width(m) * (1 - max_layer_ratio))) for name, m in prunable_layers(model)}


def _step(pruner: tp.pruner.BasePruner, guard: _KeepFloor | None) -> None:
    """One Torch-Pruning step; under global ranking each group's protected channels are dropped from its cut,
    and with round_to the most important of the cut are spared too, so the kept width stays a multiple."""
    for group in pruner.step(interactive=True):
        root = group[0].dep.target.module
        kept = guard.kept.get(root) if guard is not None else None
        if kept:
            idxs = [int(getattr(i, "idx", i)) for i in group[0].idxs]
            cut = [i for i in idxs if i not in kept]
            if len(cut) < len(idxs):
                current = pruner.DG.get_out_channels(root) or 0
                if pruner.round_to and cut:
                    spare = rounded_keep(current - len(cut), current, pruner.round_to) - (current - len(cut))
                    cut = sorted(cut, key=lambda i: float(guard.scores[root][i]))[:max(0, len(cut) - spare)]
                if cut:
                    group.prune(idxs=cut)
                continue
        group.prune()


def _accumulate_grads(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Taylor importance reads .grad: fill it from the cross-entropy of a few labelled batches."""
    device = next(model.parameters()).device
    model.zero_grad()
    for images, labels in batches:
        F.cross_entropy(model(images.to(device)), labels.to(device)).backward()


def _cost(model: nn.Module, example_input: torch.Tensor, flops: bool) -> int:
    """Params or FLOPs as deploy.profile counts them, so targets mean what the report shows."""
    from ..deploy.profile import count_flops, count_params

    return count_flops(model, tuple(example_input.shape)) if flops else count_params(model)


def prune_structured(model: nn.Module, example_input: torch.Tensor, ratio: float | None = None,
                     target_params: int | None = None, target_flops: int | None = None,
                     importance: Importance = "magnitude", global_pruning: bool = False,
                     round_to: int | None = None,
                     calib_batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
                     max_layer_ratio: float = MAX_LAYER_RATIO,
                     min_channels: dict[str, int] | None = None) -> nn.Module:
    """Remove whole channels (model edited in place and returned) to a ratio or a params/FLOPs target.

    The classifier keeps all its outputs. `ratio` is Torch-Pruning's channel ratio (per group, or of all
    channels under global ranking); with a target, pruning advances along Torch-Pruning's iterative
    schedule (TARGET_TICKS ticks up to MAX_TARGET_RATIO) and stops at the first tick under it. Global
    ranking never takes more than max_layer_ratio of a layer (floors by name: `min_channels`).
    """
    if sum(x is not None for x in (ratio, target_params, target_flops)) != 1:
        raise UserError("structured pruning needs exactly one of ratio, target_params, target_flops")
    head = model.get_submodule(head_name(model))
    if ratio is not None and not 0.0 <= ratio < 1.0:
        first = next((n for n, m in prunable_layers(model) if m is not head), "?")
        raise UserError(f"pruning ratio {ratio} would remove every channel of layer {first!r}; "
                        "allowed: 0 <= ratio < 1")
    batches = list(calib_batches) if calib_batches is not None else []
    if importance == "taylor" and not batches:
        raise UserError("taylor pruning importance needs calibration batches (images, labels)")
    targeted = ratio is None
    target = target_params if target_params is not None else target_flops
    if targeted and (target is None or target <= 0):
        raise UserError(f"pruning target must be a positive count, got {target}")
    check_round_to(model, round_to)
    was_training = model.training
    model.eval()
    guard = _KeepFloor(_importance(importance), _floors(model, max_layer_ratio, min_channels)) \
        if global_pruning else None
    top = min(MAX_TARGET_RATIO, max_layer_ratio) if global_pruning else MAX_TARGET_RATIO
    pruner = _Pruner(
        model, example_input, importance=guard or _importance(importance), global_pruning=global_pruning,
        pruning_ratio=top if targeted else ratio, iterative_steps=TARGET_TICKS if targeted else 1,
        ignored_layers=[head], round_to=round_to)
    if not targeted and not global_pruning:
        _check_ratio(pruner, model, ratio, round_to)
    flops = target_flops is not None
    per_image = example_input[:1]
    before = _cost(model, per_image, False)
    seen: tuple[int, int] | None = None  # (params, cost) at the last count: a tick that cut nothing is not recounted
    for _ in range(pruner.iterative_steps):
        if targeted:
            params = _cost(model, per_image, False)
            if seen is None or seen[0] != params:
                seen = (params, _cost(model, per_image, True) if flops else params)
            if seen[1] <= target:
                break
        if importance == "taylor":
            _accumulate_grads(model, batches)
        _step(pruner, guard)
        _check_widths(model)
    model.zero_grad(set_to_none=True)
    if ratio and _cost(model, per_image, False) == before:
        raise UserError(f"pruning at ratio {ratio} removed no channels (tied importance scores, or every "
                        "layer would be emptied" + (f", or every cut rounded away by round_to {round_to}" if round_to else "")
                        + "); allowed: another importance or a larger ratio" + (" or a smaller round_to" if round_to else ""))
    if targeted and (reached := _cost(model, per_image, flops)) > target:
        what = "FLOPs" if flops else "params"
        cap = f"{top:.0%} of channels" + (f", at most {max_layer_ratio:.0%} of any layer" if global_pruning else "")
        raise UserError(f"pruning cannot reach {target} {what} (stopped at {reached} after removing up to "
                        f"{cap}" + (f", widths kept multiples of round_to {round_to}" if round_to else "")
                        + "); allowed: a larger target" + (" or a larger max_layer_ratio" if global_pruning else "")
                        + (" or a smaller round_to" if round_to else ""))
    return model.train(was_training)


def layer_shapes(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Width attributes of every layer that has them: what a fresh model needs to take the pruned shape."""
    out: dict[str, dict[str, Any]] = {}
    for name, m in model.named_modules():
        attrs = {a: getattr(m, a) for a in _SHAPE_ATTRS if isinstance(getattr(m, a, None), (int, tuple))}
        if attrs:
            out[name] = {a: list(v) if isinstance(v, tuple) else v for a, v in attrs.items()}
    return out


def save_pruned(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """save_model plus the per-layer widths, so load_pruned rebuilds the pruned architecture directly."""
    return save_model(path, model, {**meta, "pruned_layers": layer_shapes(model)})


def _resize(model: nn.Module, layers: dict[str, dict[str, Any]], state: dict[str, torch.Tensor]) -> None:
    """Give the original architecture the recorded widths: set attributes, reallocate mis-sized tensors."""
    modules = dict(model.named_modules())
    for name, attrs in layers.items():
        if name not in modules:
            raise UserError(f"pruned checkpoint names layer {name!r}, absent from the rebuilt model")
        m = modules[name]
        for a, v in attrs.items():
            setattr(m, a, tuple(v) if isinstance(v, list) else v)
    for key, tensor in state.items():
        owner, _, attr = key.rpartition(".")
        m = modules.get(owner)
        if m is None:
            continue
        cur = getattr(m, attr, None)
        if isinstance(cur, torch.Tensor) and cur.shape != tensor.shape:
            new = torch.empty(tensor.shape, dtype=cur.dtype)
            if isinstance(cur, nn.Parameter):
                setattr(m, attr, nn.Parameter(new, requires_grad=cur.requires_grad))
            else:
                m.register_buffer(attr, new)


def load_pruned(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the original architecture, resize it to the recorded widths, load the weights strictly."""
    from ..models.factory import create_model
    from ..models.weights import load_state

    meta = read_meta(path)
    model = create_model(str(meta["model"]), int(meta["num_classes"]), key=str(path))
    state = read_safetensors(path, key=str(path))
    layers = meta.get("pruned_layers")
    if isinstance(layers, str):
        layers = json.loads(layers)
    _resize(model, layers or {}, state)
    load_state(model, state, str(path), key=str(path))
    return model, meta


def pruned_copy(model: nn.Module, example_input: torch.Tensor, **kwargs: Any) -> nn.Module:
    """prune_structured on a deep copy, for callers that keep the dense model (e.g. to compare)."""
    return prune_structured(copy.deepcopy(model), example_input, **kwargs)
