"""The recipe: one validated document that says what a run does, so any run can be repeated from it."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from . import recipe_yaml
from .errors import UserError, shorten
from .recipe_base import Section, TermConfig, _choices_msg, describe_section
from .recipe_compare import CompareConfig
from .recipe_compress import STAGE_TYPES, BudgetConfig, CompressConfig, DeployConfig, StageConfig  # noqa: F401
from .recipe_explain import ExplainConfig
from .recipe_models import ModelConfig, StudentConfig, TeacherConfig, TeachersConfig
from .recipe_search import SearchConfig
from .recipe_track import TrackConfig
from .writable import folder_problem


class DataConfig(Section):
    source: str = Field("digits", description="dataset source: digits, imagefolder, torchvision, hf-disk")
    root: Path | None = Field(None, description="dataset folder (not needed for digits)")
    name: str | None = Field(None, description="torchvision dataset class, e.g. CIFAR10")
    image_size: int = Field(32, gt=0, le=2048, description="side of the square input images, in pixels (1..2048)")
    val_ratio: float = Field(0.2, gt=0, lt=1, description="held-out share when a source has no val split")
    split_seed: int = Field(0, description="seed of that split, fixed so runs compare on the same images")
    augment: Literal["auto", "padcrop", "randomresizedcrop", "none"] = Field(
        "auto", description="train augmentation; auto: pad-crop+flip up to 64 px, random-resized-crop+flip above"
    )
    hflip: bool = Field(True, description="random horizontal flip in train augmentation (turn off for digits and text)")
    mean: tuple[float, float, float] = Field((0.485, 0.456, 0.406), description="normalization mean (RGB)")
    std: tuple[float, float, float] = Field((0.229, 0.224, 0.225), description="normalization std (RGB)")
    bad_images: Literal["fail", "skip"] = Field("fail", description="unreadable image: stop, or skip it (count and "
                                                "file names go to metrics.json and the report)")
    download: bool = Field(False, description="let torchvision download the dataset (needs network)")
    workers: int = Field(2, ge=0, description="DataLoader worker processes")
    max_train_samples: int | None = Field(None, gt=0, description="use a fixed random subset of N train images (quick trials)")
    max_val_samples: int | None = Field(None, gt=0, description="use a fixed random subset of N held-out images")
    unlabeled: Path | None = Field(None, description="folder tree of extra images without labels (any layout; "
                                   "labels ignored), used by the distillation terms only")
    device_resident: bool = Field(False, description="small images (≤64 px): hold the train split as a uint8 tensor "
                                  "on the training device and pad-crop+flip there, no DataLoader workers")

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        from .data import DATA_SOURCES

        if v not in DATA_SOURCES:
            raise ValueError(_choices_msg(v, DATA_SOURCES.names()))
        return v

    @field_validator("root", "unlabeled")
    @classmethod
    def _root_exists(cls, v: Path | None) -> Path | None:
        if v is not None and not recipe_yaml.exists(v):
            raise ValueError(f"folder does not exist: {shorten(str(v), 300)}")
        return Path(v).expanduser() if v is not None else None

    @field_validator("std")
    @classmethod
    def _positive_std(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(v) <= 0:
            raise ValueError("every std must be > 0")
        return v

    @model_validator(mode="after")
    def _device_resident_fits(self) -> DataConfig:
        if self.device_resident and (self.image_size > 64 or self.augment == "randomresizedcrop"):
            raise ValueError(
                f"data.device_resident=true holds small images with pad-crop/flip augmentation; got "
                f"data.image_size={self.image_size}, data.augment={self.augment!r} "
                "(allowed: image_size ≤ 64 and augment auto, padcrop or none)")
        return self

    @model_validator(mode="after")
    def _root_needed(self) -> DataConfig:
        if self.source != "digits" and self.root is None and not (self.source == "torchvision" and self.download):
            raise ValueError(f"data.root is required for source {self.source!r}")
        if self.source == "torchvision" and not self.name:
            raise ValueError("data.name is required for source 'torchvision' (e.g. CIFAR10)")
        return self


class DistillConfig(Section):
    terms: list[TermConfig] = Field(
        default_factory=lambda: [TermConfig(name="kd", weight=1.0, T=4.0)],
        description="weighted loss terms between student and teacher",
    )
    ce_weight: float = Field(1.0, ge=0, description="weight of cross-entropy on the labels")
    scheme: Literal["offline", "online", "born_again"] = Field(
        "offline", description="offline: frozen teacher teaches the student; online: peers learn from each other "
        "(section online); born_again: generation k teaches k+1 (section born_again)"
    )
    teacher_cache: bool = Field(False, description="compute the teacher's outputs once into a memory-mapped cache "
                                "and reuse it across epochs (augment none) or runs (augment on: one row per epoch)")
    function_matching: bool = Field(False, description="Beyer et al. 2022: teacher and student see the same "
                                    "strongly augmented, mixed-up view; terms only, no cross-entropy, no cache")
    cache_dir: Path = Field(Path("runs/teacher-cache"), description="folder of teacher-output caches, one subfolder "
                            "per key (teacher weights, data, transform, seed, image size)")
    cache_dtype: Literal["float16", "float32"] = Field("float16", description="storage type of cached outputs")
    cache_max_gb: float = Field(8.0, gt=0, description="disk budget of one cache; larger → live teacher, with a warning")

    @model_validator(mode="after")
    def _cache_writable(self) -> DistillConfig:
        problem = folder_problem(self.cache_dir) if self.teacher_cache else None
        if problem:
            raise ValueError(f"distill.cache_dir={shorten(str(self.cache_dir))!r} is not writable ({problem}); "
                             "allowed: a writable folder, or distill.teacher_cache=false")
        return self


class OnlineConfig(Section):
    """Deep mutual learning (distill.scheme=online): peers trained together, each reported."""

    peers: list[str] = Field(default_factory=lambda: ["cifar:resnet8", "cifar:resnet8"],
                             description="model specs of the peers trained together (two or more)")
    T: float = Field(1.0, gt=0, description="temperature of the peer-to-peer KL (the paper: 1)")
    weight: float = Field(1.0, ge=0, description="weight of each peer's mean KL to the other peers")
    teacher: bool = Field(False, description="also distill the teacher into every peer with distill.terms")

    @field_validator("peers")
    @classmethod
    def _peer_specs(cls, v: list[str]) -> list[str]:
        if len(v) < 2:
            raise ValueError(f"mutual learning needs at least 2 peers, got {len(v)}")
        for spec in v:
            ModelConfig._has_prefix(spec)
        return v


class BornAgainConfig(Section):
    """Born-again generations (distill.scheme=born_again), all of the student's architecture."""

    generations: int = Field(2, gt=0, le=20, description="generations trained one after another (1..20)")
    first: Literal["alone", "teacher"] = Field(
        "alone", description="teacher of generation 1: the student trained alone (the paper; with generations=1: "
        "Tf-KD_self) or the recipe's teacher"
    )


