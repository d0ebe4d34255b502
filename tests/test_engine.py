import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from edgedistill.engine import TrainingError, fit, load_checkpoint
from edgedistill.engine.optim import lr_factor
from edgedistill.recipe import TrainConfig


class Classifier(nn.Module):
    """A tiny supervised module with the engine's contract: forward(batch) -> {"loss": …, …}."""

    def __init__(self, nan_at_call: int | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
        self.calls, self.nan_at_call = 0, nan_at_call

    def forward(self, batch):
        x, y = batch
        self.calls += 1
        ce = F.cross_entropy(self.net(x), y)
        extra = ce * 0 + (float("nan") if self.calls == self.nan_at_call else 0.0)
        return {"loss": ce + extra, "ce": ce, "extra": extra}


def loader():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(96, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, drop_last=True)


CFG = TrainConfig(epochs=4, lr=0.1, seed=3, schedule="cosine", warmup_epochs=1)


class Killed(Exception):
    pass


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    full = Classifier()
    fit(full, loader(), CFG, tmp_path / "full", evaluate=lambda: {"top1": 0.0})

    def kill_after_2(epoch, record):
        if epoch == 2:
            raise Killed

    part = Classifier()
    with pytest.raises(Killed):
        fit(part, loader(), CFG, tmp_path / "part", evaluate=lambda: {"top1": 0.0}, on_epoch_end=kill_after_2)
    assert load_checkpoint(tmp_path / "part" / "last.pt")["epoch"] == 2
    resumed = Classifier()  # a fresh process would start from freshly initialised weights
    res = fit(resumed, loader(), CFG, tmp_path / "part", evaluate=lambda: {"top1": 0.0}, resume=True)
    assert res.resumed_from == 2
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    log = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]


def test_training_reduces_loss_and_logs(tmp_path):
    m = Classifier()
    res = fit(m, loader(), TrainConfig(epochs=6, lr=0.1), tmp_path, evaluate=lambda: {"top1": 50.0})
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert {"epoch", "lr", "loss", "ce", "extra", "images_per_s", "val_top1"} <= set(res.history[0])
    assert (tmp_path / "best.pt").exists() and (tmp_path / "last.pt").exists()


def test_non_finite_loss_names_step_and_term_and_keeps_checkpoint(tmp_path):
    steps_per_epoch = len(loader())
    m = Classifier(nan_at_call=steps_per_epoch + 3)  # third step of the second epoch
    with pytest.raises(TrainingError) as e:
        fit(m, loader(), CFG, tmp_path)
    msg = str(e.value)
    assert "epoch 2, step 3" in msg and "extra" in msg
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1


def test_no_leftover_temp_files(tmp_path):
    fit(Classifier(), loader(), TrainConfig(epochs=2), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "metrics.jsonl"]


def test_grad_clip_and_adamw_and_step_schedule(tmp_path):
    cfg = TrainConfig(epochs=3, optimizer="adamw", lr=1e-2, schedule="step", milestones=[2], grad_clip=0.5)
    res = fit(Classifier(), loader(), cfg, tmp_path)
    assert res.history[-1]["lr"] == pytest.approx(1e-3)


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(epochs=10, warmup_epochs=2, schedule="cosine")
    total, spe = 100, 10
    f = [lr_factor(s, total, spe, cfg) for s in range(total)]
    assert f[0] == pytest.approx(0.05) and f[19] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[20:], f[21:]))  # monotone decay after warm-up
    assert f[-1] < 0.01


class DtypeSpy(Classifier):
    """Records the dtype its linear layers compute in during training."""

    def __init__(self):
        super().__init__()
        self.seen: set[torch.dtype] = set()

    def forward(self, batch):
        if self.training:
            self.seen.add(self.net[0](batch[0]).dtype)
        return super().forward(batch)


def test_bf16_autocast_runs_on_cpu(tmp_path):
    m = DtypeSpy()
    res = fit(m, loader(), TrainConfig(epochs=1, amp="bf16", device="cpu"), tmp_path)
    assert m.seen == {torch.bfloat16}  # every training step under bf16 autocast
    assert all(p.dtype == torch.float32 for p in m.parameters())  # the weights stay fp32
    assert torch.isfinite(torch.tensor(res.history[0]["loss"]))
    off = DtypeSpy()
    fit(off, loader(), TrainConfig(epochs=1, amp="off", device="cpu"), tmp_path / "off")
    assert off.seen == {torch.float32}


def test_fp16_on_cpu_is_refused(tmp_path):
    with pytest.raises(TrainingError, match="fp16 needs CUDA"):
        fit(Classifier(), loader(), TrainConfig(epochs=1, amp="fp16", device="cpu"), tmp_path)


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    from edgedistill.atomic import atomic_path, atomic_write_text

    target = tmp_path / "metrics.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
