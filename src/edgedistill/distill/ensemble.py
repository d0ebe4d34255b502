"""Several frozen teachers as one: combination rules on probabilities, and terms that learn from one member.

The combined teacher returns log-probabilities as its logits (softmax(log p) = p), so every logit term,
fidelity metric and report treats it like any single teacher.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .base import Outputs, Term

RULES = ("mean", "geometric", "confidence", "class_weights", "per_term")
_EPS = 1e-12


def geometric_log(log_probs: torch.Tensor, member_weights: torch.Tensor) -> torch.Tensor:
    """K×N×C log-probabilities → N×C: the weighted mean of the members' logits, renormalized (rule geometric)."""
    w = member_weights.to(log_probs).view(-1, 1, 1)
    return ((w * log_probs).sum(0) / w.sum()).log_softmax(-1)


def combine_probs(probs: Sequence[torch.Tensor], rule: str, member_weights: torch.Tensor,
                  class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """K tensors N×C of probabilities → N×C.

    mean (and per_term, for evaluation): Σ_k w_k p_k / Σ_k w_k, w = member weights;
    geometric: exp(Σ_k w_k log p_k / Σ_k w_k), renormalized (Ensemble.combine computes it in log space);
    confidence: per image, w_k = max_c p_k (a teacher sure of its answer counts more), then as mean;
    class_weights: per class, p(c) ∝ Σ_k W[k,c] p_k(c) / Σ_k W[k,c], renormalized over classes.
    """
    p = torch.stack(list(probs))  # K×N×C
    w = member_weights.to(p).view(-1, 1, 1)
    if rule in ("mean", "per_term"):
        return (w * p).sum(0) / w.sum()
    if rule == "geometric":
        return geometric_log(p.clamp_min(_EPS).log(), member_weights).exp()
    if rule == "confidence":
        conf = w * p.amax(-1, keepdim=True)  # K×N×1
        return (conf * p).sum(0) / conf.sum(0).clamp_min(_EPS)
    if rule == "class_weights":
        if class_weights is None:
            raise ValueError("the class_weights rule needs fitted class weights")
        cw = class_weights.to(p).unsqueeze(1)  # K×1×C
        q = (cw * p).sum(0) / cw.sum(0).clamp_min(_EPS)
        return q / q.sum(-1, keepdim=True).clamp_min(_EPS)
    raise ValueError(f"unknown ensemble rule {rule!r} (allowed: {', '.join(RULES)})")


def fit_class_weights(member_logits: Sequence[torch.Tensor], labels: torch.Tensor, num_classes: int,
                      prior: float = 1.0) -> torch.Tensor:
    """K×C weights: each teacher's recall on each class (Laplace-smoothed by `prior`), from labelled images.

    Called by the pipeline on train-split images only, so nothing is fitted on the split accuracy is reported on.
    """
    out = []
    for logits in member_logits:
        hit = (logits.argmax(1) == labels).float()
        correct = torch.zeros(num_classes).index_add_(0, labels, hit)
        seen = torch.zeros(num_classes).index_add_(0, labels, torch.ones_like(hit))
        out.append((correct + prior) / (seen + 2 * prior))
    return torch.stack(out)


class Ensemble(nn.Module):
    """Frozen members and a rule; forward returns the combined log-probabilities, `members.i` taps member i."""

    def __init__(self, members: Sequence[nn.Module], rule: str = "mean", weights: Sequence[float] | None = None):
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"unknown ensemble rule {rule!r} (allowed: {', '.join(RULES)})")
        self.members = nn.ModuleList(members)
        self.rule = rule
        self.register_buffer("member_weights", torch.tensor(list(weights or [1.0] * len(members)), dtype=torch.float))
        self.register_buffer("class_weights", torch.empty(0))

    def combine(self, member_logits: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.rule == "geometric":  # the weighted mean of the members' logits: softening by a KD temperature
            return geometric_log(torch.stack([lg.float().log_softmax(-1) for lg in member_logits]),
                                 self.member_weights)  # commutes with combining
        probs = [lg.float().softmax(-1) for lg in member_logits]
        cw = self.class_weights if self.class_weights.numel() else None
        return combine_probs(probs, self.rule, self.member_weights, cw).clamp_min(_EPS).log()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine([m(x) for m in self.members])


class MemberTerm(Term):
    """A term that learns from member `index` of an Ensemble (rule per_term): its logits and its own taps."""

    def __init__(self, inner: Term, index: int):
        super().__init__(inner.params, None, None)
        self.inner, self.index = inner, index
        self.needs_teacher = inner.needs_teacher  # type: ignore[misc]
        self.prefix = f"members.{index}"

    def student_features(self) -> list[str]:
        return self.inner.student_features()

    def teacher_features(self) -> list[str]:
        return [self.prefix] + [f"{self.prefix}.{f}" for f in self.inner.teacher_features()]

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self.inner.on_epoch_start(epoch, epochs)

    def epoch_log(self) -> dict[str, float]:
        return self.inner.epoch_log()

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        feats = {f: teacher.features[f"{self.prefix}.{f}"] for f in self.inner.teacher_features()}
        return self.inner(student, Outputs(teacher.features[self.prefix], feats), batch)


class EnsembleCache:
    """Teacher outputs of an Ensemble from one teacher-output cache per member, combined on the fly."""

    def __init__(self, ensemble: Ensemble, caches: Sequence[Callable[[Any], tuple[torch.Tensor, dict]]]):
        self.ensemble, self.caches = ensemble, list(caches)

    def __call__(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, feats = [], {}
        for i, cache in enumerate(self.caches):
            lg, fs = cache(batch)
            logits.append(lg)
            feats[f"members.{i}"] = lg
            feats.update({f"members.{i}.{k}": v for k, v in fs.items()})
        return self.ensemble.combine(logits), feats


def member_taps(taps: Sequence[str], index: int) -> list[str]:
    """The Distiller's teacher taps that belong to member `index`, as names inside that member."""
    prefix = f"members.{index}."
    return [t[len(prefix):] for t in taps if t.startswith(prefix)]
