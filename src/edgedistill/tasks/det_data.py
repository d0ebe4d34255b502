"""A task=detection recipe's data: the train set (flipped when data.hflip) and the held-out sets, capped and
checked; shared by the run (tasks/detection.py) and its compress / deploy / eval (tasks/det_chain.py)."""

from __future__ import annotations

from torch.utils.data import Dataset

from ..data.build import first_samples, held_splits
from ..data.det_base import DET_SOURCES, DetDataset
from ..recipe import Recipe


def build_det_data(r: Recipe) -> tuple[Dataset, dict[str, Dataset], list[str]]:
    """Train set (flipped when data.hflip) and held-out sets; every annotation checked by the source."""
    raw = DET_SOURCES.get(r.data.source, key="data.source")(r)
    held = held_splits(raw, r.data.root or r.data.source, r.eval.split)
    seed, size = r.data.split_seed, r.data.image_size
    train = DetDataset(first_samples(raw.train, r.data.max_train_samples, seed), size, r.data.hflip, seed=r.train.seed)
    evals = {k: DetDataset(first_samples(v, r.data.max_val_samples, seed), size, False) for k, v in held.items()}
    return train, evals, raw.class_names


__all__ = ["build_det_data"]
