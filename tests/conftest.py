import os
import sys

import pytest
import torch

# Two cores: keep tests from oversubscribing them, and make timings comparable.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_overrides(tmp_path):
    """A demo recipe shrunk to seconds: small images, few samples, short training, few timed runs."""
    return [
        f"output.dir={tmp_path / 'runs'}",
        "data.image_size=16",
        "data.max_train_samples=256",
        "data.max_val_samples=128",
        "teacher.model=cifar:resnet14",
        "teacher.epochs=2",
        "train.epochs=2",
        "train.batch_size=32",
        "eval.latency_runs=3",
        "eval.warmup_runs=1",
    ]


def cli(capsys, *args):
    """The CLI in-process (a subprocess pays ~8 s of imports); returns (exit code, stdout, stderr).

    Test files take it with `from conftest import cli`: one copy, not one per file."""
    from edgedistill.cli import main

    old, sys.argv = sys.argv, ["edgedistill", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code or 0
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err
