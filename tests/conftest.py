import os
import sys

import pytest
import torch

# Two cores: keep tests from oversubscribing them, and make timings comparable. Under pytest-xdist (`make test`
# runs two workers) the cores are shared out between the workers, one torch thread each on 2 cores.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
THREADS = max(1, min(2, CORES // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
torch.set_num_threads(THREADS)
# Subprocesses (the CLI, torchrun, kill-and-resume runs) start at the same thread count: a run in-process and the
# same run in a subprocess then add up in the same order (bitwise-equal results), and two workers' subprocesses
# do not oversubscribe the cores.
os.environ["OMP_NUM_THREADS"] = str(THREADS)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: a plain `pytest` without it must still load this file
def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per core, at most 2 (the suite is sized for 2 cores; more workers each get a thread)."""
    return max(1, min(2, CORES))


def _work_unit(item) -> str | None:
    """The xdist_group an item must share with others (`--dist loadgroup`): the tests of one module that use a
    module-scoped fixture run on one worker, so the fixture (a trained model, a built run) is built once; the tests
    that use a session fixture of this folder (the PostgreSQL server) likewise."""
    here = os.path.dirname(__file__)
    defs = [d[-1] for d in item._fixtureinfo.name2fixturedefs.values()
            if d and os.path.dirname(d[-1].func.__code__.co_filename) == here]
    session = sorted(d.argname for d in defs if d.scope == "session")
    if session:
        return "+".join(session)
    return getattr(item, "module", item).__name__ if any(d.scope == "module" for d in defs) else None


def _join_group(item, group: str) -> None:
    """What pytest-xdist's loadgroup does for an xdist_group mark: the group's name after an `@` in the node id, the
    one thing its scheduler reads. xdist 3.8 writes item._nodeid, which pytest 9.2 no longer reads (node ids are
    NodeId objects): the mark alone then groups nothing (pytest-xdist issue #1386), so the id is set here."""
    if hasattr(item, "_id") and "@" not in item.nodeid.rpartition("]")[2]:
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(f"{item.nodeid}@{group}")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under xdist, group the items that share an expensive fixture and hand out the slow work first (run with
    `--dist loadgroup --no-loadscope-reorder`): the workers then finish together, not one waiting on a late
    30-second test. A plain `pytest` keeps the file order."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    units: dict[str, list] = {}
    for item in items:
        group = _work_unit(item)
        if group and getattr(config.option, "loadgroup", False):
            item.add_marker(pytest.mark.xdist_group(group))
            _join_group(item, group)
        units.setdefault(group or item.nodeid, []).append(item)
    rank = lambda unit: (not any(i.get_closest_marker("slow") for i in unit), len(unit) == 1)
    items[:] = [i for unit in sorted(units.values(), key=rank) for i in unit]


@pytest.fixture(autouse=True)
def _same_threads_for_every_test():
    """A test that runs a command in-process with train.threads=1 must not leave the next test at 1 thread: a
    reference run computed in-process would then differ in the last bits from the same run in a subprocess."""
    yield
    torch.set_num_threads(THREADS)


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


def demo_run(overrides: list[str], runs_dir, name: str, terms: str):
    """The demo recipe with `overrides`, its distillation terms replaced by `terms` (YAML), run into runs_dir/name."""
    from edgedistill.pipeline import run
    from edgedistill.recipe import load_recipe
    from edgedistill.recipes import recipe_path

    over = [*overrides, f"output.dir={runs_dir}", f"output.name={name}", f"distill.terms=[{terms}]"]
    return run(load_recipe(recipe_path("demo"), over))


def pipeline_context(recipe, run_dir):
    """The pipeline's Context for `recipe` (data built, CPU, a silent console), without running any stage."""
    import io

    from rich.console import Console

    from edgedistill.data.build import build_data
    from edgedistill.run.context import Context

    return Context(recipe, run_dir, build_data(recipe.data), torch.device("cpu"), Console(file=io.StringIO()), False)


def moved_by_the_terms(run_dir, reference) -> float:
    """The largest change a run's distillation terms made to its student: the max |Δ| between run_dir's student
    and `reference`'s, a run of the same recipe whose only term has weight 0 (ce alone, same data, same seed).
    A term that never reached the student's gradient (detached, weight ignored) gives exactly 0."""
    from safetensors.torch import load_file

    a, b = (load_file(str(d / "student" / "model.safetensors")) for d in (run_dir, reference))
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


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
