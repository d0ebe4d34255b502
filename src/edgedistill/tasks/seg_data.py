"""A task=segmentation recipe's data: the train set (augmented) and the held-out sets, capped and checked; shared by
the run (tasks/segmentation.py) and its compress / deploy / eval (tasks/seg_chain.py)."""

from __future__ import annotations

from torch.utils.data import Dataset

from ..data.build import first_samples, held_splits
from ..data.seg_base import SEG_SOURCES
from ..data.seg_transforms import SegDataset, joint_transform
from ..recipe import Recipe


def build_seg_data(r: Recipe) -> tuple[Dataset, dict[str, Dataset], list[str]]:
    """Train set (augmented) and held-out sets (val, test when the source has one); masks checked by the source."""
    raw = SEG_SOURCES.get(r.data.source, key="data.source")(r)
    held = held_splits(raw, r.data.root or r.data.source, r.eval.split)
    seed = r.data.split_seed
    train = SegDataset(first_samples(raw.train, r.data.max_train_samples, seed), joint_transform(r, train=True))
    evals = {k: SegDataset(first_samples(v, r.data.max_val_samples, seed), joint_transform(r, train=False))
             for k, v in held.items()}
    return train, evals, raw.class_names


__all__ = ["build_seg_data"]
