"""Teacher-output cache: the frozen teacher's logits (and small tapped features) computed once, memory-mapped.

A frozen teacher in eval mode is a pure function of its input, so with a deterministic input per
(sample, epoch) its outputs can be stored instead of recomputed. Augmentation off: one row per sample,
reused from the second epoch on and by every later run. Augmentation on (seeded per sample and epoch):
one row per (epoch, sample), reused only by later runs with the same seed and epochs (method sweeps,
reruns); the first run pays as much as the live teacher. Files are numpy .npy opened with
`np.lib.format.open_memmap` (numpy's memory map, nothing home-made), so the OS pages them in on demand.

Key = sha256 of teacher weights, model spec, data config, a fingerprint of the images, the transform,
seed, rows and taps; `meta.json` holds the full identity and is checked on open, so a cache written for
another teacher, data, transform or size is rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..filelock import flock
from ..models import FeatureTaps


def weights_hash(model: nn.Module) -> str:
    """sha256 over the teacher's parameters and buffers, in key order: other weights, other key."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(dataset: Any, n: int = 8) -> str:
    """Pixels and labels of n evenly spaced raw samples: a swapped or edited image folder changes it."""
    base = getattr(dataset, "base", dataset)
    h = hashlib.sha256(str(len(base)).encode())
    for i in np.linspace(0, len(base) - 1, num=min(n, len(base)), dtype=int):
        img, label = base[int(i)]
        h.update(np.asarray(img).tobytes())
        h.update(str(int(label)).encode())
    return h.hexdigest()


