"""The `arch:FAMILY,key=value,…` grammar: knobs, families and the canonical spec string (no torch needed).

A search samples knob values, `family_spec` turns them into a model spec that `create_model` builds, and
`parse_family_spec` reads it back, so a search's winner is an ordinary `student.model` string.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError, shorten
from ..registry import Registry, unknown_name_message

PREFIX = "arch:"
FLOAT_DECIMALS = 4  # floats are rounded so a sampler's 0.7500000001 and 0.75 name one architecture

KnobValue = int | float | tuple[int, ...]


@dataclass(frozen=True)
class Knob:
    """One architecture parameter: `kind` 'int', 'float' or 'ints' (a dash-joined list of `length` ints), a
    closed range [low, high] (for 'ints': of each element) or a set of `choices`, and its default."""

    kind: str
    default: KnobValue
    low: float | None = None
    high: float | None = None
    choices: tuple[int, ...] | None = None
    length: int | None = None
    help: str = ""

    def allowed(self) -> str:
        """What a value may be, in the words an error message and `list models` use."""
        if self.choices is not None:
            what = "one of " + ", ".join(map(str, self.choices))
        elif self.kind == "float":
            what = f"a number in {_num(self.low)}..{_num(self.high)}"
        else:
            what = f"an integer in {_num(self.low)}..{_num(self.high)}"
        if self.kind == "ints":
            what = f"{self.length} values joined by '-', each {what}"
        return what

    def parse(self, text: str) -> KnobValue:
        """The value a spec's `key=text` names; ValueError (with the allowed values) when it is not one."""
        try:
            if self.kind == "ints":
                return self.check(tuple(int(p) for p in text.split("-")))
            return self.check(float(text) if self.kind == "float" else int(text))
        except ValueError:
            raise ValueError(f"{shorten(text)!r}; allowed: {self.allowed()}") from None

    def check(self, value: Any) -> KnobValue:
        """`value` normalised (int, rounded float, tuple of ints); ValueError when out of range or mistyped."""
        bad = ValueError(f"{shorten(str(value))!r}; allowed: {self.allowed()}")
        if self.kind == "ints":
            if isinstance(value, str) or not hasattr(value, "__len__") or len(value) != self.length:
                raise bad
            return tuple(self._scalar(v, int, bad) for v in value)
        return self._scalar(value, float if self.kind == "float" else int, bad)

    def _scalar(self, v: Any, typ: type, bad: ValueError) -> int | float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad
        if typ is int:
            if isinstance(v, float) and not (math.isfinite(v) and v.is_integer()):
                raise bad
            v = int(v)
        else:
            if not math.isfinite(v):
                raise bad
            v = round(float(v), FLOAT_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0
        if self.choices is not None and v not in self.choices:
            raise bad
        if self.low is not None and not self.low <= v <= self.high:
            raise bad
        return v

    def format(self, value: KnobValue) -> str:
        """The canonical text of a checked value: ints, floats by their shortest repr, lists dash-joined."""
        if self.kind == "ints":
            return "-".join(str(v) for v in value)  # type: ignore[union-attr]
        return repr(float(value)) if self.kind == "float" else str(int(value))  # type: ignore[arg-type]


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else str(x)


@dataclass(frozen=True)
class Family:
    """A parametric model family: its knobs in canonical order and how to build one point of it."""

    knobs: dict[str, Knob]
    build: Callable[[dict[str, KnobValue], int | None], Any]  # (knob values, num_classes) -> nn.Module
    description: str = ""
    default_classes: int = 1000
    reference: str = ""  # the registered model its defaults reproduce, e.g. timm:efficientnet_b0
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def default(self) -> dict[str, KnobValue]:
        return {k: knob.default for k, knob in self.knobs.items()}


FAMILIES: Registry[Family] = Registry("arch family")


def _family(name: str, key: str | None) -> Family:
    if name not in FAMILIES:
        raise UserError(unknown_name_message("arch family", name, FAMILIES.names())
                        + "; a spec is arch:FAMILY,key=value,…", key=key)
    return FAMILIES.get(name)


def _knob_error(family: str, knob: str, problem: str, key: str | None) -> UserError:
    return UserError(f"arch family {family!r}, knob {knob!r}: bad value {problem}", key=key)


def check_knobs(family: str, knobs: Mapping[str, Any], key: str | None = None) -> dict[str, KnobValue]:
    """All knobs of `family` in canonical order, defaults filled in, each value checked and normalised."""
    fam = _family(family, key)
    unknown = [k for k in knobs if k not in fam.knobs]
    if unknown:
        raise UserError(f"arch family {family!r} has no knob {unknown[0]!r}; allowed: "
                        f"{', '.join(fam.knobs)}", key=key)
    out: dict[str, KnobValue] = {}
    for name, knob in fam.knobs.items():
        try:
            out[name] = knob.check(knobs[name]) if name in knobs else knob.default
        except ValueError as e:
            raise _knob_error(family, name, str(e), key) from None
    return out


def family_spec(family: str, knobs: Mapping[str, Any], key: str | None = None) -> str:
    """The canonical model spec `arch:FAMILY,k=v,…` (every knob, canonical order) of these knob values."""
    fam, values = _family(family, key), check_knobs(family, knobs, key)
    return PREFIX + ",".join([family, *(f"{k}={fam.knobs[k].format(v)}" for k, v in values.items())])


def parse_family_spec(spec: str, key: str | None = None) -> tuple[str, dict[str, KnobValue]]:
    """(family, knob values) of `arch:FAMILY,k=v,…` (the `arch:` prefix optional; missing knobs take their
    defaults); the inverse of `family_spec`."""
    body = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    family, *parts = [p.strip() for p in body.split(",")]
    fam = _family(family, key)
    raw: dict[str, str] = {}
    for part in parts:
        name, sep, text = (s.strip() for s in part.partition("="))
        if not sep or not name:
            raise UserError(f"arch family {family!r}: expected key=value, got {shorten(part)!r} in "
                            f"{shorten(spec)!r}; allowed keys: {', '.join(fam.knobs)}", key=key)
        if name not in fam.knobs:
            raise UserError(f"arch family {family!r} has no knob {shorten(name)!r}; allowed: "
                            f"{', '.join(fam.knobs)}", key=key)
        if name in raw:
            raise UserError(f"arch family {family!r}: knob {name!r} given twice in {shorten(spec)!r}", key=key)
        raw[name] = text
    values: dict[str, KnobValue] = {}
    for name, knob in fam.knobs.items():
        try:
            values[name] = knob.parse(raw[name]) if name in raw else knob.default
        except ValueError as e:
            raise _knob_error(family, name, str(e), key) from None
    return family, values


def canonical_spec(spec: str, key: str | None = None) -> str:
    """The one spelling of `spec` (defaults filled, canonical order): a cache key for an architecture."""
    return family_spec(*parse_family_spec(spec, key), key=key)
