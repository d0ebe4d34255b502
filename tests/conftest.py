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


def invoke(*args) -> int:
    """The CLI in-process with these arguments (a subprocess pays ~8 s of imports); returns its exit code."""
    from edgedistill.cli import main

    old, sys.argv = sys.argv, ["edgedistill", *map(str, args)]
    try:
        main()
        return 0
    except SystemExit as e:
        return e.code or 0
    finally:
        sys.argv = old


def cli(capsys, *args):
    """invoke() with pytest's captured output; returns (exit code, stdout, stderr).

    Test files take it with `from conftest import cli`: one copy, not one per file."""
    code = invoke(*args)
    out = capsys.readouterr()
    return code, out.out, out.err


def kill_once_written(cmd: list[str], path, what: str, timeout: float = 300, env: dict | None = None) -> None:
    """Start `cmd`, SIGKILL it as soon as `path` exists (or `path()` is true, for a callable): the faithful way to
    test resuming after a kill."""
    import signal
    import subprocess
    import time

    ready = path if callable(path) else path.exists
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, f"the {what} ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on a loopback port for the whole session (see tests/pg_server.py)."""
    from pg_server import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def net(tmp_path):
    """The int8 tests' network (tests/int8_nets.py), seeded, and its fp32 ONNX file."""
    from int8_nets import NAMES, Net

    from edgedistill.deploy.export import export_onnx

    torch.manual_seed(0)
    m = Net().eval()
    with torch.no_grad():
        m.fc.bias.zero_()
    return m, export_onnx(m, tmp_path / "net.onnx", 8, NAMES, [0.0] * 3, [1.0] * 3)


@pytest.fixture
def digits_model(tmp_path):
    """An (untrained) cifar:resnet8 checkpoint for the digits data: `compress FILE` needs no training."""
    from int8_nets import NAMES

    from edgedistill.models import create_model
    from edgedistill.models.io import save_model
    from edgedistill.recipe import build_recipe

    r = build_recipe({}, ["data.image_size=16"])
    torch.manual_seed(0)
    return save_model(tmp_path / "r8.safetensors", create_model("cifar:resnet8", 10),
                      {"model": "cifar:resnet8", "num_classes": 10, "class_names": NAMES,
                       "data": r.data.model_dump(mode="json")})
