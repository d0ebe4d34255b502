"""Resume never mixes two settings, the teacher store holds only pure teachers, every recipe's memory is bounded
before work, empty splits and zero losses are refused, and result files are written atomically with mode 0644."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from edgedistill.atomic import atomic_write_text
from edgedistill.engine import epoch_tags, fit
from edgedistill.errors import UserError
from edgedistill.memory_estimate import activation_bytes, check_memory
from edgedistill.models import create_model
from edgedistill.recipe import build_recipe, load_recipe
from edgedistill.recipes import recipe_path
from edgedistill.run.identity import check_resume, store_teacher, teacher_key

sys.path.insert(0, str(Path(__file__).parent))  # the helpers of the neighbouring test files
from conftest import kill_once_written
from test_cli import cli
from test_data import _tree
from test_engine import CFG, Classifier, loader


def _run_dir(tmp_path: Path, *overrides: str) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "recipe.yaml").write_text(build_recipe({}, list(overrides)).to_yaml())
    return run


def test_resume_refuses_each_key_that_changes_results_with_both_values(tmp_path):
    run = _run_dir(tmp_path)
    with pytest.raises(UserError) as e:
        check_resume(build_recipe({}, ["train.lr=0.2", "train.seed=5", "distill.terms.0.T=2"]), run)
    msg = str(e.value)
    assert "train.lr: 0.05 → 0.2" in msg and "train.seed: 0 → 5" in msg and "distill.terms.0.T: 4.0 → 2" in msg
    assert msg.startswith("train.resume:") and "\n" not in msg
    with pytest.raises(UserError, match=r"distill.terms.1.name: \(absent\) → \"at\""):
        check_resume(build_recipe({}, ["distill.terms=[{name: kd}, {name: at}]"]), run)


def test_resume_lists_keys_that_cannot_change_results(tmp_path):
    run = _run_dir(tmp_path)
    free = ["train.threads=1", "data.workers=0", "eval.latency_runs=3", "train.eval_every=2",
            "output.name=elsewhere", "train.resume=true", "compress.stages=[{name: quantize, mode: dynamic}]"]
    lines = check_resume(build_recipe({}, free), run)
    assert any(line.startswith("train.threads: null → 1") for line in lines)
    assert {line.split(":")[0] for line in lines} >= {"train.threads", "data.workers", "eval.latency_runs",
                                                     "train.eval_every", "output.name", "train.resume"}
    assert check_resume(build_recipe({}, []), tmp_path / "no-such-run") == []  # nothing started: nothing to check
    (run / "compress").mkdir()  # once compression started, its other settings are fixed too
    with pytest.raises(UserError, match="deploy.threads: 1 → 4"):
        check_resume(build_recipe({}, ["deploy.threads=4"]), run)


def test_fit_refuses_a_checkpoint_of_other_settings_and_records_every_epochs_tag(tmp_path):
    cfg = CFG.model_copy(update={"epochs": 2, "warmup_epochs": 0})
    fit(Classifier(), loader(), cfg.model_copy(update={"epochs": 1}), tmp_path, tag="aaa")
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(UserError, match="trained under other settings.*aaa.*bbb"):
        fit(Classifier(), loader(), cfg, tmp_path, resume=True, tag="bbb")
    assert (tmp_path / "last.pt").read_bytes() == before  # refused before writing
    fit(Classifier(), loader(), cfg, tmp_path, resume=True, tag="aaa")
    assert epoch_tags(tmp_path) == ["aaa", "aaa"]
    assert stat.S_IMODE((tmp_path / "metrics.jsonl").stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


def test_store_takes_only_a_teacher_whose_every_epoch_ran_under_its_key(tmp_path):
    final = tmp_path / "teacher.safetensors"
    final.write_bytes(b"weights")
    stored, logs = tmp_path / "teachers" / "k" / "model.safetensors", []
    assert not store_teacher(final, stored, ["k", "other"], "k", 2, logs.append)  # a mixed teacher
    assert not store_teacher(final, stored, ["k", None], "k", 2, logs.append)  # provenance unknown
    assert not store_teacher(final, stored, ["k"], "k", 2, logs.append)  # fewer epochs than the key says
    assert not stored.exists() and "not stored" in logs[0]
    assert store_teacher(final, stored, ["k", "k"], "k", 2, logs.append)
    assert stored.read_bytes() == b"weights"


def test_atomic_files_get_the_mode_a_plain_write_would(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]  # no temp file left


@pytest.mark.parametrize("overrides", [
    ["distill.ce_weight=0", "distill.terms=[]"],
    ["distill.ce_weight=0", "distill.terms=[{name: kd, weight: 0}, {name: at, weight: 0}]"],
])
def test_identically_zero_loss_is_refused(overrides):
    with pytest.raises(UserError, match="identically zero.*distill.ce_weight"):
        build_recipe({}, overrides)
    build_recipe({}, ["distill.ce_weight=0"])  # kd alone still teaches
    build_recipe({}, ["distill.ce_weight=0", "distill.terms=[]", "distill.scheme=online"])  # peers' KL


def test_image_size_and_batch_bounds_refuse_in_seconds(tmp_path, capsys):
    t0 = time.perf_counter()
    code, _, err = cli(capsys, "demo", "data.image_size=100000", f"output.dir={tmp_path}")
    assert code == 2 and "data.image_size" in err and "2048" in err and "Traceback" not in err
    code, _, err = cli(capsys, "demo", "train.batch_size=100000", f"output.dir={tmp_path}")
    assert code == 2 and "train.batch_size" in err and "65536" in err
    assert time.perf_counter() - t0 < 30 and not any(tmp_path.iterdir())  # seconds (a loaded CI box: slack)


def test_memory_estimate_refuses_what_cannot_fit_before_any_folder(tmp_path, capsys):
    t0 = time.perf_counter()
    code, out, err = cli(capsys, "demo", "data.image_size=2048", "train.batch_size=8192", f"output.dir={tmp_path}")
    assert code == 2, out + err
    assert "needs about" in err and "GB are available" in err and "train.batch_size=8192" in err
    assert time.perf_counter() - t0 < 30 and not any(tmp_path.iterdir())


def test_memory_estimate_scales_with_pixels_and_batch():
    model = create_model("cifar:resnet8", 10)
    small, large = activation_bytes(model, 32), activation_bytes(model, 64)
    assert large[0] == pytest.approx(4 * small[0], rel=0.01) and large[1] == 4 * small[1]  # all but the head
    assert next(model.parameters()).device.type == "cpu" and model.training  # the model is left as it was
    recipe = load_recipe(recipe_path("demo"))
    one = check_memory(recipe, None, model, 1000, torch.device("cpu"))
    two = check_memory(build_recipe(recipe.model_dump(mode="json"), ["train.batch_size=128"]), None, model,
                       1000, torch.device("cpu"))
    assert two.parts["training step"] > 1.9 * one.parts["training step"] - 1e6


def test_empty_val_folder_is_named_before_any_work(tmp_path, capsys):
    _tree(tmp_path / "data" / "train", {"a": 3, "b": 3})
    (tmp_path / "data" / "val").mkdir()
    args = ["demo", "data.source=imagefolder", f"data.root={tmp_path / 'data'}", f"output.dir={tmp_path / 'runs'}"]
    code, out, err = cli(capsys, *args)
    assert code == 2 and str(tmp_path / "data" / "val") in err and "holds no images" in err
    assert not (tmp_path / "runs").exists()  # nothing was written, no teacher epoch ran


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.slow
def test_killed_teacher_resumed_with_another_lr_is_refused_and_never_stored(tmp_path, tiny_overrides, capsys):
    """SIGKILL in the teacher stage; resuming with another train.lr exits 2 and writes nothing; a recipe.yaml
    edited by hand is caught by the checkpoint's per-epoch tags; only the honest resume stores the teacher."""
    over = [o for o in tiny_overrides if not o.startswith(("output.dir", "teacher.epochs", "train.epochs"))]
    over += ["teacher.epochs=4", "train.epochs=1", "eval.baseline=false", "data.max_train_samples=128",
             f"output.dir={tmp_path}"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    last = tmp_path / "demo" / "teacher" / "last.pt"
    kill_once_written([sys.executable, "-m", "edgedistill", "demo", *over], last, "run", timeout=240, env=env)
    run, store = tmp_path / "demo", tmp_path / "teachers"
    saved = (run / "recipe.yaml").read_text()
    before = _snapshot(run)

    code, out, err = cli(capsys, "demo", *over, "train.lr=0.2", "train.resume=true")  # in-process: no imports
    assert code == 2 and "train.lr: 0.05 → 0.2" in err and "Traceback" not in err, out + err
    assert _snapshot(run) == before and not store.exists()

    edited = yaml.safe_load(saved)  # a user who edits recipe.yaml to force the resume
    edited["train"]["lr"] = 0.2
    (run / "recipe.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    code, out, err = cli(capsys, "demo", *over, "train.lr=0.2", "train.resume=true")
    assert code == 2 and "trained under other settings" in err, out + err
    assert not store.exists() and last.read_bytes() == (run / "teacher" / "last.pt").read_bytes()

    (run / "recipe.yaml").write_text(saved)
    code, out, err = cli(capsys, "demo", *over, "eval.latency_runs=2", "train.resume=true")
    assert code == 0, out + err
    assert "eval.latency_runs: 3 → 2" in out and "resuming from epoch" in out
    key = teacher_key(load_recipe(run / "recipe.yaml"))
    assert epoch_tags(run / "teacher") == [key] * 4
    assert (store / key / "model.safetensors").read_bytes() == (run / "teacher" / "model.safetensors").read_bytes()
    for name in ("recipe.yaml", "report.md", "metrics.json", "teacher/metrics.jsonl"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o666 & ~_umask()
    assert json.loads((run / "metrics.json").read_text())["skipped_images"] == {"count": 0, "files": []}


@pytest.mark.slow
def test_skipped_images_are_named_in_metrics_and_report(tmp_path, capsys):
    _tree(tmp_path / "data" / "train", {"a": 8, "b": 8})
    _tree(tmp_path / "data" / "val", {"a": 2, "b": 2})
    bad = tmp_path / "data" / "train" / "b" / "broken.png"
    bad.write_bytes(b"not a png")
    code, out, err = cli(capsys, "demo", "data.source=imagefolder", f"data.root={tmp_path / 'data'}",
                         "data.bad_images=skip", "data.image_size=16", "teacher.model=cifar:resnet8",
                         "teacher.epochs=1", "train.epochs=1", "train.batch_size=8", "eval.baseline=false",
                         "eval.latency_runs=2", "eval.warmup_runs=0", "data.workers=0",
                         f"output.dir={tmp_path / 'runs'}")
    assert code == 0, err
    run = tmp_path / "runs" / "demo"
    assert json.loads((run / "metrics.json").read_text())["skipped_images"] == {"count": 1, "files": [str(bad)]}
    report = (run / "report.md").read_text()
    assert "Skipped 1 unreadable image" in report and str(bad) in report


def test_activation_estimate_leaves_no_hooks(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    activation_bytes(model, 8)
    assert all(not m._forward_hooks for m in model.modules())


def test_a_key_added_by_a_later_version_at_its_default_keeps_the_settings_tag():
    """Resuming a run across versions: a new key at its default changes nothing, so the tag must not change."""
    from pydantic import Field

    from edgedistill.recipe import Recipe, TrainConfig
    from edgedistill.run.identity import settings_tag, teacher_key

    class LaterTrain(TrainConfig):
        new_knob: float = 0.0

    class LaterRecipe(Recipe):
        train: LaterTrain = Field(default_factory=LaterTrain)

    d = {"data": {"source": "digits", "image_size": 16}, "teacher": {"model": "cifar:resnet8", "epochs": 2},
         "train": {"epochs": 3, "lr": 0.05}}
    now, later = Recipe.model_validate(d), LaterRecipe.model_validate(d)
    assert settings_tag(later) == settings_tag(now) and teacher_key(later) == teacher_key(now)
    changed = LaterRecipe.model_validate({**d, "train": {**d["train"], "new_knob": 1.0}})
    assert settings_tag(changed) != settings_tag(now) and teacher_key(changed) != teacher_key(now)
    assert settings_tag(Recipe.model_validate({**d, "train": {"epochs": 3, "lr": 0.1}})) != settings_tag(now)
