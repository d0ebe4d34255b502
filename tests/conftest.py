import os

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
