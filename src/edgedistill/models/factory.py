"""`create_model(\"source:name\")`: one entry point for every source, weights file and head size."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .base import MODEL_SOURCES, ModelSource
from .heads import head_name, reset_head
from .io import read_meta, read_safetensors
from .weights import guess_head_rows, load_state, read_shapes, read_state_dict

_NO_WEIGHTS = (None, "", "none", "None")
_META_BUILDABLE = ("timm", "torchvision", "cifar", "arch")  # cheap to build on the meta device to find the head


@contextmanager
def _keyed(key: str | None) -> Iterator[None]:
    """Sources raise key-less UserErrors; attach the recipe key the user has to fix."""
    try:
        yield
    except UserError as e:
        if e.key is None and key is not None:
            raise UserError(str(e), key=key) from None
        raise


def split_spec(spec: str, key: str | None = "model") -> tuple[str, ModelSource, str]:
    """'source:name' → (source name, source object, model name), with a helpful error if malformed."""
    prefix, sep, name = spec.partition(":")
    if not sep or not name:
        sources = ", ".join(MODEL_SOURCES.names())
        raise UserError(f"expected SOURCE:NAME, got {spec!r}; SOURCE one of {sources}", key=key)
    return prefix, MODEL_SOURCES.get(prefix, key=key), name


def _mismatch(spec: str, what: str, have: int, want: int, key: str | None) -> UserError:
    return UserError(f"{spec} ({what}) has {have} classes but {want} are needed; allowed: resize_head=true "
                     f"(replace the classifier), or weights for {want} classes", key=key)


def _head_rows(model: nn.Module) -> int:
    return int(model.get_submodule(head_name(model)).weight.shape[0])


def create_model(spec: str, num_classes: int | None = None, weights: str | None = None,
                 resize_head: bool = True, key: str = "model") -> nn.Module:
    """Build `spec`, load `weights` (None, 'pretrained' or a file), and fit the head to `num_classes`."""
    _, source, name = split_spec(spec, key)
    with _keyed(key):
        if weights in _NO_WEIGHTS or weights == "pretrained":
            pretrained = weights == "pretrained"
            native = source.native_classes(name, pretrained)
            if native is not None and num_classes is not None and native != num_classes and not resize_head:
                raise _mismatch(spec, weights or "its weights", native, num_classes, key)
            return source.create(name, num_classes, pretrained)
        state = read_state_dict(str(weights), key)
        model = source.create(name, num_classes, False)
        head = head_name(model)
        w = state.get(f"{head}.weight")
        have = int(w.shape[0]) if w is not None else None
        want = num_classes if num_classes is not None else have  # None: the weights decide
        if have is not None and have != want and not resize_head:
            raise _mismatch(spec, str(weights), have, want, key)
        if have is not None and have != _head_rows(model):
            reset_head(model, have)  # take the weights' head as is, then swap it below
        load_state(model, state, str(weights), key)
        if have is not None and have != want:
            reset_head(model, want)
        return model


def weights_class_count(spec: str, weights: str | None, key: str = "model") -> int | None:
    """Class count `weights` would give `spec`, without building the model where possible (recipe checks)."""
    prefix, source, name = split_spec(spec, key)
    with _keyed(key):
        if weights in _NO_WEIGHTS or weights == "pretrained":
            return source.native_classes(name, weights == "pretrained")
        shapes, meta = read_shapes(str(weights), key)
        if isinstance(meta.get("num_classes"), int):
            return int(meta["num_classes"])
        if prefix in _META_BUILDABLE:
            try:  # the exact head name from a weightless build; falls back to guessing on any failure
                with torch.device("meta"):
                    model = source.create(name, None, False)
                shape = shapes.get(f"{head_name(model)}.weight")
                if shape:
                    return int(shape[0])
            except UserError:
                raise
            except Exception:  # noqa: BLE001
                pass
        return guess_head_rows(shapes)


def list_models(source: str | None = None, pattern: str | None = None) -> dict[str, list[str]]:
    """Model names per source (optionally one source, optionally filtered by a glob) for `list models`."""
    if source is not None:
        MODEL_SOURCES.get(source, key="--source")
    out = {}
    for e in MODEL_SOURCES:
        if source is None or e.name == source:
            names = e.obj.names()
            out[e.name] = fnmatch.filter(names, pattern) if pattern else names
    return out


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model named in the file's meta and load its weights strictly."""
    meta = read_meta(path)
    model = create_model(str(meta["model"]), int(meta["num_classes"]), key=str(path))
    load_state(model, read_safetensors(path, key=str(path)), str(path), key=str(path))
    return model, meta
