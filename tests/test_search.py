"""edgedistill search: cost first (infeasible never trained), flash trials through the pipeline, failures
recorded, resume after a kill, best.yaml an ordinary recipe; bad input exits 2 naming the key."""

import csv
import json
import subprocess
import sys

import pytest
import yaml
from conftest import cli, kill_once_written

from edgedistill.errors import UserError
from edgedistill.recipe import build_recipe, load_recipe


def recipe(tmp_path, **search):
    return {
        "data": {"source": "digits", "image_size": 16, "augment": "none", "hflip": False, "workers": 0,
                 "max_train_samples": 256, "max_val_samples": 96},
        "teacher": {"model": "cifar:resnet14", "epochs": 1},
        "student": {"model": "cifar:resnet8"},
        "distill": {"terms": [{"name": "kd", "weight": 1.0, "T": 4.0}]},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.05},
        "eval": {"baseline": False, "latency_runs": 2, "warmup_runs": 1},
        "output": {"dir": str(tmp_path / "runs"), "name": "s"},
        "search": {"space": {"models": ["cifar:resnet8", "cifar:resnet14"]}, "trials": 3, "flash": 0.5,
                   "min_steps": 2, "top_k": 1, "random_k": 1, "latency_runs": 3, **search},
    }


def write(tmp_path, **kw):
    data = recipe(tmp_path, **kw.pop("search", {}))
    for section, over in kw.items():
        data[section] = {**data.get(section, {}), **over}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def rows(folder):
    with open(folder / "trials.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_search_end_to_end_writes_table_chart_and_a_runnable_best_yaml(tmp_path, capsys):
    code, out, err = cli(capsys, "search", write(tmp_path, deploy={"budget": {"params": 150_000}}))
    assert code == 0, out + err
    folder = tmp_path / "runs" / "s"
    table = rows(folder)
    costs = json.loads((folder / "costs.json").read_text())["costs"]
    assert costs["cifar:resnet14@16"]["params"] > 150_000 > costs["cifar:resnet8@16"]["params"]  # all measured first
    over = [r for r in table if r["spec"] == "cifar:resnet14"]  # the sampler tried it: recorded, not trained
    assert over and all(r["state"] == "infeasible" and r["flash_top1"] == "" and int(r["params"]) > 150_000 for r in over)
    assert not any(p.name.startswith("cifar-resnet14") for p in (folder / "flash").iterdir() if p.is_dir())
    ok = next(r for r in table if r["spec"] == "cifar:resnet8")
    assert ok["state"] == "trained" and 0 <= float(ok["flash_top1"]) <= 100 and float(ok["latency_fp32_ms"]) > 0
    assert ok["pareto"] == "True"
    assert (folder / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert "Proxy trust" in (folder / "report.md").read_text() and (folder / "report.html").exists()
    flash_recipe = load_recipe(next((folder / "flash").glob("cifar-resnet8-*.yaml")))
    assert flash_recipe.distill.teacher_cache and flash_recipe.teacher.weights is not None  # one teacher, cached
    assert len(list((folder / "teachers").glob("*/model.safetensors"))) == 1
    best = load_recipe(folder / "best.yaml")
    assert best.student.model == "cifar:resnet8" and best.teacher.weights == flash_recipe.teacher.weights
    code, out, err = cli(capsys, "run", folder / "best.yaml", "train.epochs=1", f"output.dir={tmp_path / 'b'}")
    assert code == 0, out + err
    m = json.loads(next((tmp_path / "b").glob("*/metrics.json")).read_text())
    assert m["models"]["student"]["model"] == "cifar:resnet8"


def test_no_feasible_candidate_exits_2_naming_the_smallest(tmp_path, capsys):
    code, out, err = cli(capsys, "search", write(tmp_path, deploy={"budget": {"params": 1000}}))
    assert code == 2, out + err
    assert "cifar:resnet8" in err and "params" in err and "deploy.budget" in err
    assert not (tmp_path / "runs" / "s" / "flash").exists()  # stopped after measuring: nothing trained


@pytest.mark.slow
def test_crashing_trial_is_recorded_failed_and_the_study_goes_on(tmp_path, capsys, monkeypatch):
    from edgedistill.search import study

    real = study.run_candidate

    def crash_on_resnet14(recipe, cand, *a, **kw):
        if cand.spec == "cifar:resnet14":
            raise RuntimeError("boom in resnet14")
        return real(recipe, cand, *a, **kw)

    monkeypatch.setattr(study, "run_candidate", crash_on_resnet14)
    code, out, err = cli(capsys, "search", write(tmp_path, search={"trials": 4, "top_k": 0, "random_k": 0,
                                                                   "sampler": "random"}))
    assert code == 0, out + err
    table = rows(tmp_path / "runs" / "s")
    failed = [r for r in table if r["state"] == "failed"]
    assert failed and all("boom in resnet14" in r["error"] for r in failed)
    assert any(r["state"] == "trained" and r["spec"] == "cifar:resnet8" for r in table)
    assert "boom in resnet14" in (tmp_path / "runs" / "s" / "report.md").read_text()


@pytest.mark.parametrize(("over", "key"), [
    ({"search": {"space": {"models": []}}}, "search.space"),
    ({"search": {"sampler": "anneal"}}, "search.sampler"),
    ({"search": {"storage": "nosuchdb://x/y"}}, "search.storage"),
    ({"search": {"space": {"models": ["nosource:net"]}}}, "search.space.models"),
])
def test_bad_input_exits_2_naming_the_key(tmp_path, capsys, over, key):
    code, out, err = cli(capsys, "search", write(tmp_path, **over))
    assert code == 2 and key in err and "Traceback" not in err, out + err
    assert not (tmp_path / "runs" / "s").exists()


def test_unknown_family_or_knob_is_refused(tmp_path):
    from edgedistill.search.space import resolve_space

    with pytest.raises(UserError) as e:
        resolve_space(build_recipe(recipe(tmp_path, space={"families": {"nosuchfamily": {"width": [1.0]}}})))
    assert e.value.key.startswith("search.space.families")


def test_botorch_without_its_packages_exits_2():
    pytest.importorskip("optuna")
    try:
        import botorch  # noqa: F401
        import optuna_integration  # noqa: F401
        pytest.skip("botorch is installed here")
    except ImportError:
        pass
    from edgedistill.search.study import make_sampler

    with pytest.raises(UserError, match="optuna-integration") as e:
        make_sampler(build_recipe({"search": {"sampler": "botorch"}}), False)
    assert e.value.key == "search.sampler"


def test_flash_budget_and_rank_correlation():
    from edgedistill.search.trials import flash_budget
    from edgedistill.search.trust import correlate

    r = build_recipe({"train": {"epochs": 10, "batch_size": 32}, "search": {"flash": 0.05, "min_steps": 3}})
    f = flash_budget(r, 320)  # 10 steps per epoch, 100 in full, 5% = 5 steps: under one epoch
    assert (f.steps, f.epochs, f.max_train_samples, f.full_steps) == (5, 1, 160, 100)
    f = flash_budget(build_recipe({"train": {"epochs": 10, "batch_size": 32}, "search": {"flash": 0.3}}), 320)
    assert (f.steps, f.epochs, f.max_train_samples) == (30, 3, None)
    same = correlate([1, 2, 3, 4, 5, 6], [10, 20, 30, 40, 50, 60], rounds=200)
    assert same["spearman"]["value"] == pytest.approx(1.0) and same["trusted"] and "can be trusted" in same["verdict"]
    reversed_ = correlate([1, 2, 3, 4, 5, 6], [60, 50, 40, 30, 20, 10], rounds=200)
    assert reversed_["kendall"]["value"] == pytest.approx(-1.0) and not reversed_["trusted"]
    assert "not measured" in correlate([1, 2], [2, 1])["verdict"]


@pytest.mark.slow
def test_killed_search_resumes_keeping_finished_trials(tmp_path):
    path = write(tmp_path, search={"trials": 3, "top_k": 0, "random_k": 0, "sampler": "random"})
    cmd = [sys.executable, "-m", "edgedistill", "search", str(path)]
    folder = tmp_path / "runs" / "s"
    kill_once_written(cmd, folder / "teacher-cache", "search", timeout=300)  # first flash trial started
    assert not (folder / "trials.csv").exists()
    res = subprocess.run(cmd + ["--resume"], check=False, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    table = rows(folder)
    killed = [r for r in table if r["state"] == "killed"]
    assert len(killed) == 1 and "enqueued again" in killed[0]["error"]
    assert any(r["state"] == "trained" and r["spec"] == killed[0]["spec"] for r in table)  # rerun, not lost
    assert sorted(p.name for p in (folder.parent).iterdir()) == ["s"]  # resumed in place, no s-2
    assert len(list((folder / "teachers").glob("*/model.safetensors"))) == 1


def test_family_space_points_round_trip_through_optuna_and_create_model(tmp_path):
    import optuna

    from edgedistill.models import create_model
    from edgedistill.search.cost import measure_candidate
    from edgedistill.search.space import resolve_space

    r = build_recipe(recipe(tmp_path, space={
        "models": ["cifar:resnet8"], "image_size": [16, 12],
        "families": {"cifar_resnet": {"blocks": ["1-1-1", [2, 1, 1]], "widths": ["8-8-16-32"]}}}))
    space = resolve_space(r)
    cands = space.candidates()
    assert len(cands) == 3 * 2 and cands[2].spec == "arch:cifar_resnet,blocks=1-1-1,widths=8-8-16-32"
    study = optuna.create_study(directions=["maximize", "minimize"])
    for c in cands:
        study.enqueue_trial(space.params_of(c))
    assert [space.suggest(study.ask()) for _ in cands] == cands  # params ↔ candidate, both ways
    for c in cands[::2]:
        assert create_model(c.spec, 10)(__import__("torch").zeros(1, 3, c.image_size, c.image_size)).shape == (1, 10)
    cost = measure_candidate(cands[2], r, 10, runs=2)
    assert cost["params"] < 30_000 and cost["latency_fp32_ms"] > 0 and cost["size_mb"] == cost["size_fp32_mb"]
    from edgedistill.search.report import best_recipe

    text = best_recipe(r, cands[2].spec, 12, None)
    again = build_recipe(yaml.safe_load(text))
    assert (again.student.model, again.data.image_size) == (cands[2].spec, 12) and again.output.name == "s-best"


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study_without_losing_or_repeating_a_trial(tmp_path, postgres_url):
    """A real PostgreSQL server (what several machines would share): two processes run the study; every trial
    ends in a final state once, and no candidate is trained twice."""
    import optuna
    from optuna.trial import TrialState

    db = f"{postgres_url.rsplit('/', 1)[0]}/search_{tmp_path.name[-8:].replace('-', '_')}"
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:  # a database of its own per test
        conn.execute(f"CREATE DATABASE {db.rsplit('/', 1)[1]}")
    path = write(tmp_path, search={"trials": 3, "top_k": 0, "random_k": 0, "sampler": "random",
                                   "space": {"models": ["cifar:resnet8", "cifar:resnet14", "cifar:resnet20"]}})
    res = subprocess.run([sys.executable, "-m", "edgedistill", "search", str(path), "--storage", db, "--workers", "2"],
                         check=False, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    folder = tmp_path / "runs" / "s"
    assert not (folder / "study.journal").exists() and (folder / "logs" / "worker-1.log").exists()
    study = optuna.load_study(study_name="search-s", storage=db)
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]  # none lost
    assert len({t.number for t in trials}) == len(trials)
    table = rows(folder)
    assert {r["spec"] for r in table if r["state"] == "trained"} and not [r for r in table if r["state"] == "failed"]
    runs = sorted(p.name for p in (folder / "flash").iterdir() if p.is_dir())
    assert runs and not [n for n in runs if n.rsplit("-", 1)[-1].isdigit() and n.rsplit("-", 1)[0] in runs]  # no x-2
    assert all((folder / "flash" / n / "metrics.json").exists() for n in runs)  # every started run finished


def test_trial_recipe_takes_the_cpu_loader_the_shared_teacher_cache_needs(tmp_path):
    """device_resident draws its own crops on the device; the cache holds the CPU draws: trials turn it off."""
    from edgedistill.search.space import Candidate
    from edgedistill.search.trials import candidate_recipe, flash_budget

    base = build_recipe({"data": {"source": "digits", "image_size": 16, "augment": "padcrop", "device_resident": True},
                         "train": {"epochs": 4, "batch_size": 32}})
    cand = Candidate("cifar:resnet8", 16)
    r = candidate_recipe(base, cand, None, tmp_path / "flash", flash_budget(base, 320))
    assert r.distill.teacher_cache and not r.data.device_resident and r.data.augment == "padcrop"
    plain = build_recipe({"data": {"source": "digits", "image_size": 16, "augment": "none", "device_resident": True}})
    assert candidate_recipe(plain, cand, None, tmp_path / "flash", None).data.device_resident  # no draws: kept


def test_a_cost_is_the_least_disturbed_of_several_latency_rounds():
    """One round slowed by a neighbour must not mislabel a candidate whose cost is cached for the whole search."""
    from edgedistill.search.cost import LATENCY_ROUNDS, steady_latency

    medians = iter([0.127, 0.082, 0.085, 0.5])
    calls = []

    def measure(path, shape, threads, runs, warmup):
        calls.append((path, shape, threads, runs))
        return {"latency_ms_median": next(medians)}

    assert steady_latency(measure, "m.onnx", (1, 3, 24, 24), 1, 30) == 0.082
    assert len(calls) == LATENCY_ROUNDS == 3 and calls[0] == ("m.onnx", (1, 3, 24, 24), 1, 30)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_sampler_stuck_on_a_trained_candidate_is_sent_to_an_untrained_feasible_one(tmp_path):
    """TPE suggests a dominant candidate again and again; each repeat enqueues a new feasible candidate."""
    import optuna

    from edgedistill.search.space import resolve_space
    from edgedistill.search.study import Search, explore

    r = build_recipe(recipe(tmp_path, space={"models": ["cifar:resnet8", "cifar:resnet14", "cifar:resnet20",
                                                        "cifar:resnet32"]}))
    r = build_recipe({**r.model_dump(mode="json"), "deploy": {"budget": {"params": 300_000}}})
    space = resolve_space(r)
    folder = tmp_path / "s"
    folder.mkdir()
    params = {"cifar:resnet8": 78_042, "cifar:resnet14": 175_258, "cifar:resnet20": 272_474, "cifar:resnet32": 466_906}
    costs = {f"{k}@16": {"spec": k, "image_size": 16, "params": v, "flops": 1, "size_mb": 1, "latency_ms": 1}
             for k, v in params.items()}
    s = Search(folder, r, space, "", "t", None, None, 10)
    (folder / "costs.json").write_text(json.dumps({"settings": s.costs.settings, "costs": costs}))
    from edgedistill.search.space import MODEL_KEY

    stuck = optuna.samplers.PartialFixedSampler({MODEL_KEY: "cifar:resnet8"}, optuna.samplers.RandomSampler(0))
    study = optuna.create_study(sampler=stuck)  # always suggests resnet8, unless a trial was enqueued
    tried = []
    for _ in range(6):
        t = study.ask()
        cand = space.suggest(t)
        t.set_user_attr("spec", cand.spec)
        t.set_user_attr("image_size", cand.image_size)
        if cand.spec in tried:
            explore(s, t)  # a repeat: the next ask() takes an enqueued untrained candidate
        tried.append(cand.spec)
        study.tell(t, 0.0)
    assert tried[:4] == ["cifar:resnet8", "cifar:resnet8", tried[2], "cifar:resnet8"]
    assert {tried[2], tried[4]} == {"cifar:resnet14", "cifar:resnet20"}  # resnet32 is over the budget: never sent
    assert tried[5] == "cifar:resnet8"  # every feasible candidate tried: nothing more to enqueue


def test_a_replanned_schedule_withdraws_the_waiting_runs_of_the_old_plan(tmp_path):
    """A resumed search may pick other candidates for its full runs: the old picks must not run first."""
    from optuna.trial import TrialState

    from edgedistill.jobs.runs import Job, open_study, schedule

    def job(name):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"data": {"source": "digits"}, "output": {"dir": str(tmp_path / "runs"),
                                                                                 "name": name}}))
        return Job(name, path)

    study = open_study(str(tmp_path / "study.journal"), "full")
    assert schedule(study, [job("a"), job("b")])["queued"] == 2
    counts = schedule(study, [job("b"), job("c")])
    assert counts["withdrawn"] == 1 and counts["queued"] == 1 and counts["waiting"] == 1
    waiting = sorted(t.user_attrs["job"] for t in study.get_trials(states=(TrialState.WAITING,)))
    assert waiting == ["b", "c"]
    gone = [t for t in study.get_trials() if t.user_attrs.get("job") == "a"]
    assert gone[0].state == TrialState.FAIL and gone[0].user_attrs["withdrawn"]
