"""Teacher-output cache and the device-resident data path: real reuse, real staleness, same images as the CPU path."""

import os
from pathlib import Path

import pytest
import torch

from edgedistill.data import build_data, make_loader
from edgedistill.data.device_loader import DeviceLoader
from edgedistill.teachers.output_cache import open_or_build
from edgedistill.distill import Distiller, build_terms
from edgedistill.errors import UserError
from edgedistill.models import create_model
from edgedistill.recipe import DataConfig, DistillConfig, build_recipe


def digits(augment="none", n=48):
    cfg = DataConfig(source="digits", image_size=16, augment=augment, max_train_samples=n, hflip=True)
    return cfg, build_data(cfg)


def teacher(seed=0):
    torch.manual_seed(seed)
    return create_model("cifar:resnet8", 10).eval()


def cache(tmp_path, t, data, cfg, epochs=2, augmenting=False, max_gb=1.0, logs=None):
    return open_or_build(t, "cifar:resnet8", data.train, data_cfg=cfg.model_dump(mode="json"), seed=7,
                         epochs=epochs, augmenting=augmenting, taps=[], cache_dir=tmp_path, dtype="float16",
                         max_gb=max_gb, device=torch.device("cpu"), batch_size=16,
                         log=(logs.append if logs is not None else lambda m: None))


def live(t, data, keys):
    ds = data.train.with_seed(7)
    with torch.no_grad():
        return t(torch.stack([ds[k][0] for k in keys]))


def test_cache_matches_the_live_teacher_and_is_reused_not_recomputed(tmp_path):
    cfg, data = digits()
    t, logs = teacher(), []
    c = cache(tmp_path, t, data, cfg, logs=logs)
    batch = (torch.zeros(3), None, torch.tensor([5, 0, 47]), torch.tensor([0, 1, 1]))
    logits, feats = c(batch)
    assert feats == {} and logits.dtype == torch.float32
    torch.testing.assert_close(logits, live(t, data, [(5, 0), (0, 0), (47, 0)]), atol=2e-2, rtol=1e-2)  # fp16
    files = {p: p.stat().st_mtime_ns for p in c.folder.iterdir()}
    again = cache(tmp_path, t, data, cfg, logs=logs)
    assert again.folder == c.folder and {p: p.stat().st_mtime_ns for p in c.folder.iterdir()} == files
    assert "reusing" in logs[-1]


def test_a_second_process_waits_for_the_builder_and_reuses_its_cache(tmp_path):
    """Workers sharing cache_dir: while one holds the build lock the other waits, then reuses, never rebuilds."""
    import fcntl
    import threading
    import time

    cfg, data = digits()
    t = teacher()
    first = cache(tmp_path, t, data, cfg)
    files = {p: p.stat().st_mtime_ns for p in first.folder.iterdir()}
    lock = first.folder.with_name(f".{first.folder.name}.lock")
    assert lock.exists()
    logs, out = [], []
    with open(lock, "a") as held:  # another process building this key
        fcntl.flock(held, fcntl.LOCK_EX)
        waiter = threading.Thread(target=lambda: out.append(cache(tmp_path, t, data, cfg, logs=logs)))
        waiter.start()
        deadline = time.monotonic() + 60  # polled: a loaded machine may take seconds to reach the lock
        while not any("waiting" in m for m in logs) and waiter.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("waiting" in m for m in logs), logs
        time.sleep(0.5)
        assert waiter.is_alive()  # it waits while the lock is held, it does not rebuild
        fcntl.flock(held, fcntl.LOCK_UN)
    waiter.join(30)
    assert out[0].folder == first.folder and "reusing" in logs[-1]
    assert {p: p.stat().st_mtime_ns for p in first.folder.iterdir()} == files


