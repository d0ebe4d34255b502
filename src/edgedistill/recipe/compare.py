"""The `compare:` section: arms, repeats and the test settings of `edgedistill compare`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from .base import Section, choices_msg

# Metrics a comparison can test, and whether higher is better (the verdict's direction depends on it).
METRICS: dict[str, bool] = {
    "top1": True, "top5": True, "f1_macro": True, "f1_weighted": True, "precision_macro": True,
    "recall_macro": True, "kappa": True, "qwk": True, "mcc": True, "roc_auc": True, "agreement": True,
    "log_loss": False, "ece": False, "kl": False, "js": False, "kd_loss": False,
    "miou": True, "pixel_acc": True, "boundary_f1": True, "teacher_agreement": True,  # task=segmentation
    "map": True, "map50": True, "map75": True, "map_small": True, "map_medium": True, "map_large": True,
    "mar100": True,  # task=detection
}


class CompareConfig(Section):
    """Arms × seeds × splits, each cell an ordinary run; read by `edgedistill compare` only, ignored by `run`."""

    arms: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="arm name → recipe overrides (dotted keys), e.g. "
        "{kd: {}, alone: {distill.terms: []}}; {} is the recipe as it is")
    seeds: int = Field(3, ge=1, description="runs per arm with train.seed, train.seed+1, …; one teacher per seed")
    splits: int = Field(1, ge=1, description="repeated random train/validation splits (data.split_seed, +1, …)")
    baseline: str | None = Field(None, description="arm every other arm is tested against (default: the first)")
    metric: str = Field("top1", description="metric of the student compared, from metrics.json: "
                        + ", ".join(METRICS))
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the verdicts")
    correction: Literal["holm", "bh"] = Field("holm", description="multiple-comparison correction over every "
                                              "comparison of the table: holm (family-wise) or bh (false discovery)")
    workers: int = Field(1, ge=1, description="run processes on this machine, sharing the study storage")
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict, description="sensitivity: dotted key → values, e.g. {distill.terms.0.T: [1, 2, 4, 8]}; "
        "every grid point becomes an arm tested against the baseline, and the metric surface is drawn")
    sweep_samples: int | None = Field(None, gt=0, description="run a seeded random sample of this many grid points "
                                      "instead of the whole grid")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(choices_msg(v, list(METRICS), what="metric"))
        return v

    @field_validator("arms")
    @classmethod
    def _plain_names(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, over in v.items():
            if not name or "/" in name or name.startswith("."):
                raise ValueError(f"arm name {name!r} must be a plain folder name")
            if not isinstance(over, dict):
                raise ValueError(f"arm {name!r}: overrides must be a mapping of dotted keys, got {over!r}")  # noqa: TRY004 (pydantic wants ValueError)
        return v

    @field_validator("sweep")
    @classmethod
    def _sweep_values(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if "." not in key or not values:
                raise ValueError(f"sweep key {key!r} needs a dotted recipe key and at least one value, got {values!r}")
        return v
