"""Hostile inputs to the newer commands (compare, search, audit, explain, the teachers) through the real CLI
(issue 26): one line naming the flag or key, exit 2, no traceback, nothing written, refused before any work."""

import json
import time
from pathlib import Path

import pytest
from PIL import Image
from conftest import cli

from edgedistill.recipes import recipe_path

BOMB = "{" + ", ".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9 if p else ['x'] * 9)}]"
                       for p, c in zip(["", "a", "b", "c", "d", "e", "f"], "abcdefg")) + ", kd: {t: *g}}"
DIGITS = ["data.max_train_samples=64", "data.max_val_samples=64", "data.workers=0"]
F = "{d}"  # placeholder for the per-test folder


@pytest.fixture(scope="module")
def warm():
    """Imports paid once, outside the timed refusals (a subprocess would pay them every time)."""
    import edgedistill.commands.compare
    import edgedistill.commands.search
    import edgedistill.pipeline  # noqa: F401


@pytest.fixture
def files(tmp_path, warm):
    d = tmp_path / "in"
    d.mkdir()
    (d / "run").mkdir()  # not a finished run: the checks below must fire before it is read
    (d / "dangling").symlink_to(d / "gone")
    clip = d / "clip"
    clip.mkdir()
    (clip / "config.json").write_text("{model_type: clip,")  # not JSON
    dup = d / "dupclip"
    dup.mkdir()
    (dup / "config.json").write_text('{"model_type": "clip", "text_config": {}, "model_type": "bert"}')
    seg = d / "segsize"  # five scenes; every mask one row taller than its image
    for sub, size in (("images", (8, 8)), ("masks", (8, 9))):
        (seg / sub).mkdir(parents=True)
        for i in range(5):
            Image.new("L" if sub == "masks" else "RGB", size).save(seg / sub / f"{i}.png")
    return d


SEG = str(Path(__file__).resolve().parents[1] / "recipes" / "seg-demo.yaml")
C, S = ["compare", str(recipe_path("compare-demo"))], ["search", str(recipe_path("search-demo"))]
SWEEP = "compare.sweep={distill.terms.0.T: [" + ", ".join(str(i + 1) for i in range(100)) + "]}"
BIG_SPACE = ("search.space.families={cifar_resnet: {blocks: [" + ", ".join(
    f"{a}-{b}-{c}" for a in range(1, 5) for b in range(1, 5) for c in range(1, 5))
    + "], widths: [" + ", ".join(f"16-{16 + i}-32-64" for i in range(40)) + "]}}")  # 64 × 40 = 2,560 points
