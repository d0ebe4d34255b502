"""What every recipe section shares: the strict base class, loss-term entries and the "did you mean" message."""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import shorten


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors, assignments are re-validated, and a float is finite
    (an infinite teacher weight or budget is no setting: `.inf` and `.nan` are refused, naming the key)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def choices_msg(value: str, allowed: list[str], what: str = "value") -> str:
    close = difflib.get_close_matches(value, allowed, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {what} {shorten(repr(value))}{hint} (allowed: {', '.join(allowed)})"


def check_model_spec(v: str) -> str:
    """A model spec's source exists and, for a source with a grammar (arch:), its rest parses; else ValueError."""
    from ..errors import UserError
    from ..models import MODEL_SOURCES

    prefix, sep, rest = v.partition(":")
    if not sep or not rest:
        raise ValueError(f"expected SOURCE:NAME with SOURCE one of {', '.join(MODEL_SOURCES.names())}")
    if prefix not in MODEL_SOURCES:
        raise ValueError(choices_msg(prefix, MODEL_SOURCES.names(), what="model source"))
    try:  # a source with a grammar (arch:) checks it here, before any work
        getattr(MODEL_SOURCES.get(prefix), "validate", lambda _: None)(rest)
    except UserError as e:
        raise ValueError(str(e)) from None
    return v


def _finite(value: Any) -> bool:
    """Every float in a parameter value (lists and mappings searched) is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


class TermConfig(BaseModel):
    """One weighted loss term; its own parameters are checked by the method's schema."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    name: str
    weight: float = Field(1.0, ge=0, description="weight of this term in the total loss")

    @property
    def params(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items() if k != "teacher"}

    @property
    def teacher(self) -> int | None:
        """Index into teachers.models of the one teacher this term learns from (ensemble rule per_term)."""
        return (self.model_extra or {}).get("teacher")

    @model_validator(mode="after")
    def _check_params(self) -> TermConfig:
        from ..distill import METHODS

        if self.name not in METHODS:
            raise ValueError(choices_msg(self.name, METHODS.names(), what="method"))
        params = METHODS.get(self.name).Params(**self.params)  # raises ValidationError naming the parameter
        for key, value in params.model_dump().items():
            if not _finite(value):  # a method's own schema may forget it: .inf/.nan never is a setting
                raise ValueError(f"{key} must be a finite number (got {value!r}); allowed: finite values")
        t = self.teacher
        if t is not None and (not isinstance(t, int) or isinstance(t, bool) or t < 0):
            raise ValueError(f"teacher must be an index into teachers.models (0, 1, …), got {t!r}")
        return self


def describe_section(prefix: str, model: type[BaseModel]) -> list[tuple[str, str, str]]:
    """Rows of one section; a nested section (deploy.budget) is listed key by key."""
    out = []
    for key, f in model.model_fields.items():
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
            out += describe_section(f"{prefix}.{key}", f.annotation)
            continue
        default = f.default_factory() if f.default_factory else f.default
        if key == "terms":
            default = [t.model_dump() for t in default]
        if hasattr(default, "value"):
            default = default.value
        shown = "required" if default is ... else json.dumps(default if not isinstance(default, Path) else str(default))
        out.append((f"{prefix}.{key}", shown, f.description or ""))
    return out
