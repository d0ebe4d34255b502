"""Online distillation: deep mutual learning (Zhang et al. CVPR 2018) between two or more peers.

Structured like torchdistill's and mdistiller's distillers (one nn.Module owning every trained network, a
forward that returns named losses), so the one engine trains all peers in a single stage and one checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ...losses.mutual import mutual_kl
from ...models import create_model
from ..base import FrozenTeacherState, Term, run_with_taps, freeze
from ..terms import build_terms
from .base import SCHEMES, Scheme, SchemeJob, SchemeResult

if TYPE_CHECKING:
    from ...recipe import Recipe


class MutualLearning(FrozenTeacherState):
    """Peers trained together: CE on labels + weight · mean KL to the other peers' detached predictions,
    plus (optionally) the recipe's terms from a frozen teacher into every peer."""

    def __init__(self, peers: list[nn.Module], T: float = 1.0, weight: float = 1.0, ce_weight: float = 1.0,
                 label_smoothing: float = 0.0, teacher: nn.Module | None = None,
                 peer_terms: list[dict[str, tuple[float, Term]]] | None = None):
        super().__init__()
        if len(peers) < 2:
            raise ValueError("mutual learning needs at least two peers")
        self.peers = nn.ModuleList(peers)
        self.teacher = teacher
        freeze(teacher)
        peer_terms = peer_terms or [{} for _ in peers]
        self.weights = [{n: w for n, (w, _) in terms.items()} for terms in peer_terms]
        self.terms = nn.ModuleList(nn.ModuleDict({n: t for n, (_, t) in terms.items()}) for terms in peer_terms)
        if teacher is None and any(t.needs_teacher for d in self.terms for t in d.values()):
            raise ValueError("teacher terms in mutual learning need a teacher")
        self.T, self.weight, self.ce_weight, self.label_smoothing = T, weight, ce_weight, label_smoothing
        self._s_taps = [sorted({f for t in d.values() for f in t.student_features()}) for d in self.terms]
        self._t_taps = sorted({f for d in self.terms for t in d.values() for f in t.teacher_features()})

    def train(self, mode: bool = True) -> MutualLearning:
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, labels = batch[0], batch[1]
        outs = [run_with_taps(p, images, taps) for p, taps in zip(self.peers, self._s_taps)]
        t_out = None
        if self.teacher is not None and any(len(d) for d in self.terms):
            with torch.no_grad():
                t_out = run_with_taps(self.teacher, images, self._t_taps)
        losses: dict[str, torch.Tensor] = {}
        kls = mutual_kl([o.logits.float() for o in outs], self.T)
        for i, (out, kl) in enumerate(zip(outs, kls)):
            tag = f"peer{i + 1}"
            if self.ce_weight > 0:
                ce = F.cross_entropy(out.logits.float(), labels, label_smoothing=self.label_smoothing)
                losses[f"ce.{tag}"] = self.ce_weight * ce
            losses[f"dml.{tag}"] = self.weight * kl
            for name, term in self.terms[i].items():
                losses[f"{name}.{tag}"] = self.weights[i][name] * term(out, t_out, batch)
        return {"loss": sum(losses.values()), **losses}

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        for d in self.terms:
            for term in d.values():
                term.on_epoch_start(epoch, epochs)

    def epoch_log(self) -> dict[str, float]:
        return {f"{n}.{k}.peer{i + 1}": v for i, d in enumerate(self.terms) for n, t in d.items()
                for k, v in t.epoch_log().items()}


class Online(Scheme):
    """online.peers trained together by DML; each peer is saved, evaluated and reported as peer1, peer2, …"""

    stage = "online"

    def __init__(self) -> None:
        self._peers: list[nn.Module] | None = None

    def needs_teacher(self, recipe: Recipe) -> bool:
        return recipe.online.teacher

    def prepare(self, recipe: Recipe, num_classes: int) -> None:
        # Built now, in order, so every peer has its own initial weights fixed by train.seed.
        self._peers = [create_model(spec, num_classes, key=f"online.peers.{i}")
                       for i, spec in enumerate(recipe.online.peers)]

    def run(self, job: SchemeJob) -> SchemeResult:
        r, oc = job.recipe, job.recipe.online
        peers = self._peers or [create_model(s, job.num_classes, key="online.peers") for s in oc.peers]
        self._peers = None
        if oc.peers[0] == r.student.model:
            peers[0] = job.new_student()  # peer1 starts where the student alone starts: a like-for-like comparison
        teacher = job.teacher if oc.teacher else None
        peer_terms = [build_terms(r.distill, p, teacher, job.example) for p in peers] if oc.teacher else None
        if not oc.teacher and r.distill.terms:
            job.console.print("[dim]online: distill.terms are not used (online.teacher=false)[/]")
        module = MutualLearning(peers, T=oc.T, weight=oc.weight, ce_weight=r.distill.ce_weight,
                                label_smoothing=r.train.label_smoothing, teacher=teacher, peer_terms=peer_terms)
        named = {f"peer{i + 1}": (spec, p) for i, (spec, p) in enumerate(zip(oc.peers, peers))}
        trained = job.train("online", module, named)
        return SchemeResult({n: (named[n][0], trained[n]) for n in named}, "peer1")


SCHEMES.register("online", description="deep mutual learning between online.peers")(Online())
