"""The `explain:` section: settings of `edgedistill explain` (approximation trees), read by it only, ignored by `run`."""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import Section

MAX_VALUES = 16_000_000  # pseudo-sample coordinates drawn at once: 128 MB as float64


class ExplainConfig(Section):
    """How the teacher is distilled into a shallow, statistically stable decision tree over PCA features."""

    depth: int = Field(3, ge=1, le=6, description="depth of the approximation tree (levels of splits)")
    samples: int = Field(20_000, ge=100, le=1_000_000, description="pseudo-sample budget of one node: past it "
                         "the node keeps its best split and records that it is not significant")
    batch: int = Field(500, ge=50, le=1_000_000, description="pseudo-samples of a node's first round; each further "
                       "round doubles them until the split is significant or the budget is spent")
    alpha: float = Field(0.05, gt=0, le=0.5, description="significance level of a split beating its rivals "
                         "(shared over a node's rounds)")
    repeats: int = Field(20, ge=2, le=1000, description="independent tree fits for the stability measure "
                         "(also fits of scikit-learn's CART)")
    components: int = Field(8, ge=2, le=64, description="principal components of the teacher's penultimate "
                            "embeddings: the tree's features")
    mixture: int = Field(10, ge=1, le=100, description="components of the diagonal Gaussian mixture the "
                         "pseudo-samples are drawn from")
    max_images: int = Field(5000, ge=50, le=1_000_000, description="train images embedded to fit the PCA and "
                            "the mixture (a seeded sample when fewer)")
    fresh: int = Field(20_000, ge=100, le=1_000_000, description="fresh pseudo-samples the tree's fidelity to "
                       "the teacher is measured on")
    seed: int = Field(0, description="seed of the PCA, the mixture and the first fit (fit r uses seed + r)")

    @model_validator(mode="after")
    def _batch_within_budget(self) -> ExplainConfig:
        if self.batch > self.samples:
            raise ValueError(f"explain.batch={self.batch} exceeds explain.samples={self.samples}; allowed: "
                             f"50 ≤ batch ≤ samples")
        return self

    @model_validator(mode="after")
    def _draws_fit_in_memory(self) -> ExplainConfig:
        for key, n in (("fresh", self.fresh), ("samples", self.samples)):
            if n * self.components > MAX_VALUES:  # float64 draws, plus the trees' copies of them
                raise ValueError(f"explain.{key}={n:,} × explain.components={self.components} = "
                                 f"{n * self.components:,} values; allowed: at most {MAX_VALUES:,} "
                                 f"(about {MAX_VALUES * 8 // 10**6} MB a copy)")
        return self
