"""`python -m edgedistill.jobs.worker STORAGE STUDY`: one more process taking waiting runs of a study."""

from __future__ import annotations

import argparse

from .runs import open_study, work


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("storage", help="journal file path or RDB URL (postgresql://…)")
    p.add_argument("study", help="study name")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads of this process")
    a = p.parse_args()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    work(open_study(a.storage, a.study), lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
