"""Schemes: teacher-free KD (Tf-KD_reg), deep mutual learning (online) and born-again generations."""

import json
import math

import pytest
import torch
from torch import nn

from edgedistill.distill import Distiller, build_terms
from edgedistill.distill.schemes.online import MutualLearning
from edgedistill.errors import UserError
from edgedistill.losses.kd import kd_loss
from edgedistill.losses.mutual import mutual_kl
from edgedistill.losses.teacher_free import tf_kd_reg_loss, virtual_teacher
from edgedistill.models import create_model
from edgedistill.recipe import DistillConfig, build_recipe

# --- Tf-KD_reg -------------------------------------------------------------------------------------------


def test_virtual_teacher_by_hand():
    # K=3, a=0.9: p_d = (0.9, 0.05, 0.05); T=1 → softmax(p_d) = e^0.9 / (e^0.9 + 2 e^0.05) on the label
    q = virtual_teacher(torch.tensor([2]), 3, a=0.9, T=1.0)
    top = math.exp(0.9) / (math.exp(0.9) + 2 * math.exp(0.05))
    assert q[0, 2].item() == pytest.approx(top, rel=1e-6)
    assert q[0, 0].item() == pytest.approx((1 - top) / 2, rel=1e-6)
    # T → 0: one-hot on the label; T → ∞: uniform
    assert virtual_teacher(torch.tensor([1]), 4, 0.9, 0.01)[0].tolist() == pytest.approx([0, 1, 0, 0], abs=1e-6)
    assert virtual_teacher(torch.tensor([1]), 4, 0.9, 1e4)[0].tolist() == pytest.approx([0.25] * 4, abs=1e-4)


def test_tf_kd_reg_known_value_and_zero_at_the_target():
    # K=2, a=0.75, T=1: q = softmax(0.75, 0.25); a uniform student gives KL(q || u) = Σ q ln(2q)
    y = torch.tensor([0])
    q0 = math.exp(0.5) / (math.exp(0.5) + 1)
    expected = q0 * math.log(2 * q0) + (1 - q0) * math.log(2 * (1 - q0))
    assert tf_kd_reg_loss(torch.zeros(1, 2), y, 0.75, 1.0).item() == pytest.approx(expected, rel=1e-5)
    labels = torch.tensor([0, 3, 1])
    z = virtual_teacher(labels, 5, 0.99, 20.0).log()  # a student predicting exactly the virtual teacher
    assert tf_kd_reg_loss(z, labels, 0.99, 20.0).item() == pytest.approx(0.0, abs=1e-6)


def net(out=3):
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, out))


def test_teacher_free_term_trains_without_a_teacher():
    student = net()
    terms = build_terms(DistillConfig(terms=[{"name": "tf_kd_reg", "weight": 1.0, "a": 0.9, "T": 2.0}]), student, None)
    d = Distiller(student, None, terms)
    x, y = torch.randn(4, 12), torch.tensor([0, 1, 2, 0])
    out = d((x, y))
    assert set(out) == {"loss", "ce", "tf_kd_reg"} and out["tf_kd_reg"] > 0
    out["loss"].backward()
    assert all(p.grad is not None for p in student.parameters())
    with pytest.raises(ValueError, match="need a teacher"):
        Distiller(net(), None, build_terms(DistillConfig(), net(), None))  # kd without a teacher


# --- deep mutual learning --------------------------------------------------------------------------------


def test_mutual_kl_is_zero_when_peers_agree_and_kd_between_two():
    z = torch.randn(5, 4)
    assert all(v.item() == pytest.approx(0.0, abs=1e-6) for v in mutual_kl([z, z.clone(), z.clone()], T=2.0))
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    la, lb = mutual_kl([a, b], T=1.0)
    assert la.item() == pytest.approx(kd_loss(a, b, 1.0).item(), rel=1e-6)
    assert lb.item() == pytest.approx(kd_loss(b, a, 1.0).item(), rel=1e-6)
    c = torch.randn(5, 4)
    l3 = mutual_kl([a, b, c], T=1.0)[0]
    assert l3.item() == pytest.approx((kd_loss(a, b, 1.0) + kd_loss(a, c, 1.0)).item() / 2, rel=1e-6)


def test_a_peers_kl_moves_only_that_peer():
    a, b = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    la, _ = mutual_kl([a, b])
    la.backward()
    assert a.grad is not None and a.grad.abs().sum() > 0 and b.grad is None


def test_mutual_learning_module_gradients():
    torch.manual_seed(0)
    p1, p2 = net(), net()
    m = MutualLearning([p1, p2], T=1.0, weight=1.0)
    x, y = torch.randn(6, 12), torch.tensor([0, 1, 2, 0, 1, 2])
    out = m((x, y))
    assert set(out) == {"loss", "ce.peer1", "dml.peer1", "ce.peer2", "dml.peer2"}
    assert out["loss"].item() == pytest.approx(sum(v.item() for k, v in out.items() if k != "loss"), rel=1e-6)
    out["dml.peer1"].backward(retain_graph=True)  # peer 1's KL: through peer 1's logits only
    assert all(p.grad is not None for p in p1.parameters()) and all(p.grad is None for p in p2.parameters())
    m.zero_grad(set_to_none=True)
    out["loss"].backward()
    assert all(p.grad is not None for p in [*p1.parameters(), *p2.parameters()])


