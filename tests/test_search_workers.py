"""`edgedistill search --workers 2` on the default storage (one journal file): the two processes share one
study, so search.trials trials count (not one allowance per worker), no finished trial is trained again, and a
search killed as a whole (SIGKILL to its process group) resumes keeping its finished trials."""

import os
import signal
import subprocess
import sys
import time

import pytest
from test_search import recipe, rows, write

# resnet8 at six sizes; the recipe's own student (resnet8 at 16 px, the hand-picked reference) is not one of them
SPACE = {"models": ["cifar:resnet8"], "image_size": [8, 10, 12, 14, 20, 24]}


def study_of(folder):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "study.journal")))
    return optuna.load_study(study_name="search-s", storage=storage)


def trials_of(folder) -> list:
    if not (folder / "study.journal").exists():
        return []
    try:
        return study_of(folder).get_trials(deepcopy=False)
    except KeyError:  # the study is not written yet
        return []


def both_workers_busy(folder) -> bool:
    """A trial finished and two training at once (one per process): the moment a kill loses the most."""
    trials = trials_of(folder)
    running = [t for t in trials if t.state.name == "RUNNING" and "spec" in t.user_attrs]
    return any(t.state.name == "COMPLETE" for t in trials) and len(running) == 2


def finished_runs(folder) -> dict[str, tuple[int, str]]:
    """Trials recorded trained in the journal: their run folder's metrics.json mtime and the run's log."""
    out = {}
    for t in trials_of(folder):
        if t.state.name == "COMPLETE" and t.user_attrs.get("status") == "trained":
            name = os.path.basename(t.user_attrs["run"])
            out[name] = ((folder / "flash" / name / "metrics.json").stat().st_mtime_ns,
                         (folder / "flash" / f"{name}.log").read_text())
    return out


def test_resume_reruns_every_killed_trial_before_a_candidate_the_dead_session_enqueued(tmp_path):
    """Optuna hands out waiting trials oldest first: a candidate explore() enqueued before the kill was taken
    ahead of the killed ones and, search.trials counted, one killed candidate was never rerun (the flake of the
    two-worker test below). revive_killed retires it, and it does not count. And a killed trial whose run had
    finished before the kill reached the study: its rerun reused the run as a "repeat", which does not count, so
    the killed candidate was never counted (the same test's other failure)."""
    from edgedistill.recipe import build_recipe
    from edgedistill.search.space import Candidate, resolve_space
    from edgedistill.search.study import Search, counted, open_search_study, repeats, revive_killed
    from edgedistill.search.trials import Flash

    rec = build_recipe(recipe(tmp_path, space=SPACE, trials=3))
    space = resolve_space(rec)
    s = Search(tmp_path, rec, space, str(tmp_path / "study.journal"), "search-s", None,
               Flash(steps=2, epochs=1, max_train_samples=None, full_steps=4), 10)
    (tmp_path / "locks").mkdir()
    study = open_search_study(s)
    dead = study.ask()  # running when its process died: nobody holds its lock
    dead.set_user_attr("spec", "cifar:resnet8")
    dead.set_user_attr("image_size", 8)
    study.enqueue_trial(space.params_of(Candidate("cifar:resnet8", 24)))  # explore()'s, in the dead session

    assert revive_killed(s, study) == [Candidate("cifar:resnet8", 8)]
    rerun = study.ask()
    assert space.suggest(rerun) == Candidate("cifar:resnet8", 8)  # the killed one first
    states = {t.number: (t.state.name, t.user_attrs) for t in study.get_trials(deepcopy=False)}
    assert states[0] == ("FAIL", {"spec": "cifar:resnet8", "image_size": 8, "killed": True})
    assert states[1] == ("FAIL", {"retired": True}) and 1 not in {t.number for t in counted(study)}

    # the killed trial's run had finished before the kill reached the study: the rerun counts it, not a repeat
    for size in (8, 24):
        run = tmp_path / "flash" / Candidate("cifar:resnet8", size).slug
        run.mkdir(parents=True)
        (run / "metrics.json").write_text("{}")
    assert not repeats(s, rerun, Candidate("cifar:resnet8", 8))
    assert repeats(s, rerun, Candidate("cifar:resnet8", 24))  # a run no killed trial left: reused, not counted


@pytest.mark.slow
def test_two_workers_share_a_journal_study_and_a_killed_search_resumes_keeping_finished_trials(tmp_path):
    from edgedistill.search.study import counted

    path = write(tmp_path, search={"trials": 5, "top_k": 0, "random_k": 0, "sampler": "random", "workers": 2,
                                   "space": SPACE})
    cmd = [sys.executable, "-m", "edgedistill", "search", str(path)]
    folder = tmp_path / "runs" / "s"
    # the whole search (the command and its worker) dies at once, as on a crash or `kill -9 -PGID`
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not both_workers_busy(folder):
        time.sleep(0.2)
    assert proc.poll() is None, "the search ended before both processes trained at once: the worker is not in the study"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = finished_runs(folder)
    assert before and not (folder / "trials.csv").exists()

    trials = len(before) + 2  # the two killed trials still to count: resume with exactly that many (a slow
    res = subprocess.run(cmd + ["--resume", "--trials", str(trials)],  # worker may join late on a busy machine)
                         check=False, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    study_trials = trials_of(folder)
    # none lost: no trial left running; a WAITING one may remain, a candidate explore() enqueued when the
    # sampler repeated itself that the search, its trials counted, never took (the killed ones are checked below)
    assert not [t for t in study_trials if t.state.name == "RUNNING"]
    count = counted(study_of(folder))
    keys = [f"{t.user_attrs['spec']}@{t.user_attrs['image_size']}" for t in count]
    assert len(count) == trials and len(set(keys)) == trials, keys  # search.trials, not more, each its own candidate
    assert all(t.user_attrs.get("status") == "trained" for t in count)
    after = finished_runs(folder)
    assert {name: after[name] for name in before} == before  # finished before the kill: not trained again
    assert all(log.count("student epoch") == 1 for _, log in before.values())  # its one flash epoch, once
    killed = [r for r in rows(folder) if r["state"] == "killed"]
    assert len(killed) == 2 and {r["spec"] + r["image_size"] for r in killed} <= {
        t.user_attrs["spec"] + str(t.user_attrs["image_size"]) for t in count}  # rerun, not lost
    runs = {p.name for p in (folder / "flash").iterdir() if p.is_dir()}
    trained = {os.path.basename(t.user_attrs["run"]) for t in count}
    assert all((folder / "flash" / name / "metrics.json").exists() for name in trained)
    hand = {n for n in runs if n.startswith("cifar-resnet8-16px")}  # the reference run, outside the study
    assert len(hand) == 1 and runs == trained | hand  # no run outside the shared study (a worker on its own)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["s"]  # resumed in place
