"""`python -m edgedistill.search.worker FOLDER`: one more process running trials of a search's study."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("folder", type=Path, help="the search folder (recipe.yaml and search.json in it)")
    p.add_argument("--worker", type=int, default=None, help="seed offset of this worker's sampler (default: its pid)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads of this process")
    a = p.parse_args()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    from .study import Search, work

    work(Search.load(a.folder), worker=a.worker if a.worker is not None else os.getpid(), timeout=a.timeout,
         on_trial=lambda _s, t: print(f"trial {t.number} {t.user_attrs.get('status', t.state.name.lower())} "
                                       f"{t.user_attrs.get('spec')}", flush=True))


if __name__ == "__main__":
    main()