class TeacherCache:
    """Memory-mapped teacher outputs, looked up by the (index, epoch) keys train batches carry."""

    def __init__(self, folder: Path, taps: list[str]):
        self.folder, self.taps = folder, taps
        self.logits = np.load(folder / "logits.npy", mmap_mode="r")
        self.features = {t: np.load(folder / f"feature_{i}.npy", mmap_mode="r") for i, t in enumerate(taps)}
        self.rows = self.logits.shape[0]

    def __call__(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(logits, features) of the batch's samples, float32 on the batch's device."""
        if len(batch) < 4:
            raise ValueError("a cached teacher needs batches with (index, epoch) keys: make_loader(keys=True)")
        index, epoch = batch[2].cpu().numpy(), batch[3].cpu().numpy()
        row = epoch % self.rows if self.rows > 1 else np.zeros_like(epoch)
        dev = batch[0].device

        def take(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a[row, index])).to(dev, torch.float32, non_blocking=True)

        return take(self.logits), {t: take(a) for t, a in self.features.items()}


def _identity(teacher_spec: str, teacher: nn.Module, dataset: Any, data_cfg: dict[str, Any], seed: int,
              rows: int, taps: list[str], dtype: str) -> dict[str, Any]:
    return {
        "teacher": teacher_spec, "weights_sha256": weights_hash(teacher), "data": data_cfg,
        "n": len(dataset), "fingerprint": data_fingerprint(dataset), "transform": repr(dataset.transform),
        "seed": seed, "rows": rows, "taps": taps, "dtype": dtype, "format": 1,
    }


def _run(teacher: nn.Module, x: torch.Tensor, taps: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    if not taps:
        return teacher(x), {}
    with FeatureTaps(teacher, taps) as t:
        logits = teacher(x)
    return logits, dict(t.features)


@contextmanager
def _build_lock(path: Path, rank: int, log: Any) -> Iterator[None]:
    """Exclusive lock per cache key for processes sharing cache_dir (compare or search workers): one builds,
    the others wait, then find it complete and reuse it. Without it a second builder deletes the first one's
    half-written folder. Ranks of one torchrun job build together, so only rank 0 takes it."""
    if rank != 0:
        yield
        return
    with flock(path, blocking=False) as mine:
        if mine:
            yield
            return
    log(f"teacher cache: another process is building {path.stem}; waiting for it")
    with flock(path):
        yield


def open_or_build(
    teacher: nn.Module, teacher_spec: str, dataset: Any, *, data_cfg: dict[str, Any], seed: int, epochs: int,
    augmenting: bool, taps: list[str], cache_dir: Path, dtype: str, max_gb: float, device: torch.device,
    batch_size: int, workers: int = 0, rank: int = 0, world: int = 1, barrier: Any = lambda: None,
    log: Any = print,
) -> TeacherCache | None:
    """An up-to-date cache for this teacher and train set: reused, or (re)built; None → use the live teacher.

    `dataset` is the train TransformedDataset with its training seed. Under torchrun every rank builds
    its share of rows into the same files (rank 0 creates them; `barrier` orders the steps), so the
    folder must be on a disk all ranks of a node see.
    """
    rows = epochs if augmenting else 1
    ident = _identity(teacher_spec, teacher, dataset, data_cfg, seed, rows, taps, dtype)
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir).expanduser() / key
    with _build_lock(folder.with_name(f".{key}.lock"), rank, log):
        return _reuse_or_build(teacher, dataset, ident, folder, rows, taps, dtype, max_gb, device, batch_size,
                               workers, rank, world, barrier, log)


def _reuse_or_build(teacher: nn.Module, dataset: Any, ident: dict[str, Any], folder: Path, rows: int,
                    taps: list[str], dtype: str, max_gb: float, device: torch.device, batch_size: int, workers: int,
                    rank: int, world: int, barrier: Any, log: Any) -> TeacherCache | None:
    meta_path = folder / "meta.json"
    seed, cache_dir = ident["seed"], folder.parent
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("identity") == ident and meta.get("complete"):
            log(f"teacher cache: reusing {folder}")
            return TeacherCache(folder, taps)
        log(f"teacher cache: {folder} is stale or incomplete; rebuilding")

    teacher.to(device).eval()
    ds = dataset.with_seed(seed, keys=True)
    with torch.inference_mode():
        x0 = ds[(0, 0)][0].unsqueeze(0).to(device)
        logits0, feats0 = _run(teacher, x0, taps)
    shapes = {"logits": tuple(logits0.shape[1:])} | {f"feature_{i}": tuple(feats0[t].shape[1:])
                                                      for i, t in enumerate(taps)}
    itemsize = np.dtype(dtype).itemsize
    need = sum(rows * len(ds) * int(np.prod(s)) * itemsize for s in shapes.values())
    root = Path(cache_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if need > max_gb * 1e9 or need > 0.9 * free:
        msg = (f"teacher cache needs {need / 1e9:.2f} GB ({rows} row(s) × {len(ds)} samples) but "
               f"distill.cache_max_gb={max_gb} and {free / 1e9:.1f} GB are free; using the live teacher")
        warnings.warn(msg, stacklevel=2)
        log(f"[yellow]warning: {msg}[/]")
        return None

    if rank == 0:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for name, shape in shapes.items():
            np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=dtype, shape=(rows, len(ds), *shape))
    barrier()
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r+") for name in shapes}
    keys = [(i, e) for e in range(rows) for i in range(len(ds))][rank::world]
    loader = DataLoader(ds, batch_size, sampler=keys, num_workers=workers)  # type: ignore[arg-type]
    log(f"teacher cache: computing {len(ds) * rows} teacher outputs into {folder} ({need / 1e6:.1f} MB)")
    with torch.inference_mode():
        for images, _, index, epoch in loader:
            logits, feats = _run(teacher, images.to(device, non_blocking=True), taps)
            out = {"logits": logits} | {f"feature_{i}": feats[t] for i, t in enumerate(taps)}
            for name, t in out.items():
                arrays[name][epoch.numpy(), index.numpy()] = t.float().cpu().numpy().astype(dtype)
    for a in arrays.values():
        a.flush()
    del arrays
    barrier()
    if rank == 0:
        tmp = folder / ".meta.json.tmp"
        tmp.write_text(json.dumps({"identity": ident, "complete": True, "bytes": need}, indent=1))
        tmp.replace(meta_path)
    barrier()
    return TeacherCache(folder, taps)
