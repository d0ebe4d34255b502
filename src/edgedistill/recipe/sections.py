"""The core sections of a recipe: data, distill, online, born_again, train, eval, output."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..errors import shorten
from ..output_folder import folder_problem
from . import loading as recipe_yaml
from .base import Section, TermConfig, choices_msg
from .compress import STAGE_TYPES, BudgetConfig, CompressConfig, DeployConfig, StageConfig  # noqa: F401
from .models import ModelConfig


class DataConfig(Section):
    source: str = Field("digits", description="dataset source: digits, imagefolder, torchvision, hf-disk; "
                        "task=segmentation: seg-shapes, seg-masks, hf-disk; task=detection: det-shapes, det-coco, "
                        "det-yolo, det-voc")
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
    unlabeled: Path | None = Field(None, description="extra images without labels, used by the distillation terms "
                                   "only: a folder tree (any layout, folder names ignored) or a dataset saved with "
                                   "save_to_disk (its image column; labels never read)")
    unlabeled_column: str | None = Field(None, description="data.unlabeled as a saved dataset: its image column "
                                         "(null: 'image'/'img' or the first Image column)")
    unlabeled_split: str | None = Field(None, description="data.unlabeled as a saved dataset: its split "
                                        "(null: 'train', else its only or first split)")
    device_resident: bool = Field(False, description="small images (≤64 px): hold the train split as a uint8 tensor "
                                  "on the training device and pad-crop+flip there, no DataLoader workers")

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        from ..data import DATA_SOURCES

        if v not in DATA_SOURCES:
            raise ValueError(choices_msg(v, DATA_SOURCES.names()))
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
        generated = self.source in ("digits", "seg-shapes", "det-shapes")
        if not generated and self.root is None and not (self.source == "torchvision" and self.download):
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
        bad = sorted({c for c in v if ord(c) < 32 or ord(c) == 127 or c == "\\"})
        if bad or v != v.strip() or len(v.encode()) > 200:
            raise ValueError(f"{v!r} must be a plain folder name: no control characters ({', '.join(map(repr, bad))}"
                             "), backslashes or surrounding spaces, at most 200 bytes; allowed: e.g. my-run")
        return v