class TrainConfig(Section):
    epochs: int = Field(10, gt=0, description="training epochs of the student")
    batch_size: int = Field(64, gt=0, le=65536, description="images per step (1..65536)")
    lr: float = Field(0.05, gt=0, description="peak learning rate")
    optimizer: Literal["sgd", "adamw"] = Field("sgd", description="sgd (momentum, nesterov) or adamw")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    nesterov: bool = Field(True, description="Nesterov momentum for SGD")
    weight_decay: float = Field(5e-4, ge=0, description="decoupled for adamw, L2 for sgd")
    schedule: Literal["cosine", "step", "constant"] = Field("cosine", description="learning-rate schedule")
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up length, in epochs")
    milestones: list[int] = Field(default_factory=list, description="epochs where the step schedule decays")
    gamma: float = Field(0.1, gt=0, le=1, description="step-schedule decay factor")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the cross-entropy")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    amp: Literal["off", "bf16", "fp16"] = Field("off", description="mixed precision (fp16 needs CUDA)")
    channels_last: bool = Field(False, description="channels_last memory format (CUDA)")
    compile: bool = Field(False, description="torch.compile the training step (first steps slower while it compiles)")
    sync_bn: bool = Field(False, description="SyncBatchNorm across processes under torchrun (CUDA only; on CPU "
                          "each process keeps its own batch statistics)")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    seed: int = Field(0, description="seed of weights, shuffling and augmentation")
    threads: int | None = Field(None, gt=0, description="torch CPU threads (default: torch's choice)")
    eval_every: int = Field(1, gt=0, description="evaluate on the held-out split every N epochs")
    resume: bool = Field(False, description="continue the latest run in output.dir/output.name")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("auto", "cpu", "cuda") and not (v.startswith("cuda:") and v[5:].isdigit()):
            raise ValueError("allowed: auto, cpu, cuda, cuda:N")
        return v

    @model_validator(mode="after")
    def _warmup_fits(self) -> TrainConfig:
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"train.warmup_epochs ({self.warmup_epochs}) must be < train.epochs ({self.epochs})")
        bad = [m for m in self.milestones if m <= 0 or m >= self.epochs]
        if bad:
            allowed = f"epochs in 1..{self.epochs - 1}" if self.epochs > 1 else \
                "[] (with train.epochs=1 there is no later epoch to decay at)"
            raise ValueError(f"train.milestones={self.milestones} has {bad} outside train.epochs={self.epochs}; "
                             f"allowed: {allowed}")
        return self


