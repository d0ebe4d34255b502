import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.distill import METHODS, Distiller, build_terms
from edgedistill.losses import kd_loss
from edgedistill.recipe import DistillConfig


def test_kd_zero_when_student_equals_teacher():
    z = torch.randn(5, 7)
    assert kd_loss(z, z.clone(), T=4.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_known_value_two_classes():
    # teacher p=(0.8,0.2), student q=(0.5,0.5) at T=1: KL = 0.8 ln 1.6 + 0.2 ln 0.4
    t = torch.tensor([[math.log(0.8), math.log(0.2)]])
    s = torch.zeros(1, 2)
    expected = 0.8 * math.log(1.6) + 0.2 * math.log(0.4)
    assert kd_loss(s, t, T=1.0).item() == pytest.approx(expected, rel=1e-5)


def test_kd_scales_with_t_squared():
    s, t = torch.randn(4, 5), torch.randn(4, 5)
    T = 3.0
    kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean")
    assert kd_loss(s, t, T).item() == pytest.approx(T * T * kl.item(), rel=1e-5)


def net(out=3):
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, out))


def make_distiller(ce_weight=1.0):
    torch.manual_seed(0)
    student, teacher = net(), net()
    terms = build_terms(DistillConfig(terms=[{"name": "kd", "weight": 0.7, "T": 2.0}]), student, teacher)
    return Distiller(student, teacher, terms, ce_weight=ce_weight), student, teacher


def batch():
    return torch.randn(6, 3, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])


def test_losses_are_named_weighted_and_summed():
    d, student, teacher = make_distiller(ce_weight=0.3)
    x, y = batch()
    out = d((x, y))
    assert set(out) == {"loss", "ce", "kd"}
    with torch.no_grad():
        s, t = student(x), teacher(x)
    assert out["ce"].item() == pytest.approx(0.3 * F.cross_entropy(s, y).item(), rel=1e-5)
    assert out["kd"].item() == pytest.approx(0.7 * kd_loss(s, t, 2.0).item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(out["ce"].item() + out["kd"].item(), rel=1e-6)


def test_teacher_stays_in_eval_and_gets_no_gradient():
    d, student, teacher = make_distiller()
    d.train()
    assert student.training and not teacher.training
    bn = teacher[2]
    before = bn.running_mean.clone()
    d(batch())["loss"].backward()
    assert torch.equal(bn.running_mean, before)  # BatchNorm statistics do not drift
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())


def test_checkpoint_state_excludes_teacher_and_reloads():
    d, _, _ = make_distiller()
    sd = d.state_dict()
    assert sd and not any(k.startswith("teacher.") for k in sd)
    d2, _, _ = make_distiller()
    d2.load_state_dict(sd)


def test_supervised_mode_without_teacher():
    d = Distiller(net(), None, {}, ce_weight=1.0)
    assert set(d(batch())) == {"loss", "ce"}


def test_every_method_is_listed_with_family_and_paper():
    for e in METHODS:
        assert e.meta.get("family") and e.meta.get("paper")


def test_engine_hooks_reach_terms_and_their_log(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    from edgedistill.engine import fit
    from edgedistill.recipe import TrainConfig

    class Probe(METHODS.get("kd")):
        seen: list = []

        def on_epoch_start(self, epoch, epochs):
            self.seen.append((epoch, epochs))

        def epoch_log(self):
            return {"probe": float(len(self.seen))}

    torch.manual_seed(0)
    student, teacher = net(), net()
    probe = Probe(Probe.Params(), student, teacher)
    d = Distiller(student, teacher, {"probe": (1.0, probe)})
    x = torch.randn(32, 3, 2, 2)
    loader = DataLoader(TensorDataset(x, torch.randint(0, 3, (32,))), batch_size=8)
    res = fit(d, loader, TrainConfig(epochs=2), tmp_path)
    assert probe.seen == [(0, 2), (1, 2)]
    assert [h["probe.probe"] for h in res.history] == [1.0, 2.0]
