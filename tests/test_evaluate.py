import json
import math

import pytest
import torch
from sklearn import metrics as skm
from torch import nn

from edgedistill.evaluate import classification_metrics, fidelity, predict
from edgedistill.losses import kd_loss


def onehot_logits(labels, c, scale=10.0):
    return torch.nn.functional.one_hot(labels, c).float() * scale


def random_case(n=200, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n,), generator=g)
    logits = torch.randn(n, c, generator=g) + 1.5 * torch.nn.functional.one_hot(labels, c)
    return logits, labels


def test_perfect_logits():
    labels = torch.arange(10) % 4
    m = classification_metrics(onehot_logits(labels, 4), labels, 4)
    assert m["top1"] == 100.0 and m["top5"] == 100.0
    assert m["kappa"] == pytest.approx(1.0) and m["qwk"] == pytest.approx(1.0)
    assert m["mcc"] == pytest.approx(1.0) and m["f1_macro"] == pytest.approx(1.0)
    assert m["roc_auc"] == pytest.approx(1.0) and m["n"] == 10
    assert all(type(v) is float for k, v in m.items() if k != "n") and type(m["n"]) is int
    json.dumps(m)


def test_top1_top5_by_hand():
    # 6 classes; the true class ranks 1st, 2nd, 5th and 6th in the four rows → top1 25 %, top5 75 %.
    base = torch.tensor([6.0, 5, 4, 3, 2, 1])  # class i has rank i
    logits = base.repeat(4, 1)
    labels = torch.tensor([0, 1, 4, 5])
    m = classification_metrics(logits, labels, 6)
    assert m["top1"] == pytest.approx(25.0)
    assert m["top5"] == pytest.approx(75.0)


def test_top5_caps_k_at_num_classes():
    logits, labels = random_case(c=3)
    assert classification_metrics(logits, labels, 3)["top5"] == 100.0


def test_ece_calibrated_and_overconfident():
    # confidence 0.75 on every row and 3 of 4 right: perfectly calibrated.
    logits = torch.tensor([[math.log(3.0), 0.0]] * 4)
    assert classification_metrics(logits, torch.tensor([0, 0, 0, 1]), 2)["ece"] == pytest.approx(0.0, abs=1e-6)
    # ~100 % confident and always wrong.
    wrong = classification_metrics(torch.tensor([[10.0, 0.0]] * 4), torch.tensor([1, 1, 1, 1]), 2)
    assert wrong["ece"] > 0.99


def test_against_sklearn_on_random_data():
    logits, labels = random_case()
    m = classification_metrics(logits, labels, 5)
    y, pred = labels.numpy(), logits.argmax(1).numpy()
    probs = torch.softmax(logits.double(), 1).numpy()
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert m["kappa"] == pytest.approx(skm.cohen_kappa_score(y, pred))
    assert m["qwk"] == pytest.approx(skm.cohen_kappa_score(y, pred, weights="quadratic"))
    assert m["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, probs), rel=1e-5)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr"), rel=1e-6)
    assert m["top1"] == pytest.approx(100 * skm.accuracy_score(y, pred))
    assert 0 < m["ece"] < 1


def test_roc_auc_with_absent_class():
    logits, labels = random_case(c=4)
    keep = labels != 3
    logits, labels = logits[keep], labels[keep]
    m = classification_metrics(logits, labels, 4)
    probs = torch.softmax(logits.double(), 1).numpy()[:, :3]
    probs /= probs.sum(1, keepdims=True)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(labels.numpy(), probs, multi_class="ovr"), rel=1e-6)
    # log_loss still knows all four classes.
    assert math.isfinite(m["log_loss"])


def test_roc_auc_two_present_classes_and_one():
    logits, labels = random_case(c=4)
    keep = labels < 2
    m = classification_metrics(logits[keep], labels[keep], 4)
    p = torch.softmax(logits[keep].double(), 1).numpy()
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(labels[keep].numpy(), p[:, 1] / p[:, :2].sum(1)))
    one = classification_metrics(logits[:5], torch.zeros(5, dtype=torch.long), 4)
    assert math.isnan(one["roc_auc"])
    assert not math.isnan(one["kappa"])


def test_fidelity_identical():
    logits, _ = random_case()
    f = fidelity(logits, logits.clone(), T=4.0)
    assert f["agreement"] == 100.0
    assert f["kl"] == pytest.approx(0.0, abs=1e-6)
    assert f["js"] == pytest.approx(0.0, abs=1e-6)
    assert f["kd_loss"] == pytest.approx(0.0, abs=1e-5)


def test_fidelity_by_hand_and_symmetry():
    teacher = torch.tensor([[0.0, 0.0]])  # p_t = (1/2, 1/2)
    student = torch.tensor([[math.log(3.0), 0.0]])  # p_s = (3/4, 1/4)
    f = fidelity(student, teacher)
    assert f["kl"] == pytest.approx(0.5 * math.log(4 / 3), rel=1e-5)  # ½ln(2/3) + ½ln 2
    half = fidelity(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    assert half["agreement"] == pytest.approx(50.0)
    a, b = random_case(seed=1)[0], random_case(seed=2)[0]
    assert fidelity(a, b)["js"] == pytest.approx(fidelity(b, a)["js"], rel=1e-9)
    assert 0 < fidelity(a, b)["js"] < math.log(2)
    assert fidelity(a, b)["kd_loss"] == pytest.approx(float(kd_loss(a, b, T=4.0)))


def test_predict_collects_logits_and_labels():
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5))
    model.train()
    batches = [(torch.randn(5, 4), torch.randint(0, 3, (5,))) for _ in range(3)]
    logits, labels = predict(model, batches)
    assert not model.training
    assert logits.shape == (15, 3) and logits.dtype == torch.float32 and logits.device.type == "cpu"
    assert labels.dtype == torch.long and torch.equal(labels, torch.cat([y for _, y in batches]))
    again, _ = predict(model, batches)  # eval mode: dropout off, deterministic
    assert torch.equal(logits, again)
    assert not logits.requires_grad
