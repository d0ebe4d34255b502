"""The recipe: one validated document that says what a run does, so any run can be repeated from it."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from ..errors import UserError, shorten
from . import loading as recipe_yaml
from .base import Section, choices_msg, describe_section
from .compare import CompareConfig
from .compress import STAGE_TYPES, BudgetConfig, CompressConfig, DeployConfig, StageConfig  # noqa: F401
from .explain import ExplainConfig
from .models import StudentConfig, TeacherConfig, TeachersConfig
from .search import SearchConfig
from .detection import DetectionConfig
from .task import TASK_DESCRIPTION, SegmentationConfig, Task, check_task
from .sections import (  # noqa: F401
    BornAgainConfig,
    DataConfig,
    DistillConfig,
    EvalConfig,
    OnlineConfig,
    OutputConfig,
    TrainConfig,
)
from .track import TrackConfig


class Recipe(Section):
    task: Task = Field("classification", description=TASK_DESCRIPTION)
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    teachers: TeachersConfig = Field(default_factory=TeachersConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    online: OnlineConfig = Field(default_factory=OnlineConfig)
    born_again: BornAgainConfig = Field(default_factory=BornAgainConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    compress: CompressConfig = Field(default_factory=CompressConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    track: TrackConfig = Field(default_factory=TrackConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)

    @model_validator(mode="after")
    def _names_fit_the_task(self) -> Recipe:
        check_task(self)
        return self

    @model_validator(mode="after")
    def _teacher_outlasts_warmup(self) -> Recipe:
        """A teacher trained for no more epochs than the warm-up would end at a fraction of its lr, silently."""
        epochs, warm = self.teacher.epochs, self.train.warmup_epochs
        if epochs is not None and warm >= epochs:
            raise ValueError(f"train.warmup_epochs ({warm:g}) must be < teacher.epochs ({epochs}): the teacher's "
                             "training uses the same warm-up and would end before it does; allowed: teacher.epochs "
                             "above the warm-up, or a smaller train.warmup_epochs")
        return self

    @model_validator(mode="after")
    def _cache_matches_data_path(self) -> Recipe:
        if self.distill.teacher_cache and self.data.device_resident and self.data.augment != "none":
            raise ValueError(
                "distill.teacher_cache=true with data.device_resident=true needs data.augment=none: the cache is "
                f"computed on the CPU augmentation's draws, the device path draws its own (got data.augment="
                f"{self.data.augment!r}); allowed: data.augment=none, or one of the two off")
        return self

    @model_validator(mode="after")
    def _scheme_has_a_teacher_signal(self) -> Recipe:
        from ..distill import terms_need_teacher

        d = self.distill
        peer_kl = d.scheme == "online" and self.online.weight > 0
        if d.ce_weight == 0 and not peer_kl and not any(t.weight > 0 for t in d.terms):
            raise ValueError(f"the total loss is identically zero: distill.ce_weight=0 and every distill.terms "
                             f"weight is 0 (got {[(t.name, t.weight) for t in d.terms]}); allowed: "
                             "distill.ce_weight > 0 or a term with weight > 0")
        if d.scheme == "born_again" and not terms_need_teacher(d):
            raise ValueError(f"distill.scheme=born_again needs a distill.terms entry that learns from a teacher "
                             f"(got {[t.name for t in d.terms]}); allowed: e.g. kd, dkd, dist")
        if d.scheme == "online" and self.online.teacher and not terms_need_teacher(d):
            raise ValueError(f"online.teacher=true needs a distill.terms entry that learns from a teacher "
                             f"(got {[t.name for t in d.terms]}); allowed: e.g. kd, or online.teacher=false")
        return self

    def to_yaml(self) -> str:
        plain = {"task", "segmentation"} if self.task == "classification" else set()  # as before the task layer
        plain.add("detection" if self.task != "detection" else "segmentation")
        return yaml.safe_dump(self.model_dump(mode="json", exclude=plain), sort_keys=False)


SECTIONS = tuple(k for k in Recipe.model_fields if k != "task")  # `task` is a top-level value, not a section


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a recipe file as plain data (see recipe_yaml: no tags, bounded aliases, no duplicate keys)."""
    return recipe_yaml.load_yaml(path, SECTIONS)


