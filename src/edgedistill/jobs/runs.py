"""Runs as trials of one Optuna study: every process (or machine) sharing the storage takes the next waiting run.

A job is a resolved recipe file; its run folder is `output.dir/output.name`. A finished run folder
(metrics.json) is never recomputed, an interrupted one resumes (`train.resume`). Trials are enqueued
with `Study.enqueue_trial` and taken by `Study.optimize`, which pops waiting trials atomically in the
storage, so two processes never take the same job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..errors import TrainingError, UserError
from ..filelock import flock, is_locked
from .locks import teacher_lock


@dataclass(frozen=True)
class Job:
    """One run: a key unique in the study, its resolved recipe file and the metric its trial reports."""

    key: str
    recipe: Path
    metric: str = "top1"


SCHEMES = ("postgresql", "mysql", "sqlite")  # databases Optuna's RDBStorage is tested on


def masked(url: str) -> str:
    """The URL with its password replaced by ***: what every message shows."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, user = head.partition("://")
    return f"{scheme}://{user.split(':', 1)[0]}{':***' if ':' in user else ''}@{tail}"


def _hide(text: str, url: str) -> str:
    """A driver's message with the URL's password, wherever it appears, replaced by ***."""
    password = url.rpartition("@")[0].partition("://")[2].partition(":")[2]
    return text.replace(password, "***") if password else text


def check_storage(url: str, key: str = "--storage") -> None:
    """A storage checked before any work, without connecting: a journal file's folder exists and is writable;
    a URL has a known scheme and a numeric port. The password never appears in a message."""
    if "://" not in url:
        path = Path(url).expanduser()
        folder = path.parent
        if path.is_dir():
            raise UserError(f"{url} is a folder; allowed: a journal file path (e.g. {path / 'study.journal'}) or "
                            "postgresql://user@host/db", key=key)
        if not folder.is_dir():
            raise UserError(f"the folder of {url} does not exist ({folder}); allowed: a journal file in an "
                            "existing, writable folder, or postgresql://user@host/db", key=key)
        if not os.access(folder, os.W_OK):
            raise UserError(f"the folder of {url} ({folder}) is not writable; allowed: a journal file in a "
                            "writable folder", key=key)
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 (a non-numeric port raises here)
    except (ArgumentError, ValueError):
        raise UserError(f"{masked(url)} is not a database URL (a port must be a number); allowed: a file path "
                        "(journal) or postgresql://user[:password]@host[:port]/database", key=key) from None
    try:
        parsed.get_dialect()  # the scheme's SQLAlchemy dialect and driver, loaded without connecting
    except ArgumentError:
        raise UserError(f"{masked(url)} is not a database URL: unknown database or driver "
                        f"{parsed.drivername!r}; allowed: a file path (journal) or a URL of {', '.join(SCHEMES)}",
                        key=key) from None
    except ImportError as e:
        raise UserError(f"{masked(url)}: the database driver is not installed ({_hide(str(e), url)}); for "
                        "PostgreSQL: pip install 'psycopg[binary]'", key=key) from None


def open_storage(url: str, key: str = "--storage") -> optuna.storages.BaseStorage:
    """A journal file (embedded, one machine) for a path; an RDB URL (postgresql://…) with heartbeats otherwise.

    A malformed URL, a missing database driver or an unreachable server is a UserError naming `key`."""
    check_storage(url, key)
    if "://" not in url:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(url)))
    import sqlalchemy.exc

    shown = masked(url)  # never print a password
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=60, grace_period=300,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
                engine_kwargs={"pool_pre_ping": True})
    except (ImportError, ModuleNotFoundError) as e:
        raise UserError(f"{shown}: the database driver is not installed ({_hide(str(e), url)}); for PostgreSQL: "
                        "pip install 'psycopg[binary]'", key=key) from None
    except sqlalchemy.exc.ArgumentError as e:
        raise UserError(f"{shown} is not a database URL ({_hide(str(e), url)}); allowed: a file path (journal) or "
                        "postgresql://user[:password]@host[:port]/database", key=key) from None
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.DBAPIError) as e:
        first = _hide(str(e.orig if getattr(e, "orig", None) else e).strip().splitlines()[0], url)
        raise UserError(f"{shown}: cannot connect ({first}); is the server running and reachable?",
                        key=key) from None


def open_study(url: str, name: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=name, storage=open_storage(url), load_if_exists=True,
                               direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))


def run_folder(recipe_path: Path) -> Path:
    from ..recipe import load_recipe

    r = load_recipe(recipe_path)
    return r.output.dir / r.output.name


def _lock_of(recipe_path: Path) -> Path:
    return recipe_path.with_suffix(".lock")