def test_other_teacher_or_image_size_gets_another_cache_and_a_tampered_one_is_rebuilt(tmp_path):
    cfg, data = digits()
    c = cache(tmp_path, teacher(0), data, cfg)
    assert cache(tmp_path, teacher(1), data, cfg).folder != c.folder  # other weights
    cfg24 = DataConfig(source="digits", image_size=24, augment="none", max_train_samples=48)
    assert cache(tmp_path, teacher(0), build_data(cfg24), cfg24).folder != c.folder  # other size/transform
    meta = c.folder / "meta.json"
    meta.write_text(meta.read_text().replace('"seed": 7', '"seed": 8'))  # identity no longer matches
    logs = []
    rebuilt = cache(tmp_path, teacher(0), data, cfg, logs=logs)
    assert any("stale" in m for m in logs) and '"seed": 7' in (rebuilt.folder / "meta.json").read_text()


def test_augmented_cache_holds_one_row_per_epoch(tmp_path):
    cfg, data = digits(augment="padcrop")
    t = teacher()
    c = cache(tmp_path, t, data, cfg, epochs=3, augmenting=True)
    assert c.logits.shape == (3, 48, 10)
    logits, _ = c((torch.zeros(2), None, torch.tensor([4, 4]), torch.tensor([0, 2])))
    torch.testing.assert_close(logits, live(t, data, [(4, 0), (4, 2)]), atol=2e-2, rtol=1e-2)
    assert not torch.allclose(logits[0], logits[1])  # other epoch, other crop, other teacher output


def test_cache_over_the_disk_budget_falls_back_to_the_live_teacher_with_a_warning(tmp_path):
    cfg, data = digits()
    with pytest.warns(UserWarning, match="live teacher"):
        assert cache(tmp_path, teacher(), data, cfg, max_gb=1e-9) is None


def test_distiller_with_cache_gives_the_live_loss(tmp_path):
    cfg, data = digits()
    t = teacher()
    torch.manual_seed(3)
    s = create_model("cifar:resnet8", 10)
    terms = build_terms(DistillConfig(), s, t)
    batch = next(iter(make_loader(data.train, 16, train=True, workers=0, seed=7, keys=True)))
    assert len(batch) == 4
    live_loss = Distiller(s, t, terms).eval()(batch)["kd"]
    cached = Distiller(s, t, terms, teacher_outputs=cache(tmp_path, t, data, cfg)).eval()(batch)["kd"]
    assert float(cached.detach()) == pytest.approx(float(live_loss.detach()), rel=2e-2)


def test_recipe_refuses_unwritable_cache_and_impossible_fast_paths(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match="distill.cache_dir.*not writable"):  # a file where a folder must go
        build_recipe({}, ["distill.teacher_cache=true", f"distill.cache_dir={tmp_path / 'a_file' / 'cache'}"])
    with pytest.raises(UserError, match="device_resident.*image_size=128"):
        build_recipe({}, ["data.device_resident=true", "data.image_size=128"])
    with pytest.raises(UserError, match="data.augment=none"):
        build_recipe({}, ["data.device_resident=true", "distill.teacher_cache=true",
                          f"distill.cache_dir={tmp_path}"])


def test_recipe_refuses_a_read_only_cache_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        # Root ignores chmod; procfs refuses new folders to everyone, root included, so the check still fires.
        target = locked / "sub" if not os.access(locked, os.W_OK) else Path("/proc/edgedistill-cache")
        with pytest.raises(UserError, match="distill.cache_dir.*not writable"):
            build_recipe({}, ["distill.teacher_cache=true", f"distill.cache_dir={target}"])
        assert not any(locked.iterdir())
    finally:
        os.chmod(locked, 0o700)


def test_device_loader_without_augmentation_yields_the_cpu_loader_batches():
    cfg, data = digits(n=40)
    cpu = make_loader(data.train, 16, train=True, workers=0, seed=2, keys=True)
    dev = DeviceLoader(data.train, cfg, 16, "cpu", seed=2)
    assert len(cpu) == len(dev) == 2
    for epoch in (0, 1):
        cpu.sampler.set_epoch(epoch)
        dev.sampler.set_epoch(epoch)
        for a, b in zip(cpu, dev):
            torch.testing.assert_close(b[0], a[0], atol=1e-5, rtol=1e-5)
            for x, y in zip(a[1:], b[1:]):
                assert torch.equal(x, y)


