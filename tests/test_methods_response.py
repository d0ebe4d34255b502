"""Response-based methods beyond KD: DKD, DIST, logit standardization, JS, Sinkhorn, MMD and CTKD."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import demo_run, moved_by_the_terms
from scipy.stats import spearmanr
from torch import nn

from edgedistill.distill import Distiller, build_terms
from edgedistill.losses.correlation import dist_loss, pearson, soft_rank, spearman
from edgedistill.losses.ctkd import cosine_curriculum, grad_reverse, kl_per_sample
from edgedistill.losses.distribution import cosine_cost, js_divergence, mmd, mmd_loss, sinkhorn_divergence
from edgedistill.losses.dkd import dkd_loss, tckd_nckd
from edgedistill.losses.kd import kd_loss
from edgedistill.losses.standardize import zscore
from edgedistill.recipe import DistillConfig


def logits(*shape, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale


# --- logit standardization -------------------------------------------------------------------------------

def test_zscore_is_per_sample_and_affine_invariant():
    z = logits(4, 7)
    out = zscore(z)
    assert torch.allclose(out.mean(1), torch.zeros(4), atol=1e-6)
    assert torch.allclose(out.std(1), torch.ones(4), atol=1e-5)
    scale, shift = torch.tensor([[0.5], [2.0], [3.0], [10.0]]), torch.randn(4, 1)
    assert torch.allclose(zscore(z * scale + shift), out, atol=1e-5)


def test_kd_with_standardize_ignores_teacher_logit_scale():
    from edgedistill.distill import METHODS

    s, t = logits(5, 6, seed=1), logits(5, 6, seed=2)
    kd = METHODS.get("kd")(METHODS.get("kd").Params(T=2.0, standardize=True), None, None)
    from edgedistill.distill import Outputs

    a = kd(Outputs(s), Outputs(t), None)
    b = kd(Outputs(s), Outputs(t * 5 + 1), None)
    assert a.item() == pytest.approx(b.item(), rel=1e-4)
    assert a.item() == pytest.approx(kd_loss(zscore(s), zscore(t), 2.0).item(), rel=1e-6)


# --- DKD --------------------------------------------------------------------------------------------------

def test_dkd_zero_when_student_equals_teacher():
    z, y = logits(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    assert dkd_loss(z, z.clone(), y, 1.0, 8.0, 4.0).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_dkd_decomposes_kd(T):
    # Zhao et al. eq. (3): KL = TCKD + (1 − p_t^T)·NCKD, per sample, with p_t the teacher's target probability
    s, t, y = logits(8, 6, seed=3), logits(8, 6, seed=4), torch.randint(0, 6, (8,))
    tckd, nckd = tckd_nckd(s, t, y, T)
    pt = F.softmax(t / T, 1).gather(1, y[:, None]).squeeze(1)
    assert torch.allclose(kl_per_sample(s, t, T), tckd + (1 - pt) * nckd, atol=1e-5)
    assert (kl_per_sample(s, t, T).mean() * T * T).item() == pytest.approx(kd_loss(s, t, T).item(), rel=1e-5)


def test_dkd_matches_hand_value_and_weights():
    # 3 classes, target 0: teacher (0.5, 0.25, 0.25), student (1/3, 1/3, 1/3) at T = 1
    t = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    s, y = torch.zeros(1, 3), torch.tensor([0])
    tckd = 0.5 * math.log(0.5 / (1 / 3)) + 0.5 * math.log(0.5 / (2 / 3))
    tc, nc = tckd_nckd(s, t, y, 1.0)
    assert tc.item() == pytest.approx(tckd, rel=1e-5) and nc.item() == pytest.approx(0.0, abs=1e-6)
    assert dkd_loss(s, t, y, alpha=2.0, beta=8.0, T=1.0).item() == pytest.approx(2 * tckd, rel=1e-5)


def test_dkd_is_finite_at_extreme_logits():
    s, t, y = logits(4, 5, scale=200.0), logits(4, 5, seed=9, scale=200.0), torch.tensor([0, 1, 2, 3])
    s.requires_grad_(True)
    loss = dkd_loss(s, t, y, 1.0, 8.0, 0.5)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_dkd_warmup_ramps_linearly():
    from edgedistill.distill import METHODS

    cls = METHODS.get("dkd")
    term = cls(cls.Params(warmup=4), None, None)
    ramps = []
    for e in range(6):
        term.on_epoch_start(e, 6)
        ramps.append(term.ramp)
    assert ramps == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


# --- correlation (DIST) ----------------------------------------------------------------------------------

def test_pearson_invariant_to_positive_affine_maps():
    a, b = logits(3, 10, seed=5).softmax(1), logits(3, 10, seed=6).softmax(1)
    r = pearson(a, b)
    assert torch.allclose(pearson(3 * a + 0.2, b), r, atol=1e-5)
    assert torch.allclose(pearson(a, 0.5 * b - 1), r, atol=1e-5)
    assert torch.allclose(pearson(a, a), torch.ones(3), atol=1e-5)
    assert torch.allclose(pearson(a, -a), -torch.ones(3), atol=1e-5)


def test_soft_rank_gives_hard_ranks_with_ties_averaged():
    x = torch.tensor([[3.0, 1.0, 2.0, 2.0]])
    assert torch.allclose(soft_rank(x, tau=1e-4), torch.tensor([[4.0, 1.0, 2.5, 2.5]]))


def test_spearman_matches_scipy_at_small_tau():
    a, b = logits(4, 30, seed=7), logits(4, 30, seed=8)
    a[:, :10] += b[:, :10]  # some correlation, not all
    ours = spearman(a, b, dim=1, tau=1e-4)
    for i in range(4):
        assert ours[i].item() == pytest.approx(spearmanr(a[i], b[i]).statistic, abs=1e-3)
    # across the batch (dim 0), as DIST's intra-class relation uses it
    col = spearman(a, b, dim=0, tau=1e-4)
    assert col[0].item() == pytest.approx(spearmanr(a[:, 0], b[:, 0]).statistic, abs=1e-3)


def test_spearman_invariant_to_monotone_maps():
    a, b = logits(3, 20, seed=10), logits(3, 20, seed=11)
    r = spearman(a, b, tau=1e-6)
    # τ is in std units, so keep the maps mild: a heavy tail would squeeze the bulk into soft ties
    assert torch.allclose(spearman(torch.exp(a / 3), b ** 3, tau=1e-6), r, atol=1e-3)
    assert torch.allclose(spearman(2 * a - 1, torch.sigmoid(b), tau=1e-6), r, atol=1e-3)


@pytest.mark.parametrize("correlation", ["pearson", "spearman"])
def test_dist_zero_at_equal_inputs_and_positive_otherwise(correlation):
    z = logits(8, 10, seed=12)
    assert dist_loss(z, z.clone(), correlation=correlation).item() == pytest.approx(0.0, abs=1e-5)
    assert dist_loss(logits(8, 10, seed=13), z, correlation=correlation).item() > 0.1


def test_dist_hand_value_two_samples():
    # two samples, two classes: every centred vector is ±(1, −1), so each correlation is ±1
    s = torch.log(torch.tensor([[0.8, 0.2], [0.3, 0.7]]))
    t = torch.log(torch.tensor([[0.6, 0.4], [0.9, 0.1]]))
    # inter: sample 0 agrees (+1), sample 1 disagrees (−1) → 1 − 0 = 1; intra: per class across 2 samples:
    # class 0 student goes down (0.8→0.3), teacher up (0.6→0.9) → −1, class 1 likewise → 1 − (−1) = 2
    assert dist_loss(s, t, beta=1.0, gamma=1.0, T=1.0).item() == pytest.approx(3.0, abs=1e-4)


# --- distribution distances -------------------------------------------------------------------------------

def test_js_symmetric_bounded_and_zero_at_equal():
    s, t = logits(6, 5, seed=14), logits(6, 5, seed=15)
    assert js_divergence(s, t).item() == pytest.approx(js_divergence(t, s).item(), rel=1e-6)
    assert js_divergence(s, s.clone()).item() == pytest.approx(0.0, abs=1e-7)
    disjoint_s, disjoint_t = torch.tensor([[50.0, -50.0]]), torch.tensor([[-50.0, 50.0]])
    assert js_divergence(disjoint_s, disjoint_t).item() == pytest.approx(math.log(2), rel=1e-5)
    assert 0 < js_divergence(s * 10, t * 10).item() <= math.log(2)


def test_js_hand_value():
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])
    m = (p + q) / 2
    expected = 0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum()
    assert js_divergence(p.log()[None], q.log()[None]).item() == pytest.approx(expected.item(), rel=1e-5)


def test_cosine_cost_is_zero_on_diagonal_and_symmetric():
    c = cosine_cost(torch.tensor([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0]]))
    assert torch.equal(c.diag(), torch.zeros(3)) and torch.allclose(c, c.T)
    assert c[0, 1] < 0.01 and c[0, 2] == pytest.approx(2.0)


def test_sinkhorn_zero_at_equal_positive_otherwise_and_near_w1():
    cost = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    p = torch.log(torch.tensor([[0.7, 0.3]]))
    q = torch.log(torch.tensor([[0.4, 0.6]]))
    assert sinkhorn_divergence(p, p.clone(), cost).item() == pytest.approx(0.0, abs=1e-6)
    # small ε: close to the exact 1-D W1 = |0.7 − 0.4|·cost = 0.3
    w = sinkhorn_divergence(p, q, cost, eps=0.01, iters=300).item()
    assert w == pytest.approx(0.3, abs=0.02)


def test_sinkhorn_cheaper_to_move_mass_to_a_similar_class():
    cost = cosine_cost(torch.tensor([[1.0, 0.0], [0.9, 0.3], [-1.0, 0.2]]))  # 0 ≈ 1, 2 far away
    t = torch.tensor([[6.0, 0.0, 0.0]])
    near = sinkhorn_divergence(torch.tensor([[0.0, 6.0, 0.0]]), t, cost).item()
    far = sinkhorn_divergence(torch.tensor([[0.0, 0.0, 6.0]]), t, cost).item()
    assert 0 < near < far


def test_mmd_zero_for_identical_sets_and_ignores_pairing():
    x, y = logits(16, 5, seed=16).softmax(1), logits(16, 5, seed=17).softmax(1)
    assert mmd(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert mmd(x, x[torch.randperm(16)]).item() == pytest.approx(0.0, abs=1e-6)
    assert mmd(x, y).item() > 0
    assert mmd_loss(logits(8, 5), logits(8, 5, seed=18), T=1.0).item() > 0


# --- CTKD pieces -------------------------------------------------------------------------------------------

def test_grad_reverse_and_cosine_curriculum():
    x = torch.ones(3, requires_grad=True)
    (grad_reverse(x, 0.5) * 2).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -1.0))
    vals = [cosine_curriculum(e, 4, 0.0, 1.0) for e in range(6)]
    assert vals[0] == 0.0 and vals[2] == pytest.approx(0.5) and vals[4:] == [1.0, 1.0]
    assert all(a < b for a, b in zip(vals[:4], vals[1:5]))


# --- through the Distiller ---------------------------------------------------------------------------------

def net(out=4, hidden=8):
    return nn.Sequential(nn.Flatten(), nn.Linear(12, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, out))


TERMS = [
    {"name": "kd", "T": 2.0, "standardize": True},
    {"name": "dkd", "alpha": 1.0, "beta": 8.0, "T": 4.0, "standardize": True},
    {"name": "dist"},
    {"name": "dist", "correlation": "spearman", "T": 2.0, "standardize": True},
    {"name": "js", "T": 2.0},
    {"name": "wasserstein"},
    {"name": "wasserstein", "cost": "batch"},
    {"name": "mmd"},
    {"name": "ctkd", "lambda_min": 0.5},
    {"name": "ctkd", "base": "dkd", "mode": "instance", "lambda_min": 0.5, "standardize": True},
]


@pytest.mark.parametrize("term", TERMS, ids=lambda t: "-".join(str(v) for v in t.values()))
def test_gradients_reach_student_and_term_not_teacher(term):
    torch.manual_seed(0)
    student, teacher = net(), net(hidden=16)
    d = Distiller(student, teacher, build_terms(DistillConfig(terms=[term]), student, teacher))
    d.on_epoch_start(0, 2)
    out = d((torch.randn(6, 3, 2, 2), torch.tensor([0, 1, 2, 3, 0, 1])))
    assert all(torch.isfinite(v) for v in out.values())
    # the term alone (not ce, which reaches the student anyway) moves the student's weights
    term_grads = torch.autograd.grad(out[term["name"]], list(student.parameters()), allow_unused=True,
                                     retain_graph=True)
    assert sum(float(g.abs().sum()) for g in term_grads if g is not None) > 0
    out["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    own = list(d.terms.parameters())
    assert (len(own) > 0) == (term["name"] == "ctkd")
    assert all(p.grad is not None for p in own)
    assert not own or sum(float(p.grad.abs().sum()) for p in own) > 0


@pytest.mark.slow  # ~30-45 s each on 2 idle cores (248 s and 151 s in make test-fast on the loaded machine)
@pytest.mark.parametrize("mode", ["global", "instance"])
def test_ctkd_with_dkd_stays_finite_and_inside_bounds(mode):
    torch.manual_seed(0)
    c = 10
    teacher = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, c))
    student = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, c))
    x = torch.randn(1024, 20)
    y = (x @ torch.randn(20, c)).argmax(1)
    opt = torch.optim.Adam(teacher.parameters(), 1e-2)
    for _ in range(100):  # a teacher much better than the student can become: large, persistent KD losses
        i = torch.randint(0, 1024, (128,))
        loss = F.cross_entropy(teacher(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    spec = {"name": "ctkd", "base": "dkd", "mode": mode, "curriculum_epochs": 2, "t_min": 1.0, "t_max": 21.0}
    d = Distiller(student, teacher, build_terms(DistillConfig(terms=[spec]), student, teacher))
    opt = torch.optim.SGD(d.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for epoch in range(4):
        d.on_epoch_start(epoch, 4)
        for _ in range(50):
            i = torch.randint(0, 1024, (64,))
            out = d((x[i], y[i]))
            assert all(torch.isfinite(v) for v in out.values())
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
        log = d.epoch_log()
    assert log["ctkd.lambda"] == 1.0
    assert 1.5 < log["ctkd.T"] < 20.5
    assert all(torch.isfinite(p).all() for p in d.parameters())


# --- one epoch through the pipeline, per method ------------------------------------------------------------

TINY = [  # tiny_overrides, shrunk further: seven runs must fit in seconds
    "data.image_size=8",
    "data.max_train_samples=64",
    "data.max_val_samples=32",
    "teacher.model=cifar:resnet14",
    "teacher.epochs=1",
    "train.batch_size=32",
    "eval.latency_runs=1",
    "eval.warmup_runs=0",
    "eval.baseline=false",
    "train.epochs=1",
]

PIPELINE_TERMS = [
    "{name: dkd, weight: 1.0, warmup: 2}",
    "{name: dist, weight: 1.0, correlation: spearman}",
    "{name: kd, weight: 1.0, standardize: true}",
    "{name: js, weight: 1.0}",
    "{name: wasserstein, weight: 1.0}",
    "{name: mmd, weight: 1.0}",
    "{name: ctkd, weight: 1.0, base: dkd, mode: instance, curriculum_epochs: 1}",
]


@pytest.fixture(scope="module")
def shared_runs(tmp_path_factory):
    return tmp_path_factory.mktemp("response") / "runs"


@pytest.fixture(scope="module")
def ce_alone(shared_runs):
    """The same run with its one term at weight 0: what ce alone does to the student, same data, same seed."""
    return demo_run(TINY, shared_runs, "ce-alone", "{name: kd, weight: 0.0}")


@pytest.mark.slow
@pytest.mark.parametrize("terms", PIPELINE_TERMS)
def test_one_epoch_through_the_pipeline(terms, shared_runs, ce_alone):
    name = terms.split("name: ")[1].split(",")[0]
    run_dir = demo_run(TINY, shared_runs, name, terms)
    assert moved_by_the_terms(run_dir, ce_alone) > 1e-4  # the term changed the student, not ce alone
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0 <= metrics["models"]["student"]["top1"] <= 100
    rows = [json.loads(line) for line in (run_dir / "student" / "metrics.jsonl").read_text().splitlines()]
    assert rows
    for row in rows:
        assert name in row and "loss" in row
        assert all(math.isfinite(v) for k, v in row.items() if isinstance(v, float))
    if name == "ctkd":
        assert 1.0 < rows[-1]["ctkd.T"] < 21.0
