"""The `search:` section: the student space, objectives, flash budget, sampler and storage of `edgedistill search`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from .base import Section, check_model_spec

# Objectives a search can optimise: flash top-1 is maximised, every cost figure is minimised.
OBJECTIVES = ("top1", "latency_ms", "size_mb", "params", "flops")


class SpaceConfig(Section):
    """Candidates: named models, and/or points of parametric families, at each input resolution."""

    models: list[str] = Field(default_factory=list, description="model specs searched as they are, e.g. "
                              "[cifar:resnet8, timm:mobilenetv3_small_050]")
    families: dict[str, dict[str, list[Any]]] = Field(
        default_factory=dict, description="family → knob → choices, e.g. {cifar_resnet: {blocks: [1-1-1, 2-2-2], "
        "widths: [16-16-32-64]}}; a knob left out keeps the family's default (README: search grammar)")
    image_size: list[int] = Field(default_factory=list, description="input resolutions searched (data.image_size); "
                                  "empty: the recipe's data.image_size")

    @field_validator("models")
    @classmethod
    def _specs(cls, v: list[str]) -> list[str]:
        for spec in v:
            check_model_spec(spec)
        return v

    @field_validator("image_size")
    @classmethod
    def _sizes(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if not 0 < s <= 2048]
        if bad:
            raise ValueError(f"image sizes must be in 1..2048, got {bad}")
        return v

    @field_validator("families")
    @classmethod
    def _choices(cls, v: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
        for fam, knobs in v.items():
            if not isinstance(knobs, dict):
                raise ValueError(f"family {fam!r}: knobs must be a mapping knob → [choices], got {knobs!r}")  # noqa: TRY004
            for knob, choices in knobs.items():
                if not isinstance(choices, list) or not choices:
                    raise ValueError(f"family {fam!r}, knob {knob!r}: needs a non-empty list of choices, got "
                                     f"{choices!r}")
        return v


class SearchConfig(Section):
    """Read by `edgedistill search` only; `edgedistill run` ignores it."""

    space: SpaceConfig = Field(default_factory=SpaceConfig, description="the candidates searched")
    objectives: list[Literal["top1", "latency_ms", "size_mb", "params", "flops"]] = Field(
        default_factory=lambda: ["top1", "latency_ms"], min_length=1, description="what the study optimises: top1 (flash, "
        "maximised) and cost figures (minimised); latency_ms is ORT's at deploy.threads/batch_size, int8 when "
        "compress.stages quantizes")
    flash: float = Field(0.05, gt=0, le=1, description="flash distillation budget: this share of train.epochs × "
                         "the train split, per candidate")
    min_steps: int = Field(30, gt=0, description="at least this many training steps per flash trial")
    sampler: Literal["tpe", "gp", "nsga2", "random", "botorch"] = Field(
        "tpe", description="Optuna sampler: tpe, gp (Gaussian process), nsga2, random, botorch (needs "
        "optuna-integration and botorch)")
    storage: str | None = Field(None, description="Optuna storage: a journal file path or postgresql://… shared "
                                "by several machines (default: study.journal in the search folder)")
    trials: int = Field(20, gt=0, description="trials that train a candidate (infeasible ones, measured only, "
                        "and repeats of a trained one do not count; at most 10 × this many trials in all)")
    timeout: float | None = Field(None, gt=0, description="stop starting trials after this many seconds")
    workers: int = Field(1, ge=1, description="trial processes on this machine, sharing the storage")
    top_k: int = Field(3, ge=0, description="proxy trust: Pareto candidates re-distilled with the full budget")
    random_k: int = Field(2, ge=0, description="proxy trust: random other feasible candidates re-distilled in full")
    latency_runs: int = Field(30, gt=0, description="timed ONNX Runtime runs per cost figure (after 5 warm-up runs)")
    seed: int = Field(0, description="seed of the sampler and of the proxy-trust sample")
