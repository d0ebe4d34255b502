"""Data-parallel training: 2 gloo processes on CPU must train what 1 process with the same global batch trains."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from edgedistill.data import make_loader
from edgedistill.distill import Distiller, Term
from edgedistill.distill.base import NoParams
from edgedistill.engine import distributed as ddp
from edgedistill.engine import fit
from edgedistill.evaluate import predict
from edgedistill.recipe import TrainConfig

GLOBAL_BATCH = 16
CFG = TrainConfig(epochs=3, lr=0.05, seed=5, warmup_epochs=1, batch_size=GLOBAL_BATCH, device="cpu")


class LearnedTKD(Term):
    """KD with a learnable temperature: a trainable part of the Distiller that DDP must keep in sync."""

    def __init__(self, params, student, teacher, example=None):
        super().__init__(params, student, teacher, example)
        self.log_t = nn.Parameter(torch.tensor(1.0))

    def forward(self, student, teacher, batch):
        t = self.log_t.exp()
        return F.kl_div(F.log_softmax(student.logits / t, 1), F.softmax(teacher.logits / t, 1),
                        reduction="batchmean") * t * t


def models():
    torch.manual_seed(0)
    # Student without BatchNorm: per-rank batch statistics (no SyncBatchNorm on CPU) would differ by design.
    student = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                            nn.Linear(32, 3))
    teacher = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))
    return student, teacher


def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(133, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long() + (x[:, 1].mean((1, 2)) > 0.1).long()
    return TensorDataset(x[:96], y[:96]), TensorDataset(x[96:], y[96:])  # 37 held-out: ranks get padded shards


class Killed(Exception):
    pass


def train(out_dir, world, rank, kill_after=None, resume=False):
    student, teacher = models()
    module = Distiller(student, teacher, {"kd": (1.0, LearnedTKD(NoParams(), student, teacher))})
    train_ds, val_ds = data()
    tl = make_loader(train_ds, GLOBAL_BATCH // world, train=True, workers=0, seed=CFG.seed, num_replicas=world,
                     rank=rank)
    vl = make_loader(val_ds, 8, train=False, workers=0, num_replicas=world, rank=rank)
    seen = {}

    def evaluate():
        logits, labels = predict(student, vl)
        seen["n"], seen["labels"] = len(labels), labels
        return {"top1": 100.0 * float((logits.argmax(1) == labels).float().mean())}

    def stop(epoch, record):
        if epoch == kill_after:
            raise Killed

    try:
        res = fit(module, tl, CFG, out_dir, evaluate=evaluate, resume=resume, on_epoch_end=stop)
    except Killed:
        return None
    return module, res, seen


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    assert ddp.init_from_env("cpu")
    try:
        assert train(out_dir, world, rank, kill_after=2) is None  # killed after epoch 2 of 3 …
        module, res, seen = train(out_dir, world, rank, resume=True)  # … and resumed by every rank
        assert res.resumed_from == 2
        torch.save({"state": module.state_dict(), "history": res.history, "n": seen["n"],
                    "labels": seen["labels"]}, out_dir / f"rank{rank}.pt")
    finally:
        ddp.shutdown()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    module, res, _ = train(tmp_path / "single", 1, 0)
    mp.spawn(_worker, args=(2, _free_port(), tmp_path / "ddp"), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    single = module.state_dict()
    assert set(r0["state"]) == set(single) and "terms.kd.log_t" in single
    # Tolerance: float32 sums in another order (two half-batch means averaged by all-reduce), over 18 steps.
    for k, v in single.items():
        torch.testing.assert_close(r0["state"][k], v, atol=2e-5, rtol=1e-4, msg=k)
        torch.testing.assert_close(r1["state"][k], r0["state"][k], atol=0, rtol=0, msg=k)  # ranks in lockstep
    assert single["terms.kd.log_t"] != 1.0  # the learnable temperature trained
    # Evaluation covered the 37 held-out images exactly once (padding dropped), in dataset order, on both ranks.
    _, val = data()
    assert r0["n"] == r1["n"] == 37 and torch.equal(r0["labels"], val.tensors[1])
    for a, b in zip(res.history, r0["history"]):
        assert a["val_top1"] == b["val_top1"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)  # the logged loss covers both ranks' images
    # Rank 0 alone wrote the log: three epochs, once each, after the resume.
    assert len((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()) == 3


def test_epoch_sampler_shards_cover_the_single_process_batches():
    from edgedistill.data import EpochSampler

    one = EpochSampler(20, seed=3)
    shards = [EpochSampler(20, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    for s in (one, *shards):
        s.set_epoch(4)
    full, a, b = list(one), list(shards[0]), list(shards[1])
    assert {e for _, e in full + a + b} == {4}
    for k in range(0, 10, 4):  # step k of 2 ranks with batch 4 = step k of 1 process with batch 8
        assert sorted(a[k:k + 4] + b[k:k + 4]) == sorted(full[2 * k:2 * k + 8])


def test_more_processes_than_the_data_can_feed_or_an_uneven_batch_is_refused():
    from edgedistill.errors import UserError
    from edgedistill.preflight import check_parallel
    from edgedistill.recipe import build_recipe

    r = build_recipe({}, ["train.batch_size=64"])
    check_parallel(r, 1000, 8)  # 8 processes × 8 images per step
    with pytest.raises(UserError, match="need ≥ 64 train images but the train split has 60") as e:
        check_parallel(r, 60, 8)
    assert e.value.key == "train.batch_size"
    with pytest.raises(UserError, match="must divide by the 3 processes"):
        check_parallel(r, 1000, 3)
