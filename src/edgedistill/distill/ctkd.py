"""CTKD as a registered method: a learnable temperature trained adversarially on a difficulty curriculum."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from ..losses.ctkd import cosine_curriculum, grad_reverse, kl_per_sample
from ..losses.dkd import tckd_nckd
from ..losses.standardize import zscore
from .base import Outputs, Term
from .registry import METHODS


class CTKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: Literal["kd", "dkd"] = Field("kd", description="loss whose temperature is learned")
    mode: Literal["global", "instance"] = Field("global", description="one T, or one per sample (MLP)")
    t_min: float = Field(1.0, gt=0, description="lower bound of the temperature")
    t_max: float = Field(21.0, gt=0, description="upper bound of the temperature (paper: 1 + 20)")
    T_init: float = Field(4.0, gt=0, description="initial temperature, strictly inside (t_min, t_max)")
    lambda_min: float = Field(0.0, ge=0, description="gradient-reversal strength at the first epoch")
    lambda_max: float = Field(1.0, ge=0, description="gradient-reversal strength after the curriculum")
    curriculum_epochs: int = Field(10, ge=0, description="epochs of the cosine ramp of the reversal strength")
    prior: float = Field(1.0, ge=0, description="pull of raw T back to T_init; 0: unregularized ascent")
    hidden: int = Field(32, gt=0, description="hidden width of the instance-mode temperature MLP")
    alpha: float = Field(1.0, ge=0, description="dkd base: weight of TCKD")
    beta: float = Field(8.0, ge=0, description="dkd base: weight of NCKD")
    warmup: int = Field(0, ge=0, description="epochs of linear ramp of the loss from 0 to 1")
    standardize: bool = Field(False, description="z-score logits per sample first (Sun et al. CVPR 2024)")

    @model_validator(mode="after")
    def _check(self) -> CTKDParams:
        if not self.t_min < self.T_init < self.t_max:
            raise ValueError(f"need t_min < T_init < t_max, got {self.t_min}, {self.T_init}, {self.t_max}")
        return self


def _num_classes(model: nn.Module) -> int:
    fc = next((m for m in reversed(list(model.modules())) if isinstance(m, nn.Linear)), None)
    if fc is None:
        raise ValueError("ctkd mode=instance needs a student whose last nn.Linear is its classifier")
    return fc.out_features


@METHODS.register("ctkd", family="response",
                  paper="Li et al. AAAI 2023, Curriculum Temperature for Knowledge Distillation")
class CTKD(Term):
    """KD or DKD at a temperature T ∈ [t_min, t_max] that ascends the loss through a gradient-reversal layer.

    Hand-made guards against the original's runaway (worst with DKD): T = t_min + (t_max − t_min)·sigmoid(raw)
    is bounded; the T² factor uses T detached (T²·KL mostly grows with T, so ascent on it heads for t_max);
    the adversary ascends log(loss), so DKD's β = 8 and T² do not scale its steps; and a quadratic pull of raw
    toward its initial value (`prior`) balances that O(1) push (with prior = 0, ascent on KL alone drove T
    to t_min in the synthetic test), so T settles inside the bounds.
    """

    Params = CTKDParams
    uses_labels = True

    def __init__(self, params: CTKDParams, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        p = params
        u = (p.T_init - p.t_min) / (p.t_max - p.t_min)
        raw0 = math.log(u / (1 - u))
        self.raw0 = raw0
        if p.mode == "global":
            self.raw = nn.Parameter(torch.tensor(raw0))
        else:
            c = _num_classes(student)
            self.mlp = nn.Sequential(nn.Linear(2 * c, p.hidden), nn.Tanh(), nn.Linear(p.hidden, 1))
            nn.init.zeros_(self.mlp[2].weight)  # every sample starts at T_init
            nn.init.constant_(self.mlp[2].bias, raw0)
        self.lam = p.lambda_min
        self.ramp = 1.0
        self._t_sum: torch.Tensor | None = None
        self._t_n = 0

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        p = self.params
        self.lam = cosine_curriculum(epoch, p.curriculum_epochs, p.lambda_min, p.lambda_max)
        self.ramp = min((epoch + 1) / p.warmup, 1.0) if p.warmup else 1.0
        self._t_sum, self._t_n = None, 0

    def raw_temperature(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Unbounded per-sample temperatures, shape (B, 1).

        MLP inputs are detached (it must not steer the student) and z-scored, with a tanh layer: raw logits of
        size ~40 made the quadratic pull's curvature so large that SGD at lr 0.05 diverged to −inf.
        """
        if self.params.mode == "global":
            return self.raw.expand(s.shape[0], 1)
        return self.mlp(torch.cat([zscore(s.detach()), zscore(t.detach())], 1))

    def epoch_log(self) -> dict[str, float]:
        if self._t_sum is None:
            return {"lambda": self.lam}
        return {"T": float(self._t_sum) / max(self._t_n, 1), "lambda": self.lam}

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        p = self.params
        s, t = student.logits.float(), teacher.logits.float()
        if p.standardize:
            s, t = zscore(s), zscore(t)
        raw = self.raw_temperature(s, t)
        T = p.t_min + (p.t_max - p.t_min) * torch.sigmoid(raw)
        tm = T.detach().mean()
        self._t_sum = tm if self._t_sum is None else self._t_sum + tm
        self._t_n += 1
        t2 = T.detach().squeeze(1) ** 2
        loss = self.ramp * (self._per_sample(s, t, T.detach(), batch[1]) * t2).mean()
        # the adversary: sees the student's logits detached, ascends log(loss) through the reversal layer
        hard = (self._per_sample(s.detach(), t, grad_reverse(T, self.lam), batch[1]) * t2).mean()
        adv = torch.log(hard + 1e-8) + 0.5 * p.prior * (raw - self.raw0).pow(2).mean()
        return loss + (adv - adv.detach())  # adds gradients to the temperature only, not to the value

    def _per_sample(self, s: torch.Tensor, t: torch.Tensor, T: torch.Tensor,
                    target: torch.Tensor) -> torch.Tensor:
        p = self.params
        if p.base == "kd":
            return kl_per_sample(s, t, T)
        tckd, nckd = tckd_nckd(s, t, target, T)
        return p.alpha * tckd + p.beta * nckd
