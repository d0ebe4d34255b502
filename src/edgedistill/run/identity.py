"""The run folder's identity: whether a resume may continue it (settings tag) and which teacher may be
reused by later runs (teacher key). A resume never mixes two settings: it continues under the recipe it started with."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..atomic import atomic_path
from ..errors import UserError
from ..recipe import Recipe, build_recipe

# Keys that change where or how fast a run computes, or what it measures afterwards, never its weights:
# a resume may change them (they are listed). train.device and train.threads change float rounding only;
# train.eval_every changes which epochs are evaluated (so which one best.pt holds), not the weights.
FREE_KEYS = (
    "train.resume", "train.threads", "train.device", "train.eval_every", "data.workers", "data.download",
    "eval.latency_runs", "eval.warmup_runs", "eval.threads", "distill.cache_dir", "output.",
    "track.",  # trackers watch a run; turning one on or off mid-run changes no weight
)
# Compression settings act after training: free until the run's compress folder exists; from then on
# compress.stages is checked by compress.chain.check_plan (its own message), the rest here.
COMPRESS_KEYS = ("compress.", "deploy.")


def _matches(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in prefixes)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 0.1}, 'distill': {'terms': [{'T': 4}]}} → {'train.lr': 0.1, 'distill.terms.0.T': 4}."""
    if isinstance(node, dict) and node:
        items = node.items()
    elif isinstance(node, list) and node:
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return {prefix: node}
    out: dict[str, Any] = {}
    for k, v in items:
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _shown(v: Any, absent: bool = False) -> str:
    text = "(absent)" if absent else json.dumps(v, default=str)
    return text if len(text) <= 60 else text[:57] + "…"


def _stored_recipe(path: Path) -> dict[str, Any]:
    """The recipe a run started with, with today's defaults filled in (a key added since is not a change)."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path} to check the resume against it ({type(e).__name__}); allowed: "
                        "a run without --resume", key="train.resume") from None
    try:
        return build_recipe(raw).model_dump(mode="json")
    except UserError:  # e.g. its data.root moved: compare the raw values
        return raw if isinstance(raw, dict) else {}


def check_resume(recipe: Recipe, run_dir: Path) -> list[str]:
    """Refuse (before any work) a resume whose recipe differs from the run's recipe.yaml in a key that changes
    results, naming each with both values; returns the free keys that differ, as `KEY: OLD → NEW` lines."""
    saved = run_dir / "recipe.yaml"
    if not saved.exists():
        return []
    before, now = flatten(_stored_recipe(saved)), flatten(recipe.model_dump(mode="json"))
    compress_started = (run_dir / "compress").exists()
    free, refused = [], []
    for key in sorted(before.keys() | now.keys()):
        if key in before and key in now and before[key] == now[key]:
            continue
        line = f"{key}: {_shown(before.get(key), key not in before)} → {_shown(now.get(key), key not in now)}"
        if _matches(key, FREE_KEYS) or (_matches(key, COMPRESS_KEYS) and not compress_started) \
                or key.startswith("compress.stages"):
            free.append(line)
        else:
            refused.append(line)
    if refused:
        raise UserError(f"the recipe differs from the one {run_dir} started with ({saved}) in "
                        f"{len(refused)} key(s) that change results: {'; '.join(refused)}; allowed: resume with "
                        "those values, or a run without --resume (a new run folder)", key="train.resume")
    return free


def settings_tag(recipe: Recipe) -> str:
    """A hash of every key that changes results: what each epoch of a stage records in last.pt. Keys at their
    default are left out, so a version that adds a key (at a default that keeps the old behaviour) still
    resumes the runs of the last one."""
    flat = flatten(recipe.model_dump(mode="json", exclude_defaults=True))
    kept = {k: v for k, v in flat.items() if not _matches(k, FREE_KEYS + COMPRESS_KEYS)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]


def teacher_key(recipe: Recipe) -> str:
    """Identity of a trained-from-scratch teacher: same key, same weights, so later runs reuse it."""
    # keys at their default left out, as in settings_tag: a key added later does not orphan stored teachers
    train = recipe.train.model_dump(mode="json", exclude={"resume", "threads", "device", "eval_every"},
                                    exclude_defaults=True)
    data = recipe.data.model_dump(mode="json", exclude_defaults=True,  # teachers never see unlabeled images
                                  exclude={"workers", "unlabeled", "unlabeled_column", "unlabeled_split"})
    ident = {"model": recipe.teacher.model, "epochs": recipe.teacher.epochs, "lr": recipe.teacher.lr,
             "train": train, "data": data, **({"probe": True} if recipe.teacher.probe else {})}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def store_teacher(final: Path, stored: Path, tags: list[str | None], key: str, epochs: int,
                  log: Callable[[str], Any]) -> bool:
    """Copy a teacher trained here into the store only when every one of its `epochs` ran under `key`
    (tags from its last.pt); a teacher resumed under other or unknown settings stays in its run folder."""
    if len(tags) != epochs or any(t != key for t in tags):
        log(f"[yellow]teacher: not stored in {stored.parent.parent} for reuse: its last.pt does not show all "
            f"{epochs} epochs trained under these settings (epoch tags {tags}, key {key})[/]")
        return False
    with atomic_path(stored) as tmp:
        shutil.copyfile(final, tmp)
    return True