def schedule(study: optuna.Study, jobs: list[Job]) -> dict[str, int]:
    """Enqueue every job not finished, not waiting and not running; a running trial whose process died
    (its lock is free) is failed first, and waiting (or dead) trials of jobs no longer in `jobs` are withdrawn.
    Returns counts by what was done."""
    trials = study.get_trials(deepcopy=False)
    waiting = {t.user_attrs.get("job") for t in trials if t.state == TrialState.WAITING}
    running = {}
    for t in trials:
        if t.state == TrialState.RUNNING and t.user_attrs.get("job"):
            running[t.user_attrs["job"]] = t
    counts = {"finished": 0, "queued": 0, "running": 0, "waiting": 0, "withdrawn": 0}
    keys = {job.key for job in jobs}
    for t in trials:  # a plan made earlier (e.g. before a resumed search changed its picks): its leftovers go
        stale = t.user_attrs.get("job") not in keys and (
            t.state == TrialState.WAITING
            or (t.state == TrialState.RUNNING and t.user_attrs.get("recipe")
                and not is_locked(_lock_of(Path(t.user_attrs["recipe"])))))
        if stale:
            try:
                study._storage.set_trial_user_attr(t._trial_id, "withdrawn", True)
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                counts["withdrawn"] += 1
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
    for job in jobs:
        if (run_folder(job.recipe) / "metrics.json").exists():
            counts["finished"] += 1
            continue
        t = running.get(job.key)
        if t is not None:
            if is_locked(_lock_of(job.recipe)):
                counts["running"] += 1
                continue
            try:  # its process died (killed, machine lost): the run folder resumes from its checkpoint
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
        if job.key in waiting:
            counts["waiting"] += 1
            continue
        study.enqueue_trial({}, user_attrs={"job": job.key, "recipe": str(job.recipe), "metric": job.metric})
        counts["queued"] += 1
    return counts


def run_job(recipe_path: Path, log: Path) -> Path:
    """One run through the ordinary pipeline; finished → reused, interrupted → resumed."""
    from rich.console import Console

    from ..pipeline import run
    from ..recipe import load_recipe

    recipe = load_recipe(recipe_path)
    run_dir = recipe.output.dir / recipe.output.name
    if (run_dir / "metrics.json").exists():
        return run_dir
    if run_dir.exists():
        recipe = load_recipe(recipe_path, ["train.resume=true"])
    with open(log, "a") as f, teacher_lock(recipe):
        return run(recipe, Console(file=f, width=150, force_terminal=False))


def metric_of(run_dir: Path, metric: str) -> float:
    from ..run.reader import read_metrics

    m = read_metrics(run_dir)
    return float(m["models"][m["primary"]][metric])


def _objective(trial: optuna.Trial, say: Any) -> float:
    key = trial.user_attrs.get("job")
    if key is None:  # another process took the last waiting job between our check and our ask
        trial.study.stop()
        raise optuna.TrialPruned("no job left")
    path = Path(trial.user_attrs["recipe"])
    with flock(_lock_of(path), blocking=False) as mine:
        if not mine:
            raise optuna.TrialPruned(f"{key} is run by another process")
        finished = (run_folder(path) / "metrics.json").exists()
        run_dir = run_job(path, path.with_suffix(".log"))
    value = metric_of(run_dir, trial.user_attrs.get("metric", "top1"))
    say(f"{key}: {'finished earlier' if finished else 'done'}, {trial.user_attrs.get('metric', 'top1')} {value:.4g}")
    return value


def work(study: optuna.Study, say: Any = print) -> None:
    """Take waiting jobs of the study until none is left (the calling process is one worker)."""

    def drained(study: optuna.Study, _: Any) -> None:
        if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            study.stop()

    if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        study.optimize(lambda t: _objective(t, say), callbacks=[drained], gc_after_trial=True)


def run_workers(url: str, study_name: str, workers: int, log_dir: Path, say: Any = print, *,
                child: list[str] | None = None, body: Callable[[], None] | None = None) -> None:
    """This process and workers-1 child processes (`python -m edgedistill.jobs.worker`) work the study.

    `child` (argv after `python -m`) and `body` (this process's share) replace the run-queue worker: the
    search's sampler-driven trials share the same process management."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    children = []
    log_dir.mkdir(parents=True, exist_ok=True)
    for i in range(1, workers):
        log = open(log_dir / f"worker-{i}.log", "a")  # noqa: SIM115 (open for the child's life, closed below)
        argv = child if child is not None else ["edgedistill.jobs.worker", url, study_name]
        cmd = [sys.executable, "-m", *argv, "--threads", str(threads)]
        children.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        if workers > 1:
            import torch

            torch.set_num_threads(threads)
        if body is not None:
            body()
        else:
            work(open_study(url, study_name), say)
    except BaseException:
        for p, _ in children:
            p.terminate()
        raise
    finally:
        for p, log in children:
            p.wait()
            log.close()
    failed = [i + 1 for i, (p, _) in enumerate(children) if p.returncode]
    if failed:
        raise TrainingError(f"worker(s) {failed} failed; see {log_dir}/worker-N.log")
