"""A task=segmentation recipe's data: the train set (augmented) and the held-out sets, capped and checked; shared by
the run (tasks/segmentation.py) and its compress / deploy / eval (tasks/seg_chain.py)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Subset

from ..data.seg_base import SEG_SOURCES
from ..data.seg_transforms import SegDataset, joint_transform
from ..errors import UserError
from ..recipe import Recipe


def _capped(ds: Dataset, n: int | None, seed: int) -> Dataset:
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n]  # type: ignore[arg-type]
    return Subset(ds, sorted(perm.tolist()))


def build_seg_data(r: Recipe) -> tuple[Dataset, dict[str, Dataset], list[str]]:
    """Train set (augmented) and held-out sets (val, test when the source has one); masks checked by the source."""
    raw = SEG_SOURCES.get(r.data.source, key="data.source")(r)
    held = {"val": raw.val, **({"test": raw.test} if raw.test is not None else {})}
    for split, ds in {"train": raw.train, **held}.items():
        if len(ds) == 0:  # type: ignore[arg-type]
            raise UserError(f"the {split} split of {r.data.root or r.data.source} holds no images", key="data.root")
    if r.eval.split not in held:
        raise UserError(f"this dataset has no {r.eval.split} split; allowed: {', '.join(held)}", key="eval.split")
    seed = r.data.split_seed
    train = SegDataset(_capped(raw.train, r.data.max_train_samples, seed), joint_transform(r, train=True))
    evals = {k: SegDataset(_capped(v, r.data.max_val_samples, seed), joint_transform(r, train=False))
             for k, v in held.items()}
    return train, evals, raw.class_names


__all__ = ["build_seg_data"]
