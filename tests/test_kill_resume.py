"""`edgedistill compress` killed with SIGKILL (no handler runs, no file is closed cleanly) and run again with --resume.

Each kill comes at a point the stage marks on disk: between two prune steps (step 1's step.json written), during
static quantization (as soon as prune's entry.json is written: the quantize stage has begun), during QAT
(its first epoch's last.pt written). The resumed run must not redo what finished before the kill (the console
and the files' modification times say so) and must end with the stages.json of a run that was never killed.
"""

import json
import os
import sys

import pytest
import torch
from test_compress_pipeline import _comparable, _digits_model

from conftest import cli, kill_once_written

COMMON = ["compress.latency_runs=1", "compress.warmup_runs=0", "compress.parity_images=8", "train.batch_size=16",
          "data.max_train_samples=48", "data.max_val_samples=32"]


def _env(tmp_path):
    """The subprocess computes with this process's thread count (the reference runs here) and its own TMPDIR."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "TMPDIR": str(tmp_path / "tmp")}


def _reference(capsys, args, runs):
    code, _, err = cli(capsys, *args)
    assert code == 0, err
    return json.loads((runs / "run" / "stages.json").read_text())


def _same_as(run, runs, reference):
    result = json.loads((run / "stages.json").read_text().replace(str(run), str(runs / "run")))
    assert _comparable(result["stages"]) == _comparable(reference["stages"])
    assert result["final"] == reference["final"] and result["budgets"] == reference["budgets"]


def _mtimes(folder):
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_compress_killed_between_prune_steps_and_in_quantization_resumes(tmp_path, capsys):
    from edgedistill.compress.cpu import detect_cpu, resolve

    model, runs = _digits_model(tmp_path / "m.safetensors"), tmp_path / "runs"
    fmt = resolve("auto", "auto", detect_cpu())["format"]  # pinned: a timed choice may differ between two runs
    args = ["compress", str(model), "compress.stages=[{name: prune, flops_ratio: 0.4, steps: 2, step_epochs: 1},"
            f" {{name: quantize, calib_samples: 32, format: {fmt}, graph: qdq, ship: int8}}]",
            f"output.dir={runs}", *COMMON]
    reference = _reference(capsys, args, runs)
    cmd = [sys.executable, "-m", "edgedistill", *args]
    run, env = runs / "run-2", _env(tmp_path)

    kill_once_written(cmd, run / "1-prune" / "step-1" / "step.json", "prune", env=env)
    assert not (run / "1-prune" / "step-2" / "step.json").exists() and not (run / "1-prune" / "entry.json").exists()
    step1 = _mtimes(run / "1-prune" / "step-1")

    def quantizing():  # prune's entry.json is the last thing prune writes: from then on quantization is under way
        # (ORT's calibration ranges live only in a temporary folder for under a second, too short to wait for
        # on a loaded machine: the watcher missed it once in a two-worker run)
        return (run / "1-prune" / "entry.json").exists()

    kill_once_written([*cmd, "--resume"], quantizing, "quantization", env=env)
    assert (run / "1-prune" / "entry.json").is_file() and not (run / "2-quantize" / "entry.json").exists()
    assert _mtimes(run / "1-prune" / "step-1") == step1  # step 1 was reloaded, not pruned and trained again
    prune = _mtimes(run / "1-prune")

    code, out, err = cli(capsys, *args, "--resume")
    assert code == 0, err
    assert "1-prune: finished earlier, reusing" in out and "stage 2/2: quantize" in out
    assert "stage 1/2" not in out and "prune step" not in out
    assert _mtimes(run / "1-prune") == prune
    assert sorted(p.name for p in runs.iterdir()) == ["run", "run-2"]  # resumed in place
    steps = json.loads((run / "stages.json").read_text())["stages"][1]["info"]["steps"]
    assert [s["step"] for s in steps] == [1, 2]
    _same_as(run, runs, reference)


@pytest.mark.slow
def test_compress_killed_during_qat_resumes_from_its_last_epoch(tmp_path, capsys):
    """No uninterrupted reference here (torchao's convert_pt2e alone costs ~15 s): the resumed run keeps the killed
    run's epoch 1 as it was logged (a retrained epoch would log another images_per_s) and trains epoch 2 only."""
    model, runs = _digits_model(tmp_path / "m.safetensors"), tmp_path / "runs"
    args = ["compress", str(model), "compress.stages=[{name: qat, epochs: 2}]", f"output.dir={runs}", *COMMON]
    run = runs / "run"

    kill_once_written([sys.executable, "-m", "edgedistill", *args], run / "1-qat" / "last.pt", "QAT",
                      env=_env(tmp_path))
    assert not (run / "1-qat" / "entry.json").exists() and (run / "0-input" / "entry.json").is_file()
    before, epoch1 = _mtimes(run / "0-input"), (run / "1-qat" / "metrics.jsonl").read_text()
    assert [json.loads(x)["epoch"] for x in epoch1.splitlines()] == [1]

    code, out, err = cli(capsys, *args, "--resume")
    assert code == 0, err
    assert "0-input: finished earlier, reusing" in out and "resuming from epoch 1/2" in out
    assert _mtimes(run / "0-input") == before
    lines = (run / "1-qat" / "metrics.jsonl").read_text().splitlines(keepends=True)
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2] and lines[0] == epoch1
    assert sorted(p.name for p in runs.iterdir()) == ["run"]  # resumed in place
    qat = json.loads((run / "stages.json").read_text())["stages"][-1]
    assert qat["stage"] == "qat" and qat["precision"] == "int8" and qat["info"]["epochs"] == 2
    # the int8 file matches its PyTorch int8 graph (top-1 agreement is not gated: an untrained net's logits tie)
    assert qat["info"]["qat_parity"]["max_abs_diff"] < 0.1
    assert not (run / "1-qat" / "last.pt").exists()  # the entry replaced the optimizer state