class EvalConfig(Section):
    baseline: bool = Field(True, description="also train the student alone on the same budget, for comparison")
    split: Literal["val", "test"] = Field("val", description="held-out split every metric is computed on")
    kd_T: float = Field(4.0, gt=0, description="temperature of the reported student-teacher KD loss")
    ece_bins: int = Field(15, gt=0, description="bins of the expected calibration error")
    latency_runs: int = Field(50, gt=0, description="timed batch-1 CPU runs per model (after warm-up)")
    warmup_runs: int = Field(10, ge=0, description="untimed runs before timing")
    threads: int | None = Field(None, gt=0, description="CPU threads for latency (default: torch's choice)")
    pcr: list[Literal["latency", "size", "energy", "flops"]] = Field(
        ["latency", "size", "energy", "flops"], description="Performance-Cost Ratio variants reported per student "
        "and compress stage: (top-1 / teacher top-1) / (cost / teacher cost); see README")


class OutputConfig(Section):
    dir: Path = Field(Path("runs"), description="parent folder of run folders")
    name: str = Field("run", description="run folder name; -2, -3, … appended when it exists (unless resuming)")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not v or "/" in v or v in (".", ".."):
            raise ValueError("must be a plain folder name")
        return v


class Recipe(Section):
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
        from .distill import terms_need_teacher

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
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


SECTIONS = tuple(Recipe.model_fields)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a recipe file as plain data (see recipe_yaml: no tags, bounded aliases, no duplicate keys)."""
    return recipe_yaml.load_yaml(path, SECTIONS)


def parse_override(item: str) -> tuple[list[str], Any]:
    """`train.epochs=5` → (['train', 'epochs'], 5); values are YAML scalars or flow lists/maps."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise UserError(f"override {item!r} is not of the form section.key=value")
    parts = key.strip().split(".")
    if parts[0] not in SECTIONS:
        raise UserError(_choices_msg(parts[0], list(SECTIONS), what="recipe section") + f" in override {item!r}")
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


def format_validation_error(err: ValidationError) -> str:
    """Name the key, the bad value and what is allowed, one line per problem."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            section = ".".join(str(p) for p in e["loc"][:-1])
            allowed = _allowed_keys(e["loc"][:-1])
            close = difflib.get_close_matches(str(e["loc"][-1]), allowed, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            lines.append(
                f"{loc}: unknown key{hint} (allowed in {section or 'the recipe'}: {', '.join(allowed)})"
            )
            continue
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" (got {shorten(repr(value))})"
        lines.append(f"{loc or 'recipe'}: {shorten(msg, 400)}{shown}")
    return f"invalid recipe: {lines[0]}" if len(lines) == 1 else "invalid recipe:\n  " + "\n  ".join(lines)


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
    defaults = {s: f.default_factory().model_dump(mode="json") for s, f in Recipe.model_fields.items()}
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
    return [row for section, sfield in Recipe.model_fields.items() for row in describe_section(section, sfield.annotation)]
