"""Write the digits train images that recipes/unlabeled.yaml leaves out of its labelled budget as PNGs, labels dropped.

    python scripts/digits_unlabeled.py runs/digits-unlabeled [--labelled 300]

The labelled subset is the one `data.max_train_samples=N` picks (same split, same seed), so the folder
holds only the other train images: nothing of the held-out split, nothing the labelled run already has.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from edgedistill.data.build import first_samples
from edgedistill.data.digits import digits_source
from edgedistill.recipe import DataConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--labelled", type=int, default=300, help="data.max_train_samples of the labelled run")
    args = ap.parse_args()
    cfg = DataConfig(source="digits", max_train_samples=args.labelled)
    train = digits_source(cfg).train
    kept = set(getattr(first_samples(train, cfg.max_train_samples, cfg.split_seed), "indices", range(len(train))))
    args.out.mkdir(parents=True, exist_ok=True)
    n = 0
    for i in range(len(train)):
        if i not in kept:
            Image.fromarray(np.asarray(train.images[i])).save(args.out / f"{i:05d}.png")  # no class folders
            n += 1
    print(f"{n} unlabeled images in {args.out} ({len(kept)} stay labelled)")


if __name__ == "__main__":
    main()
