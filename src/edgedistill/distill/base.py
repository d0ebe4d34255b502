"""The Distiller: teacher + student + weighted loss terms → a dict of named losses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from ..models import FeatureTaps
from ..models.features import probe_features, resolve_layer, to_spatial


@dataclass
class Outputs:
    """What a term sees of one model: its logits and the features it asked to tap."""

    logits: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Term(nn.Module):
    """One distillation loss; subclasses set Params (a pydantic schema); family and paper go to METHODS.register.

    Trainable extras (connectors, learnable temperatures) are created in __init__ as submodules, so they
    belong to the Distiller, are optimized with the student, and are never part of the exported student.
    """

    Params: ClassVar[type[BaseModel]] = NoParams
    needs_teacher: ClassVar[bool] = True  # False: the term makes its own targets (e.g. Tf-KD_reg)
    uses_labels: ClassVar[bool] = False  # True: reads batch labels, so it cannot learn from unlabeled images

    def __init__(self, params: BaseModel, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        """`example` is one input batch (e.g. 2×3×H×W) for terms that size connectors from feature shapes."""
        super().__init__()
        self.params = params

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Called by the engine before each epoch (0-based), for warm-ups and curricula."""

    def epoch_log(self) -> dict[str, float]:
        """Values to record once per epoch in metrics.jsonl (e.g. a learned temperature)."""
        return {}

    def student_features(self) -> list[str]:
        return []

    def teacher_features(self) -> list[str]:
        return []

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError



class LayerPairTerm(Term):
    """A term on one student map and one teacher map, named by `student_layer`/`teacher_layer` params.

    Shared by the feature and relation methods so that layer resolution and tapping live in one place.
    """

    def __init__(self, params: BaseModel, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        if teacher is None:
            raise ValueError(f"{type(self).__name__} needs a teacher")
        self.s_layer = resolve_layer(student, params.student_layer, example)
        self.t_layer = resolve_layer(teacher, params.teacher_layer, example)

    def student_features(self) -> list[str]:
        return [self.s_layer]

    def teacher_features(self) -> list[str]:
        return [self.t_layer]

    def probe(self, student: nn.Module, teacher: nn.Module, example: torch.Tensor | None, what: str
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair's features on `example`, so a method can size the trainable parts (`what`) it adds."""
        if example is None:
            raise ValueError(f"{type(self).__name__} needs an example batch to size its {what}")
        s = probe_features(student, [self.s_layer], example, key="distill.terms.student_layer")[self.s_layer]
        t = probe_features(teacher, [self.t_layer], example, key="distill.terms.teacher_layer")[self.t_layer]
        return s, t

    def maps(self, student: Outputs, teacher: Outputs) -> tuple[torch.Tensor, torch.Tensor]:
        """The tapped student and teacher features as N×C×H×W maps (ViT tokens become a grid)."""
        return to_spatial(student.features[self.s_layer]), to_spatial(teacher.features[self.t_layer])

def run_with_taps(model: nn.Module, images: torch.Tensor, taps: list[str]) -> Outputs:
    if not taps:
        return Outputs(model(images))
    with FeatureTaps(model, taps) as t:
        logits = model(images)
    return Outputs(logits, dict(t.features))


class FrozenTeacherState(nn.Module):
    """The teacher is frozen and has its own weights file: keep it out of training checkpoints."""

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        sd = super().state_dict(*args, **kwargs)
        return type(sd)((k, v) for k, v in sd.items() if not k.startswith("teacher."))

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if not k.startswith("teacher.")]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"checkpoint mismatch: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}")
        return result


def freeze(teacher: nn.Module | None) -> None:
    if teacher is not None:
        teacher.requires_grad_(False)
        teacher.eval()