def parse_override(item: str) -> tuple[list[str], Any]:
    """`train.epochs=5` → (['train', 'epochs'], 5); values are YAML scalars or flow lists/maps."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise UserError(f"override {item!r} is not of the form section.key=value")
    parts = key.strip().split(".")
    if parts == ["task"]:
        return parts, raw.strip()
    if parts[0] not in SECTIONS:
        raise UserError(choices_msg(parts[0], list(SECTIONS), what="recipe section") + f" in override {item!r}")
    if len(parts) < 2:
        raise UserError(f"override {item!r} needs a key inside section {parts[0]!r}, e.g. {parts[0]}.KEY=VALUE")
    try:
        value = recipe_yaml.parse_yaml(raw, f"override {shorten(item)!r}") if raw.strip() else None
    except UserError as e:
        if "not valid YAML" not in str(e):
            raise  # an alias bomb or a duplicate key is refused, not read as a string
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        parts, value = parse_override(item)
        node = data
        for p in parts[:-1]:
            if isinstance(node, list) and p.isdigit() and int(p) < len(node):
                node = node[int(p)]
                continue
            if not isinstance(node, dict):
                raise UserError(f"override {item!r}: {p!r} is not a section")
            node = node.setdefault(p, {})
        last = parts[-1]
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise UserError(f"override {item!r}: cannot set {last!r} there")
    return data


def format_validation_error(err: ValidationError, section: str = "", head: str = "invalid recipe") -> str:
    """Name the key, the bad value and what is allowed, one line per problem; `section` prefixes the keys of a
    section validated alone (`compare.seeds`), so a flag's value reads like the recipe key it sets."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (*([section] if section else []), *e["loc"]))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            where = ".".join(str(p) for p in (*([section] if section else []), *e["loc"][:-1]))
            allowed = _allowed_keys(((section,) if section else ()) + tuple(e["loc"][:-1]))
            close = difflib.get_close_matches(str(e["loc"][-1]), allowed, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            lines.append(
                f"{loc}: unknown key{hint} (allowed in {where or 'the recipe'}: {', '.join(allowed)})"
            )
            continue
        value = e.get("input")
        if e["type"] == "union_tag_not_found":  # `{name:export}` is YAML for {"name:export": null}
            lines.append(f"{loc}: no stage name in {shorten(repr(value))}; allowed: {{name: STAGE, …}} with STAGE one "
                         f"of {', '.join(STAGE_TYPES)} (YAML needs a space after each colon: {{name: export}})")
            continue
        shown = "" if isinstance(value, dict) else f" (got {shorten(repr(value))})"
        lines.append(f"{loc or 'recipe'}: {shorten(msg, 400)}{shown}")
    return f"{head}: {lines[0]}" if len(lines) == 1 else f"{head}:\n  " + "\n  ".join(lines)


def _allowed_keys(loc: tuple) -> list[str]:
    if len(loc) == 4 and loc[:2] == ("compress", "stages") and loc[3] in STAGE_TYPES:
        return list(STAGE_TYPES[loc[3]].model_fields)
    model: type[BaseModel] = Recipe
    for p in loc:
        field = model.model_fields.get(str(p))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def build_recipe(data: dict[str, Any] | None = None, overrides: list[str] | None = None) -> Recipe:
    """Defaults, then the file's values, then overrides (so `distill.terms.0.T=2` works on the default list)."""
    defaults = {s: f.default_factory().model_dump(mode="json") for s, f in Recipe.model_fields.items()
                if f.default_factory}
    data = recipe_yaml.sections_are_mappings(dict(data or {}), SECTIONS, "recipe")
    data = apply_overrides(_merge(defaults, data), overrides or [])
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise UserError(format_validation_error(e)) from None


def load_recipe(path: str | Path | None = None, overrides: list[str] | None = None) -> Recipe:
    """Recipe from a YAML file (or defaults) plus `section.key=value` overrides, validated."""
    return build_recipe(load_yaml(path) if path else {}, overrides)


def describe_keys() -> list[tuple[str, str, str]]:
    """(dotted key, default, description) of every recipe key: the README's table is generated from it."""
    task = Recipe.model_fields["task"]
    return [("task", f'"{task.default}"', task.description or "")] + [
        row for section, sfield in Recipe.model_fields.items() if section != "task"
        for row in describe_section(section, sfield.annotation)]