def test_mutual_learning_with_teacher_terms_and_connectors():
    torch.manual_seed(0)
    peers = [create_model("cifar:resnet8", 4), create_model("cifar:resnet8", 4)]
    teacher = create_model("cifar:resnet14", 4)
    cfg = DistillConfig(terms=[{"name": "kd", "weight": 0.5}, {"name": "fitnet", "weight": 1.0}])
    example = torch.zeros(2, 3, 16, 16)
    m = MutualLearning(peers, teacher=teacher, peer_terms=[build_terms(cfg, p, teacher, example) for p in peers])
    m.train()
    assert not teacher.training
    out = m((torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])))
    assert {"kd.peer1", "fitnet.peer2", "dml.peer2"} <= set(out)
    out["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in m.terms.parameters())  # each peer's own connector learns
    sd = m.state_dict()
    assert not any(k.startswith("teacher.") for k in sd) and any(k.startswith("terms.1.fitnet") for k in sd)
    m.load_state_dict(sd)


# --- recipe ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("over, fragments", [
    (["distill.scheme=online", "online.peers=[cifar:resnet8]"], ["online.peers", "at least 2 peers"]),
    (["online.peers=[cifar:resnet8, timmm:resnet18]"], ["online.peers", "'timmm'"]),
    (["distill.scheme=mutual"], ["distill.scheme", "'online'", "'born_again'"]),
    (["distill.scheme=born_again", "distill.terms=[{name: tf_kd_reg}]"], ["distill.scheme=born_again", "kd"]),
    (["distill.scheme=online", "online.teacher=true", "distill.terms=[]"], ["online.teacher=true"]),
    (["born_again.generations=0"], ["born_again.generations", "greater than 0"]),
])
def test_scheme_recipe_errors(over, fragments):
    with pytest.raises(UserError) as e:
        build_recipe({}, over)
    for f in fragments:
        assert f in str(e.value)


# --- through the pipeline and the CLI (tiny) -------------------------------------------------------------

TINY = ["data.image_size=16", "data.max_train_samples=128", "data.max_val_samples=64", "train.epochs=1",
        "train.batch_size=32", "eval.latency_runs=2", "eval.warmup_runs=0", "data.workers=0",
        "teacher.model=cifar:resnet14", "teacher.epochs=1"]


@pytest.mark.slow
def test_online_through_the_cli(tmp_path, capsys):
    from test_cli import cli

    code, out, err = cli(capsys, "demo", *TINY, f"output.dir={tmp_path}", "distill.scheme=online",
                         "online.peers=[cifar:resnet8, cifar:resnet8, cifar:resnet8]")
    assert code == 0, out + err
    run_dir = tmp_path / "demo"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert list(metrics["models"]) == ["student_alone", "peer1", "peer2", "peer3"]  # no teacher needed
    assert metrics["primary"] == "peer1" and metrics["scheme"] == "online"
    assert set(metrics["comparison"]["gain_over_alone_by_model"]) == {"peer1", "peer2", "peer3"}
    assert not (run_dir / "teacher").exists()
    for k in (1, 2, 3):
        assert (run_dir / f"peer{k}" / "model.safetensors").exists()
        assert json.loads((run_dir / f"peer{k}" / "metrics.jsonl").read_text())["epoch"] == 1
    row = json.loads((run_dir / "online" / "metrics.jsonl").read_text())
    assert {"dml.peer1", "ce.peer3", "val_peer2_top1"} <= set(row)
    assert "peer3" in (run_dir / "report.md").read_text()
    # two peers starting from different weights disagree, so each learns from the other
    assert row["dml.peer1"] > 0
    from edgedistill.run.reader import resolve_checkpoint

    assert resolve_checkpoint(str(run_dir)) == run_dir / "peer1" / "model.safetensors"


@pytest.mark.slow
def test_born_again_generations_through_the_pipeline(tmp_path):
    from edgedistill.pipeline import run
    from edgedistill.recipe import load_recipe
    from edgedistill.recipes import recipe_path

    over = TINY + [f"output.dir={tmp_path}", "distill.scheme=born_again", "born_again.generations=2",
                   "eval.baseline=false"]
    run_dir = run(load_recipe(recipe_path("demo"), over))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # generation 1 is taught by the student trained alone (trained although eval.baseline=false)
    assert list(metrics["models"]) == ["student_alone", "gen1", "gen2"] and metrics["primary"] == "gen2"
    for stage in ("student_alone", "gen1", "gen2"):
        assert (run_dir / stage / "model.safetensors").exists()
    assert "kd" in json.loads((run_dir / "gen2" / "metrics.jsonl").read_text())
    assert metrics["comparison"]["gain_over_alone"] == pytest.approx(
        metrics["models"]["gen2"]["top1"] - metrics["models"]["student_alone"]["top1"])
    assert "born-again" in (run_dir / "report.md").read_text()


@pytest.mark.slow
def test_teacher_free_kd_needs_no_teacher(tmp_path):
    from edgedistill.pipeline import run
    from edgedistill.recipe import load_recipe
    from edgedistill.recipes import recipe_path

    over = TINY + [f"output.dir={tmp_path}", "distill.terms=[{name: tf_kd_reg, weight: 1.0}]",
                   "eval.baseline=false", "teacher.model=cifar:no_such_net"]  # never built: no teacher is used
    run_dir = run(load_recipe(recipe_path("demo"), over))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert list(metrics["models"]) == ["student"] and not (run_dir / "teacher").exists()
    assert metrics["comparison"]["retention"] is None
    assert "tf_kd_reg" in json.loads((run_dir / "student" / "metrics.jsonl").read_text())


def test_list_methods_shows_the_teacher_free_term(capsys):
    from test_cli import cli

    code, out, _ = cli(capsys, "list", "methods")
    assert code == 0 and "tf_kd_reg" in out and "teacher-free" in out and "Yuan" in out