CASES = [  # (id, args, fragments the one line must hold)
    ("arms-parse-error", [*C, "--arms", "{kd: {}, alone: {distill.terms: []"], ["--arms", "not valid YAML"]),
    ("arms-alias-bomb", [*C, "--arms", BOMB], ["--arms", "aliases"]),
    ("arms-duplicate", [*C, "--arms", "{alone: {distill.terms: []}, kd: {}, kd: {distill.terms.0.T: 1}}"],
     ["--arms", "duplicate key 'kd'", "columns"]),
    ("arms-not-mapping", [*C, "--arms", "{a: {}, b: 5}"], ["compare.arms.b", "dictionary", "got 5"]),
    ("seeds-negative", [*C, "--seeds", "-3"], ["compare.seeds", "got -3", "greater than or equal to 1"]),
    ("workers-0", [*C, "--workers", "0"], ["compare.workers", "got 0"]),
    ("seeds-huge", [*C, "--seeds", "100000"], ["compare.seeds", "300,000 runs", "at most 200"]),
    ("sweep-huge", [*C, SWEEP], ["compare.sweep", "100 sweep points", "at most 200"]),
    ("compare-storage-no-dir", [*C, "--storage", "/nonexistent/dir/study.journal"], ["--storage", "does not exist"]),
    ("search-storage-no-dir", [*S, "--storage", "/nonexistent/dir/study.journal"],
     ["search.storage", "does not exist"]),
    ("storage-bad-port", [*C, "--storage", "postgresql://x@host:notaport/db"], ["--storage", "port must be a number"]),
    ("storage-password", [*C, "--storage", "postgres+nodriver://alice:S3CRETPW@db.example/x"],
     ["--storage", "alice:***@db.example", "'postgres+nodriver'"]),
    ("storage-scheme", [*C, "--storage", "redis://db.example/x"], ["--storage", "unknown database or driver 'redis'"]),
    ("output-dangling-symlink", ["demo", f"output.dir={F}/dangling"], ["output.dir", "symbolic link", "gone"]),
    ("compare-output-dangling", [*C, f"output.dir={F}/dangling"], ["output.dir", "symbolic link"]),
    ("search-no-objectives", [*S, "search.objectives=[]"], ["search.objectives", "at least 1"]),
    ("search-space-huge", [*S, BIG_SPACE], ["search.space", "2,565 candidates", "2,560 family points", "at most 2,000"]),
    ("clip-config-not-json", ["demo", f"teacher.model=hf-clip:{F}/clip"], ["config.json", "not valid JSON"]),
    ("clip-config-duplicate", ["demo", f"teacher.model=hf-clip:{F}/dupclip"], ["config.json", "duplicate key"]),
    ("energy-budget-inf", ["demo", "deploy.budget.energy_mj=.inf"], ["deploy.budget.energy_mj", "finite"]),
    ("term-weight-nan", ["demo", "distill.terms=[{name: kd, weight: .nan}]"], ["distill.terms.0.weight", "finite"]),
    ("output-name-newline", ["demo", 'output.name="a\\nb"'], ["output.name", "control characters", "\\n"]),
    ("levels-not-perturbed", ["audit", f"{F}/run", "--perturb", "blur", "--levels", "noise=0.1"],
     ["--levels", "noise", "leaves out"]),
    ("audit-alone-itself", ["audit", f"{F}/run", "--alone", f"{F}/run/"], ["--alone", "RUN_DIR itself"]),
    ("explain-train-lr", ["explain", f"{F}/run", "train.lr=5"], ["train.lr", "changes nothing", "explain.*"]),
    ("explain-fresh-huge", ["explain", f"{F}/run", "explain.fresh=10000000"], ["explain.fresh", "1000000"]),
    ("explain-fresh-memory", ["explain", f"{F}/run", "explain.fresh=1000000", "explain.components=64"],
     ["explain.fresh", "explain.components=64", "at most"]),
    # a further pass over deploy, eval and task: inputs
    ("deploy-unread-override", ["deploy", f"{F}/run", "train.lr=5"], ["train.lr", "changes nothing", "deploy.*"]),
    ("eval-unread-override", ["eval", f"{F}/run", "train.lr=5"], ["train.lr", "changes nothing", "data.*"]),
    ("term-temperature-inf", ["demo", "distill.terms=[{name: kd, weight: 1, T: .inf}]"],
     ["distill.terms.0", "T must be a finite number"]),
    ("seg-temperature-inf", ["run", SEG, "distill.terms=[{name: cwd, weight: 1, T: .inf}]"],
     ["distill.terms.0", "T must be a finite number"]),
    ("seg-synthetic-huge", ["run", SEG, "segmentation.synthetic_images=100000"],
     ["segmentation.synthetic_images=100,000", "409,600,000 pixels", "at most 100,000,000"]),
    ("seg-mask-size", ["run", SEG, "data.source=seg-masks", f"data.root={F}/segsize", "segmentation.num_classes=3"],
     ["data.root", "9 px but its image", "8×8"]),
    ("seg-classification-method", ["run", SEG, "distill.terms=[{name: crd, weight: 1}]"],
     ["crd", "does not apply to task=segmentation", "pixel_kd"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_command_input_is_one_line_exit_2_and_writes_nothing(case, files, tmp_path, capsys, monkeypatch):
    _, args, fragments = case
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # recipes write to runs/ under the current folder
    before = sorted(p.name for p in files.rglob("*"))
    t0 = time.process_time()  # CPU time: refused before any work, however loaded the machine
    got, out, err = cli(capsys, *[a.replace(F, str(files)) for a in args], *([] if args[0] != "demo" else DIGITS))
    seconds = time.process_time() - t0
    assert got == 2, out + err
    assert "Traceback" not in out + err and "pydantic.dev" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 1000, err[:2000]
    for f in fragments:
        assert f in lines[0], lines[0]
    assert "S3CRETPW" not in out + err
    assert sorted(p.name for p in files.rglob("*")) == before
    assert not any(work.iterdir()), list(work.rglob("*"))  # no comparison, search or run folder
    assert seconds < 10, seconds


def test_a_sample_of_a_huge_sweep_grid_is_drawn_without_listing_the_grid():
    from edgedistill.analysis.plan import make_plan
    from edgedistill.recipe import load_recipe

    values = "[" + ", ".join(str(i + 1) for i in range(100)) + "]"
    sweep = f"compare.sweep={{distill.terms.0.T: {values}, distill.terms.0.weight: {values}, train.lr: {values}}}"
    t0 = time.process_time()  # CPU time (a loaded machine stretches wall time); listing 10^6 points takes longer
    plan = make_plan(load_recipe(recipe_path("compare-demo"), [sweep, "compare.sweep_samples=3"]), "alone")
    assert time.process_time() - t0 < 2
    assert len(plan.arms) == 4 and len(plan.cells) == 12


@pytest.mark.parametrize("cmd", ["compare", "search"])
def test_workers_beyond_the_memory_available_are_refused_before_any_folder(cmd, tmp_path, capsys, monkeypatch):
    from edgedistill import memory_estimate as memory

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(memory, "available_host", lambda: 2 * memory.GB)
    got, _, err = cli(capsys, *(C if cmd == "compare" else S), "--workers", "8", *DIGITS)
    assert got == 2 and "Traceback" not in err, err
    assert f"{cmd}.workers" in err and "8 workers run" in err and "at most 3 workers" in err, err
    assert not any(tmp_path.iterdir())


def test_a_cuda_device_without_cuda_is_named_as_the_flag(files, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    for cmd in ("audit", "explain"):
        got, _, err = cli(capsys, cmd, files / "run", "--device", "cuda")
        assert got == 2 and "--device" in err and "train.device" not in err, err


def test_duplicate_keys_in_a_one_line_flag_name_both_columns():
    from edgedistill.errors import UserError
    from edgedistill.usertext import parse_json, parse_mapping

    with pytest.raises(UserError, match="columns 2 and 8"):
        parse_mapping("{a: 1, a: 2}", "--arms")
    with pytest.raises(UserError, match=r"config.json: duplicate key 'x'"):
        parse_json('{"x": 1, "x": 2}', "config.json")
    with pytest.raises(UserError, match="not valid JSON: Expecting value at line 1, column 1"):
        parse_json("nope", "config.json")
    assert parse_json('{"a": [1, {"b": 2}]}', "f") == {"a": [1, {"b": 2}]}


def test_the_password_of_a_storage_url_is_masked_in_every_message():
    from edgedistill.jobs.runs import _hide, masked

    assert masked("postgresql://alice:S3CRET@h:5432/db") == "postgresql://alice:***@h:5432/db"
    assert masked("postgresql://alice@h/db") == "postgresql://alice@h/db"
    assert _hide("password S3CRET refused", "postgresql://alice:S3CRET@h/db") == "password *** refused"


def test_output_name_keeps_ordinary_names(tmp_path):
    from edgedistill.recipe import build_recipe

    assert build_recipe({}, ["output.name=run-2 (kd, T=4)"]).output.name == "run-2 (kd, T=4)"
    assert Path(str(tmp_path)).exists()


def test_two_seeds_with_equal_differences_read_not_enough_seeds_and_stay_quiet(recwarn):
    """Issue 26: 2 seeds, both +8.33: scipy's t says p = 0 (and warns); the verdict must not be "better"."""
    from edgedistill.analysis import stats

    r = stats.paired([90.0, 91.66666666666667], [81.66666666666667, 83.33333333333334])
    assert r["t_p"] is None and r["diff_ci"] == [None, None] and r["test"] == "Wilcoxon"
    assert r["p"] == pytest.approx(0.5) and r["p"] != 0
    assert stats.verdict(r["diff"], r["p"], 0.05, n=r["n"], test=r["test"]) == "not enough seeds"
    assert not [w for w in recwarn.list if issubclass(w.category, RuntimeWarning)]
    six = stats.paired([2.0] * 6, [1.0] * 6)  # six equal differences: Wilcoxon's exact p 0.031 decides
    assert six["t_p"] is None and stats.verdict(six["diff"], six["p"], 0.05, n=6, test=six["test"]) == "better"
    three = stats.paired([2.0, 3.0, 4.5], [1.0, 1.5, 2.0])
    assert stats.verdict(three["diff"], 0.01, 0.05, n=3, test=three["test"]) == "better"
    assert stats.verdict(1.0, 0.01, 0.05, n=2) == "not enough seeds"  # 1 degree of freedom: never a verdict


@pytest.mark.slow
def test_a_corrupt_image_among_unlabeled_ones_stops_the_run_naming_it(tmp_path, capsys, monkeypatch):
    """data.bad_images=fail (the default) holds for unlabeled images as for labelled ones; skip still skips."""
    from PIL import Image

    from edgedistill.data.unlabeled import UnlabeledImages

    folder = tmp_path / "unlabeled"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / f"ok{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    monkeypatch.chdir(tmp_path)
    got, _, err = cli(capsys, "demo", f"data.unlabeled={folder}", *DIGITS)
    assert got == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "data.unlabeled" in err and "broken.png" in err and "data.bad_images=skip" in err, err
    assert not (tmp_path / "runs").exists()
    skipping = UnlabeledImages(folder, bad_images="skip")
    assert len(skipping) == 3 and skipping.skipped == 1
    # skip: the run goes on, and metrics.json and the console count and name the skipped unlabeled file
    got, out, err = cli(capsys, "demo", f"data.unlabeled={folder}", "data.bad_images=skip", *DIGITS,
                        "data.image_size=8", "train.epochs=1", "teacher.epochs=1", "eval.latency_runs=2", "eval.warmup_runs=0",
                        "eval.baseline=false")
    assert got == 0, err
    metrics = json.loads(next((tmp_path / "runs").glob("*/metrics.json")).read_text())
    assert metrics["skipped_images"] == {"count": 1, "files": [str(folder / "broken.png")]}
    assert "skipped 1 unreadable image(s)" in out and "broken.png" in out


def test_a_tracker_that_cannot_start_leaves_no_run_folder(tmp_path, capsys):
    import socket

    pytest.importorskip("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    got, _, err = cli(capsys, "demo", f"output.dir={tmp_path}/runs", "track.tensorboard=false", "track.mlflow=true",
                      f"track.mlflow_uri=http://127.0.0.1:{port}", *DIGITS)
    assert got == 2 and "track.mlflow_uri" in err and "Traceback" not in err, err
    assert not any((tmp_path / "runs").iterdir())  # the folder made for the run is gone again


def test_a_resumed_comparison_with_a_changed_recipe_key_blames_the_key_not_an_arm(tmp_path):
    from edgedistill.analysis.plan import make_plan, place
    from edgedistill.commands.compare import _write_cells
    from edgedistill.errors import UserError
    from edgedistill.recipe import load_recipe

    folder = tmp_path / "cmp"
    plan = make_plan(load_recipe(recipe_path("compare-demo"), []))
    place(plan, folder)
    _write_cells(plan, folder, resume=False)
    changed = make_plan(load_recipe(recipe_path("compare-demo"), ["train.epochs=7"]))
    place(changed, folder)
    with pytest.raises(UserError, match=r"^train.epochs: the recipe differs .* train.epochs changed") as e:
        _write_cells(changed, folder, resume=True)
    assert "compare.arms" not in str(e.value)


def test_search_summary_counts_repeats_apart_and_eta_never_guesses():
    from edgedistill.commands.search import eta_text, summary_line

    rows = [{"state": "trained", "error": ""}, {"state": "trained", "error": "repeat: its finished run reused"},
            {"state": "infeasible", "error": ""}]
    assert summary_line(rows) == "3 trials: 1 trained, 1 repeated (run reused), 1 infeasible"
    assert eta_text(6, 6, 6, 10.0) == "done"  # a resumed finished search
    assert eta_text(6, 3, 3, 1e6) == "ETA –"  # nothing counted this session yet
    assert eta_text(6, 4, 2, 120.0) == "ETA 2.0 min"


def test_an_infinite_teacher_weight_is_refused_naming_it(tmp_path, capsys, monkeypatch):
    """Two real trained-teacher files: before the check, weight .inf trained and silently became teacher 0."""
    import yaml

    from edgedistill.models import create_model, save_model

    meta = {"model": "cifar:resnet8", "num_classes": 10, "class_names": [str(i) for i in range(10)],
            "image_size": 16, "mean": [0.5] * 3, "std": [0.25] * 3}
    members = []
    for i, weight in enumerate([".inf", "1.0"]):
        path = save_model(tmp_path / f"t{i}.safetensors", create_model("cifar:resnet8", 10), meta)
        members.append({"model": f"file:{path}", "weight": weight})
    recipe = tmp_path / "teachers.yaml"
    text = yaml.safe_dump({"data": {"source": "digits", "image_size": 16}, "teachers": {"models": members},
                           "train": {"epochs": 1}, "output": {"dir": str(tmp_path / "runs")}})
    recipe.write_text(text.replace("'.inf'", ".inf").replace("'1.0'", "1.0"))
    got, _, err = cli(capsys, "run", recipe, *DIGITS)
    assert got == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "teachers.models.0.weight" in err and "finite" in err and "inf" in err, err
    assert not (tmp_path / "runs").exists()


def test_strict_never_passes_a_budget_nothing_here_measured(tmp_path, capsys, monkeypatch):
    """deploy.target=arm64 on x86: latency (and an energy budget with no figure) are not measurable; the table must not
    read pass and --strict must not exit 0 (it cannot prove the budgets)."""
    import json

    import edgedistill.pipeline
    from edgedistill.deploy.budget import STRICT_EXIT_CODE, check_budgets, overall, strict_failure
    from edgedistill.recipe.compress import BudgetConfig, DeployConfig

    deploy = DeployConfig(target="arm64", budget=BudgetConfig(latency_ms=5, energy_mj=1, energy_estimates="fail"))
    final = {"deploy_latency_ms": 1.0, "top1": 90.0}  # measured on this x86 host, not on the target
    rows = check_budgets(deploy.budget, final, {"top1": 91.0}, deploy, latency_elsewhere="arm64 is not this CPU")
    assert [r["passed"] for r in rows] == [None, None] and overall(rows) == "not measurable here"
    assert strict_failure({"budgets": rows, "budgets_passed": True}) == \
        "budget not measurable here: latency_ms, energy_mj"
    rows += check_budgets(BudgetConfig(max_accuracy_drop=2), final, {"top1": 91.0}, deploy)
    assert overall(rows) == "pass (2 not measurable)"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps({"compress": {"budgets": rows, "budgets_passed": True}}))
    monkeypatch.setattr(edgedistill.pipeline, "run", lambda recipe, console: run_dir)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {source: digits}\n")
    code, out, err = cli(capsys, "run", str(recipe), "--strict")
    assert code == STRICT_EXIT_CODE and "not measurable here: latency_ms, energy_mj" in err + out
    assert cli(capsys, "run", str(recipe))[0] == 0
