"""edgedistill compare: bad input exits 2 before any work; a killed comparison resumes without recomputing."""

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import kill_once_written

from edgedistill.commands.compare import _write_cells
from edgedistill.analysis.plan import make_plan, place
from edgedistill.errors import UserError
from edgedistill.recipe import build_recipe

TINY = {
    "data": {"source": "digits", "image_size": 16, "augment": "padcrop", "hflip": False, "workers": 0,
             "max_train_samples": 128, "max_val_samples": 64},
    "teacher": {"model": "cifar:resnet8", "epochs": 1},
    "student": {"model": "cifar:resnet8"},
    "train": {"epochs": 1, "batch_size": 32},
    "eval": {"latency_runs": 2, "warmup_runs": 0},
    "compare": {"arms": {"alone": {"distill.terms": []}, "kd": {}}, "seeds": 2},
}


def recipe(tmp_path: Path, **compare):
    data = json.loads(json.dumps(TINY))
    data["output"] = {"dir": str(tmp_path / "runs"), "name": "cmp"}
    data["compare"].update(compare)
    return data


@pytest.mark.parametrize(("compare", "arms", "needle"), [
    ({"seeds": 1}, None, "no interval or paired test is possible"),
    ({}, "{a: {}, b: {data.val_ratio: 0.3}}", "must share the data and validation images"),
    ({}, "{a: {}, b: {eval.split: test}}", "must share the data and validation images"),
    ({}, "{a: {}, b: {train.epoch: 3}}", "train.epoch: unknown key"),
    ({}, "{a: {}, b: {train.seed: 3}}", "what compare sets"),
    ({}, "kd,dkd", "not in the recipe's compare.arms"),
    ({}, "kd", "at least 2 arms"),
    ({"baseline": "nope"}, None, "compare.baseline='nope' is not an arm"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, compare, arms, needle):
    with pytest.raises(UserError, match=re.escape(needle)):
        make_plan(build_recipe(recipe(tmp_path, **compare)), arms)
    assert not (tmp_path / "runs").exists()


def test_unknown_metric_is_refused(tmp_path):
    with pytest.raises(UserError, match="unknown metric 'top7'"):
        build_recipe(recipe(tmp_path, metric="top7"))


@pytest.mark.slow
def test_cli_exits_2_with_the_cause(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(tmp_path)))
    res = subprocess.run([sys.executable, "-m", "edgedistill", "compare", str(path), "--seeds", "1"],
                         check=False, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "one run per arm has no spread" in res.stderr and "Traceback" not in res.stderr


def test_changed_arm_on_resume_is_refused(tmp_path):
    folder = tmp_path / "runs" / "cmp"
    plan = make_plan(build_recipe(recipe(tmp_path)))
    place(plan, folder)
    _write_cells(plan, folder, resume=False)
    changed = make_plan(build_recipe(recipe(tmp_path, arms={"alone": {"distill.terms": []}, "kd": {"train.lr": 0.1}})))
    place(changed, folder)
    with pytest.raises(UserError, match="arm 'kd' differs from the one this comparison started with"):
        _write_cells(changed, folder, resume=True)


def test_cells_written_by_an_older_version_still_resume(tmp_path):
    """A cell file without keys added since (their defaults change nothing) is the same arm; a changed value is not."""
    folder = tmp_path / "runs" / "cmp"
    plan = make_plan(build_recipe(recipe(tmp_path)))
    place(plan, folder)
    _write_cells(plan, folder, resume=False)
    cell = folder / "cells" / "kd-s0.yaml"
    old = yaml.safe_load(cell.read_text())
    old.pop("track")  # sections and keys a newer edgedistill added, at their defaults
    old["eval"].pop("pcr")
    cell.write_text(yaml.safe_dump(old))
    _write_cells(plan, folder, resume=True)  # accepted
    old["train"]["lr"] = 0.3
    cell.write_text(yaml.safe_dump(old))
    with pytest.raises(UserError, match="the recipe differs .*: train.lr changed"):
        _write_cells(plan, folder, resume=True)


def test_teacher_sharing_note(tmp_path):
    plan = make_plan(build_recipe(recipe(tmp_path)), "{alone: {distill.terms: []}, kd: {}, kd3: {train.epochs: 3}}")
    assert plan.notes == ["arm 'kd3' trains its own teacher per seed (its teacher.*/train.* differ)"]


@pytest.mark.slow
def test_killed_comparison_resumes_reusing_finished_runs(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(tmp_path)))
    cmd = [sys.executable, "-m", "edgedistill", "compare", str(path)]
    folder = tmp_path / "runs" / "cmp"
    first = folder / "runs" / "alone-s0" / "metrics.json"

    def second_started():  # one cell finished and the next one under way: the kill interrupts a run
        return first.exists() and any(p.name not in ("alone-s0", "teachers") for p in (folder / "runs").iterdir())

    kill_once_written(cmd, second_started, "comparison", timeout=300)
    mtime = first.stat().st_mtime_ns
    assert not (folder / "compare.json").exists()

    res = subprocess.run(cmd + ["--resume", "--workers", "2"], check=False, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "alone-s0: finished earlier" in res.stdout or "1 finished" in res.stdout
    assert first.stat().st_mtime_ns == mtime  # a finished run is never recomputed
    assert sorted(p.name for p in (folder / "runs").iterdir() if p.name != "teachers") == \
        ["alone-s0", "alone-s1", "kd-s0", "kd-s1"]  # each cell ran in one folder, none twice
    out = json.loads((folder / "compare.json").read_text())
    assert out["baseline"] == "alone" and len(out["units"]) == 2
    (c,) = out["comparisons"]
    assert (c["arm"], c["vs"]) == ("kd", "alone") and c["verdict"] == "not enough seeds"  # 2 pairs: no verdict
    assert c["mcnemar"]["n"] == 2 * 64 and out["arms"]["kd"]["churn"]["share"] is not None
    assert "Verdicts" in res.stdout and c["verdict"] in res.stdout
    html = (folder / "report.html").read_text()
    assert "<table>" in html and "data:image/png;base64," in html and "forest.png" not in html
    png = re.search(r'data:image/png;base64,([^"]+)', html).group(1)
    assert base64.b64decode(png)[:4] == b"\x89PNG"
    assert (folder / "runs" / "kd-s0" / "report.html").exists()  # every run writes one too
    assert len(list((folder / "runs" / "teachers").glob("*/model.safetensors"))) == 2  # one teacher per seed


def test_sweep_makes_arms_of_grid_points_and_a_random_sample(tmp_path):
    sweep = {"distill.terms.0.T": [1, 2, 4], "distill.terms.0.weight": [0.5, 1.0]}
    full = make_plan(build_recipe(recipe(tmp_path, sweep=sweep)), "alone")
    assert full.arms[0] == "alone" and len(full.arms) == 1 + 6 and "T=4,weight=0.5" in full.arms
    kd4 = next(c for c in full.cells if c.arm == "T=4,weight=0.5").recipe
    assert (kd4.distill.terms[0].params["T"], kd4.distill.terms[0].weight) == (4, 0.5)
    sample = make_plan(build_recipe(recipe(tmp_path, sweep=sweep, sweep_samples=3)), "alone")
    assert len(sample.arms) == 1 + 3 and set(sample.arms) < set(full.arms)
    assert make_plan(build_recipe(recipe(tmp_path, sweep=sweep, sweep_samples=3)), "alone").arms == sample.arms
    with pytest.raises(UserError, match="distill.terms.0.T: Input should be greater than 0"):
        make_plan(build_recipe(recipe(tmp_path, sweep={"distill.terms.0.T": [0, 1]})), "alone")


@pytest.mark.parametrize("keys", [1, 2])
def test_sweep_surface_chart(tmp_path, keys):
    from edgedistill.analysis import stats
    from edgedistill.report.sweep import sweep_chart

    rng = np.random.default_rng(0)
    pts = {f"T={t},w={w}": {"T": t, "w": w} for t in (1, 2, 4) for w in ((0.5, 1.0) if keys == 2 else (1.0,))}
    arms = {"alone": stats.describe([90.0, 91.0, 90.5])} | {a: stats.describe(rng.normal(91, 1, 3)) for a in pts}
    res = {"metric": "top1", "baseline": "alone", "arms": arms, "units": [[0, 0], [1, 0], [2, 0]],
           "sweep": {"keys": ["T", "w"][:keys], "points": pts}}
    assert sweep_chart(res, tmp_path / "s.png") and (tmp_path / "s.png").stat().st_size > 5000
    res["sweep"]["keys"] = ["T", "w", "x"]
    assert not sweep_chart(res, tmp_path / "t.png")


def test_bad_storage_url_exits_2_naming_it(tmp_path):
    from edgedistill.jobs.runs import open_storage

    with pytest.raises(UserError, match="is not a database URL"):
        open_storage("nosuchdb://x/y")
    with pytest.raises(UserError, match="cannot connect"):
        open_storage("postgresql://nobody@127.0.0.1:1/none")


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study_without_losing_or_repeating_a_run(tmp_path, postgres_url):
    """A real PostgreSQL server: the storage several machines would share; each run is taken exactly once."""
    import optuna
    from optuna.trial import TrialState

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(tmp_path)))
    res = subprocess.run([sys.executable, "-m", "edgedistill", "compare", str(path), "--storage", postgres_url,
                          "--workers", "2"], check=False, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    folder = tmp_path / "runs" / "cmp"
    assert not (folder / "study.journal").exists()
    study = optuna.load_study(study_name="compare-cmp", storage=postgres_url)
    done = [t.user_attrs["job"] for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert sorted(done) == ["alone-s0", "alone-s1", "kd-s0", "kd-s1"]  # none lost, none run twice
    assert not study.get_trials(states=(TrialState.WAITING, TrialState.RUNNING))
    assert json.loads((folder / "compare.json").read_text())["comparisons"][0]["arm"] == "kd"