class Distiller(FrozenTeacherState):
    """Trains `student`; a frozen `teacher` (eval mode, no grad) supplies targets for the terms.

    With no teacher and no terms it is plain supervised training, so teacher training and the
    student-alone baseline go through the same module and the same engine.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module | None = None,
        terms: Mapping[str, tuple[float, Term]] | None = None,
        ce_weight: float = 1.0,
        label_smoothing: float = 0.0,
        teacher_outputs: Callable[[Any], tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None,
    ):
        """`teacher_outputs(batch) -> (logits, features)` replaces running the teacher (a teacher-output cache)."""
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.weights = {name: w for name, (w, _) in (terms or {}).items()}
        self.terms = nn.ModuleDict({name: t for name, (_, t) in (terms or {}).items()})
        needy = [n for n, t in self.terms.items() if t.needs_teacher]
        if needy and teacher is None:
            raise ValueError(f"distillation terms {needy} need a teacher")
        self.ce_weight = ce_weight
        self.label_smoothing = label_smoothing
        self.teacher_outputs = teacher_outputs
        freeze(teacher)
        self._student_taps = sorted({f for t in self.terms.values() for f in t.student_features()})
        self.teacher_taps = sorted({f for t in self.terms.values() for f in t.teacher_features()})

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # frozen BatchNorm statistics: the teacher never drifts during distillation
        return self

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, labels = batch[0], batch[1]
        # The teacher first: run after the student, whose activations are kept for backward, the same teacher
        # forward measured 7% slower per step on CPU (cache pressure); no term depends on the order.
        t_out = None
        if self.terms:
            if self.teacher_outputs is not None:
                t_out = Outputs(*self.teacher_outputs(batch))
            elif self.teacher is not None and any(t.needs_teacher for t in self.terms.values()):
                with torch.no_grad():
                    t_out = run_with_taps(self.teacher, images, self.teacher_taps)
        s_out = run_with_taps(self.student, images, self._student_taps)
        losses: dict[str, torch.Tensor] = {}
        if self.ce_weight > 0:
            losses["ce"] = self.ce_weight * self._ce(s_out.logits.float(), labels)
        if self.terms:
            for name, term in self.terms.items():
                losses[name] = self.weights[name] * term(s_out, t_out, batch)
        total = sum(losses.values()) if losses else s_out.logits.sum() * 0
        return {"loss": total, **losses}

    def _ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over the labelled rows; unlabeled rows (label -100, torch's ignore_index) add nothing."""
        known = labels != -100
        if bool(known.all()):
            return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        if not bool(known.any()):
            return logits.sum() * 0
        return F.cross_entropy(logits[known], labels[known], label_smoothing=self.label_smoothing)

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        for term in self.terms.values():
            term.on_epoch_start(epoch, epochs)

    def epoch_log(self) -> dict[str, float]:
        return {f"{name}.{k}": v for name, term in self.terms.items() for k, v in term.epoch_log().items()}

    @torch.no_grad()
    def diagnose_nonfinite(self, batch: tuple[torch.Tensor, torch.Tensor]) -> str:
        """Which tensor or loss term went non-finite, for the engine's stop message (it knows no methods)."""
        for who, model in (("student", self.student), ("teacher", self.teacher)):
            bad = [n for n, p in (model.state_dict() if model is not None else {}).items()
                   if p.is_floating_point() and not torch.isfinite(p).all()]
            if bad:
                why = "the training diverged: try a lower train.lr or train.grad_clip" if who == "student" \
                    else "check the teacher's weights file"
                return f"{who} weight {bad[0]} holds NaN/inf ({len(bad)} tensor(s) in all); {why}"
        if not torch.isfinite(batch[0]).all():
            return "the input images hold NaN/inf; check the data and data.mean/data.std"
        s_out = run_with_taps(self.student, batch[0], self._student_taps)
        t_out = Outputs(*self.teacher_outputs(batch)) if self.teacher_outputs is not None else \
            run_with_taps(self.teacher, batch[0], self.teacher_taps) if self.teacher is not None else None
        for who, out in (("student", s_out), ("teacher", t_out)):
            if out is not None and not torch.isfinite(out.logits).all():
                return f"the {who}'s outputs (logits) hold NaN/inf with finite weights and inputs"
        for i, (name, term) in enumerate(self.terms.items()):
            value = self.weights[name] * term(s_out, t_out, batch)
            if not torch.isfinite(value).all():
                shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in term.params.model_dump().items())
                return (f"loss term distill.terms.{i} ({name}{': ' + shown if shown else ''}) is NaN/inf on finite "
                        "outputs: its settings overflow (e.g. a huge temperature T); allowed: smaller values")
        return "the total loss overflowed; try a lower train.lr or train.grad_clip"