def test_device_loader_pad_crop_flip_is_keyed_by_sample_and_epoch():
    cfg, data = digits(augment="padcrop", n=32)
    dev = DeviceLoader(data.train, cfg, 32, "cpu", seed=2)
    first = next(iter(dev))
    assert torch.equal(next(iter(dev))[0], first[0])  # same epoch → same pixels
    dev.sampler.set_epoch(1)
    second = next(iter(dev))
    order = second[2].argsort()[first[2].argsort().argsort()]  # epoch-1 rows in epoch-0 sample order
    assert not torch.equal(second[0][order], first[0])
    # Every augmented image is a 16×16 window of the zero-padded original (pad 2), maybe mirrored.
    x, idx = first[0], first[2]
    orig = (dev.images[idx].float() - dev.mean) / dev.std
    pad = torch.nn.functional.pad(dev.images[idx].float(), (2, 2, 2, 2))
    pad = (pad - dev.mean) / dev.std
    for i in range(8):
        windows = [pad[i, :, dy:dy + 16, dx:dx + 16] for dy in range(5) for dx in range(5)]
        assert any(torch.allclose(x[i], w) or torch.allclose(x[i], w.flip(-1)) for w in windows)
    assert not torch.allclose(x, orig)


@pytest.mark.slow
def test_pipeline_with_cache_and_device_resident_data_reuses_the_cache(tmp_path, tiny_overrides):
    import json

    from edgedistill.pipeline import run
    from edgedistill.recipe import load_recipe
    from edgedistill.recipes import recipe_path
    from rich.console import Console

    over = tiny_overrides + ["eval.baseline=false", "data.augment=none", "data.device_resident=true",
                             "distill.teacher_cache=true", f"distill.cache_dir={tmp_path / 'cache'}",
                             "teacher.epochs=1", "train.epochs=1", "data.workers=0"]
    quiet = Console(file=open(os.devnull, "w"))
    first = run(load_recipe(recipe_path("demo"), over), quiet)
    (folder,) = (p for p in (tmp_path / "cache").iterdir() if not p.name.startswith("."))  # not the build locks
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["complete"] and meta["identity"]["rows"] == 1 and meta["identity"]["n"] == 256
    stamp = (folder / "logits.npy").stat().st_mtime_ns
    second = run(load_recipe(recipe_path("demo"), over), quiet)  # same teacher (reused), same data: same cache
    assert second != first and (folder / "logits.npy").stat().st_mtime_ns == stamp
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 1
    m = json.loads((second / "metrics.json").read_text())
    assert m["n_images"] == 128 and 0 <= m["models"]["student"]["top1"] <= 100


def test_cache_holds_the_teacher_features_a_method_taps(tmp_path):
    from edgedistill.recipe import TermConfig

    cfg, data = digits()
    t = teacher()
    torch.manual_seed(3)
    s = create_model("cifar:resnet8", 10)
    example = torch.zeros(2, 3, 16, 16)
    terms = build_terms(DistillConfig(terms=[TermConfig(name="fitnet")]), s, t, example)
    taps = Distiller(s, t, terms).teacher_taps
    assert taps
    c = open_or_build(t, "cifar:resnet8", data.train, data_cfg=cfg.model_dump(mode="json"), seed=7, epochs=1,
                      augmenting=False, taps=taps, cache_dir=tmp_path, dtype="float32", max_gb=1.0,
                      device=torch.device("cpu"), batch_size=16, log=lambda m: None)
    batch = next(iter(make_loader(data.train, 8, train=True, workers=0, seed=7, keys=True)))
    live_loss = Distiller(s, t, terms).eval()(batch)["fitnet"]
    cached_loss = Distiller(s, t, terms, teacher_outputs=c).eval()(batch)["fitnet"]
    assert float(cached_loss.detach()) == pytest.approx(float(live_loss.detach()), rel=1e-4)
