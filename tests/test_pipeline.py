import json
import os
import signal
import subprocess
import sys
import time

import pytest
from rich.console import Console

from edgedistill.pipeline import run
from edgedistill.recipe import load_recipe
from edgedistill.recipes import recipe_path
from edgedistill.commands.evaluate import evaluate_checkpoint

pytestmark = pytest.mark.slow


def quiet() -> Console:
    return Console(file=open(os.devnull, "w"))


def test_demo_end_to_end_and_teacher_reuse(tmp_path, tiny_overrides, capsys):
    recipe = load_recipe(recipe_path("demo"), tiny_overrides)
    run_dir = run(recipe)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["models"]) == {"teacher", "student_alone", "student"}
    for m in metrics["models"].values():
        assert 0 <= m["top1"] <= 100 and m["params"] > 0 and m["latency_ms_median"] > 0
    # agreement: the share of val images on which the saved student and teacher pick the same class
    from edgedistill.data import build_data, make_loader
    from edgedistill.evaluate import predict
    from edgedistill.models import load_model

    val = make_loader(build_data(recipe.data).held_out("val"), 64, train=False, workers=0)
    t_logits, s_logits = (predict(load_model(run_dir / n / "model.safetensors")[0], val)[0]
                          for n in ("teacher", "student"))
    same = 100.0 * float((t_logits.argmax(1) == s_logits.argmax(1)).double().mean())
    assert metrics["models"]["student"]["agreement"] == pytest.approx(same, abs=1e-6)
    assert metrics["models"]["teacher"]["params"] > metrics["models"]["student"]["params"]
    assert metrics["comparison"]["params_ratio"] > 1
    report = (run_dir / "report.md").read_text()
    assert "student (distilled)" in report and "training_curves.png" in report
    assert (run_dir / "training_curves.png").stat().st_size > 1000
    assert (run_dir / "accuracy_vs_latency.png").exists()
    assert "metric_suite.png" in report and (run_dir / "metric_suite.png").stat().st_size > 1000
    for stage in ("teacher", "student_alone", "student"):
        assert (run_dir / stage / "model.safetensors").exists()
        assert (run_dir / stage / "metrics.jsonl").read_text().count("\n") == 2
    # `edgedistill eval RUN_DIR` recomputes the student's numbers from the saved model and its metadata
    again = evaluate_checkpoint(str(run_dir), [], "val", tmp_path / "eval.json", quiet())
    assert again["top1"] == metrics["models"]["student"]["top1"]
    assert json.loads((tmp_path / "eval.json").read_text())["f1_macro"] == pytest.approx(again["f1_macro"])
    # the resolved recipe repeats the run
    assert load_recipe(run_dir / "recipe.yaml") == recipe
    capsys.readouterr()

    run_dir2 = run(recipe)
    assert run_dir2 != run_dir and run_dir2.name == "demo-2"
    assert "reusing the teacher" in capsys.readouterr().out
    m2 = json.loads((run_dir2 / "metrics.json").read_text())
    assert m2["models"]["teacher"]["top1"] == metrics["models"]["teacher"]["top1"]
    # same seed, same budget: a deterministic pipeline
    assert m2["models"]["student"]["top1"] == metrics["models"]["student"]["top1"]


def test_resume_after_sigkill_matches_uninterrupted(tmp_path, tiny_overrides):
    over = [o for o in tiny_overrides if not o.startswith(("output.dir", "train.epochs"))]
    over += ["train.epochs=4", "eval.baseline=false"]
    ref = run(load_recipe(recipe_path("demo"), over + [f"output.dir={tmp_path / 'ref'}"]), quiet())
    expected = json.loads((ref / "metrics.json").read_text())

    cmd = [sys.executable, "-m", "edgedistill", "demo", *over, f"output.dir={tmp_path / 'kill'}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "kill" / "demo" / "student" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and last.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "kill" / "demo" / "metrics.json").exists()

    res = subprocess.run(cmd + ["train.resume=true"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "resuming from epoch" in res.stdout
    got = json.loads((tmp_path / "kill" / "demo" / "metrics.json").read_text())
    for name in ("teacher", "student"):
        assert got["models"][name]["top1"] == expected["models"][name]["top1"]
        assert got["models"][name]["log_loss"] == pytest.approx(expected["models"][name]["log_loss"], abs=1e-6)
