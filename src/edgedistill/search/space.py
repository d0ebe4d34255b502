"""The search space: named models and parametric-family points, each at an input resolution, as Optuna knobs.

Every point is a `Candidate` whose `spec` is a string `create_model` accepts, so the winner's recipe is an
ordinary recipe. Knob choices are categorical: Optuna's samplers take them as given and the space stays a
finite list that cost measurement can walk before any training.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

import optuna

from ..errors import UserError
from ..recipe import Recipe
from ..recipe.base import choices_msg

MAX_CANDIDATES = 2000  # about 0.2 s each to export and time: minutes, not the 12 hours 200,000 took
MODEL_KEY = "model"  # the knob holding a named model, or "family:NAME"


@dataclass(frozen=True)
class Candidate:
    spec: str
    image_size: int

    @property
    def key(self) -> str:
        return f"{self.spec}@{self.image_size}"

    @property
    def slug(self) -> str:
        """A folder name: readable, and unique by a short hash of the key."""
        short = re.sub(r"[^A-Za-z0-9]+", "-", self.spec).strip("-")[:48]
        return f"{short}-{self.image_size}px-{hashlib.sha1(self.key.encode()).hexdigest()[:6]}"


def _choice(v: Any) -> Any:
    """A YAML list choice ([1, 1, 1]) becomes the spec grammar's dash form ("1-1-1"): Optuna wants scalars."""
    return "-".join(str(x) for x in v) if isinstance(v, list | tuple) else v


def family_spec(family: str, knobs: dict[str, Any]) -> str:
    """The canonical `arch:` spec of knob choices written as in the spec grammar (1-1-1, 0.5, 3)."""
    body = ",".join(f"{k}={v}" for k, v in knobs.items())
    return _families().canonical_spec(f"arch:{family}" + (f",{body}" if body else ""))


def _families() -> Any:
    try:
        from ..models import families
    except ImportError:
        raise UserError("search.space.families needs the parametric model families (edgedistill.models.families), "
                        "missing from this install; allowed: search.space.models",
                        key="search.space.families") from None
    return families


@dataclass
class Space:
    """The resolved space: models, family knob choices and image sizes."""

    models: list[str]
    families: dict[str, dict[str, list[Any]]]  # family → knob → choices (only the knobs searched)
    sizes: list[int]

    @property
    def _picks(self) -> list[str]:
        return list(self.models) + [f"family:{f}" for f in self.families]

    def _points(self) -> dict[str, dict[str, Any]]:
        """Every spec of the space → the Optuna params that make it (named models first, then each family)."""
        out: dict[str, dict[str, Any]] = {m: {MODEL_KEY: m} for m in self.models}
        for fam, knobs in self.families.items():
            names = list(knobs)
            for combo in itertools.product(*(knobs[k] for k in names)):
                point = dict(zip(names, combo, strict=True))
                params = {f"{fam}.{k}": v for k, v in point.items() if len(knobs[k]) > 1}
                out.setdefault(family_spec(fam, point), {MODEL_KEY: f"family:{fam}", **params})
        return out

    def candidates(self) -> list[Candidate]:
        """Every point of the space, in a fixed order."""
        return [Candidate(s, size) for s in self._points() for size in self.sizes]

    def suggest(self, trial: optuna.Trial) -> Candidate:
        """One point: the model (a named spec or a family), then that family's knobs, then the resolution."""
        picks = self._picks
        pick = trial.suggest_categorical(MODEL_KEY, picks) if len(picks) > 1 else picks[0]
        if pick.startswith("family:") and pick not in self.models:
            fam = pick.removeprefix("family:")
            knobs = {k: (trial.suggest_categorical(f"{fam}.{k}", c) if len(c) > 1 else c[0])
                     for k, c in self.families[fam].items()}
            spec = family_spec(fam, knobs)
        else:
            spec = pick
        size = trial.suggest_categorical("image_size", self.sizes) if len(self.sizes) > 1 else self.sizes[0]
        return Candidate(spec, int(size))

    def params_of(self, cand: Candidate) -> dict[str, Any]:
        """The Optuna params that suggest() turns into `cand` (to enqueue a killed trial again)."""
        params = dict(self._points()[cand.spec])
        if len(self._picks) == 1:
            params.pop(MODEL_KEY)
        if len(self.sizes) > 1:
            params["image_size"] = cand.image_size
        return params


def resolve_space(recipe: Recipe) -> Space:
    """The recipe's space, checked: not empty, known families and knobs, choices each family accepts."""
    sp = recipe.search.space
    fams: dict[str, dict[str, list[Any]]] = {}
    if sp.families:
        mod = _families()
        for fam, knobs in sp.families.items():
            if fam not in mod.FAMILIES:
                raise UserError(choices_msg(fam, mod.FAMILIES.names(), what="family"),
                                key=f"search.space.families.{fam}")
            known = mod.FAMILIES.get(fam).knobs
            for knob in knobs:
                if knob not in known:
                    raise UserError(choices_msg(knob, list(known), what=f"knob of family {fam!r}"),
                                    key=f"search.space.families.{fam}.{knob}")
            fams[fam] = {k: list(dict.fromkeys(_choice(c) for c in v)) for k, v in knobs.items()}
            for k, choices in fams[fam].items():  # every choice alone must make a valid spec
                for c in choices:
                    try:
                        family_spec(fam, {k: c})
                    except UserError as e:
                        raise UserError(str(e), key=f"search.space.families.{fam}.{k}") from None
    sizes = list(dict.fromkeys(sp.image_size)) or [recipe.data.image_size]
    points = sum(math.prod(len(c) for c in k.values()) for k in fams.values())
    count = (len(set(sp.models)) + points) * len(sizes)
    if count > MAX_CANDIDATES:  # counted before any is listed: each is timed in ONNX Runtime before training
        raise UserError(f"the space has {count:,} candidates (({len(set(sp.models))} models + {points:,} family "
                        f"points) × {len(sizes)} image sizes); allowed: at most {MAX_CANDIDATES:,} (each is exported "
                        "and timed before any training): fewer knob choices or sizes", key="search.space")
    space = Space(list(dict.fromkeys(sp.models)), fams, sizes)
    if not space.models and not space.families:
        raise UserError("search.space is empty: no search.space.models and no search.space.families; allowed: "
                        "e.g. search.space.models=[cifar:resnet8,cifar:resnet14]", key="search.space")
    return space
