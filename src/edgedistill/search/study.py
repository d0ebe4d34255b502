"""The Optuna study of a search: sampler, constraints, the trial objective and the loop every worker runs.

Multi-objective: flash top-1 maximised, measured cost minimised (search.objectives). deploy.budget limits
are constraints (`Trial.set_constraint`, which Optuna 5's samplers read in place of the deprecated
`constraints_func`; BoTorch's sampler still takes the function): an infeasible candidate is recorded with its measured figures and
never trained. The storage comes from jobs.runs.open_storage, the layer `edgedistill compare` uses.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import UserError
from ..filelock import flock, is_locked
from ..jobs.runs import metric_of, open_storage
from ..recipe import Recipe, load_recipe
from .cost import CostCache, over_budget
from .space import Candidate, Space, resolve_space
from .trials import Flash, run_candidate

PLAN = "search.json"  # what every worker needs besides the recipe: storage, study, teacher, flash budget


@dataclass
class Search:
    """A search folder's settings, as written by the command and read by every worker."""

    folder: Path
    recipe: Recipe
    space: Space
    storage: str
    study_name: str
    teacher: str | None
    flash: Flash
    num_classes: int

    @property
    def costs(self) -> CostCache:
        return CostCache(self.folder, self.recipe, self.num_classes)

    def save(self) -> None:
        from ..atomic import atomic_write_text

        atomic_write_text(self.folder / PLAN, json.dumps({
            "storage": self.storage, "study": self.study_name, "teacher": self.teacher,
            "flash": self.flash.__dict__, "num_classes": self.num_classes}, indent=2))

    @classmethod
    def load(cls, folder: Path) -> Search:
        plan = json.loads((folder / PLAN).read_text())
        recipe = load_recipe(folder / "recipe.yaml")
        return cls(folder, recipe, resolve_space(recipe), plan["storage"], plan["study"], plan["teacher"],
                   Flash(**plan["flash"]), plan["num_classes"])


def make_sampler(recipe: Recipe, constrained: bool, worker: int = 0) -> optuna.samplers.BaseSampler:
    """search.sampler with the budget constraints; each worker seeds its own (seed + worker)."""
    cfg = recipe.search
    kw: dict[str, Any] = {"seed": (cfg.seed + worker) % 2**32}
    if cfg.sampler == "botorch":
        try:
            import botorch  # noqa: F401
            from optuna_integration import BoTorchSampler
        except ImportError:
            raise UserError("search.sampler=botorch needs optuna-integration and botorch (pip install "
                            "optuna-integration botorch); allowed without them: tpe, gp, nsga2, random",
                            key="search.sampler") from None
        return BoTorchSampler(constraints_func=constraints_of if constrained else None, **kw)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if cfg.sampler == "tpe":
            return optuna.samplers.TPESampler(multivariate=True, group=True, **kw)
        if cfg.sampler == "gp":
            return optuna.samplers.GPSampler(**kw)
        if cfg.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(**kw)
    return optuna.samplers.RandomSampler(**kw)


def constraints_of(trial: FrozenTrial) -> list[float]:
    """Measured minus limit per budget (≤ 0 is feasible), recorded by the objective."""
    return [trial.constraints[k] for k in sorted(trial.constraints)]


def open_search_study(s: Search, worker: int = 0) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    constrained = any(getattr(s.recipe.deploy.budget, k) is not None for k in ("latency_ms", "size_mb", "params", "flops"))
    directions = ["maximize" if o == "top1" else "minimize" for o in s.recipe.search.objectives]
    return optuna.create_study(study_name=s.study_name, storage=open_storage(s.storage, key="search.storage"),
                               directions=directions, sampler=make_sampler(s.recipe, constrained, worker),
                               load_if_exists=True)


def _lock(s: Search, number: int) -> Path:
    return s.folder / "locks" / f"trial-{number}.lock"


def objective(trial: optuna.Trial, s: Search) -> tuple[float, ...]:
    """Measure (cached); over a budget → infeasible, untrained; else flash-distill and report top-1 and cost."""
    cand = s.space.suggest(trial)
    trial.set_user_attr("spec", cand.spec)
    trial.set_user_attr("image_size", cand.image_size)
    with flock(_lock(s, trial.number)):  # held while this trial lives: --resume tells a killed one by it
        cost = s.costs.get(cand)
        over = over_budget(cost, s.recipe)
        trial.set_user_attr("cost", cost)
        for k, v in over.items():
            trial.set_constraint(k, v)
        top1 = 0.0
        if any(v > 0 for v in over.values()):
            trial.set_user_attr("status", "infeasible")
            if any(t.user_attrs.get("spec") == cand.spec and t.user_attrs.get("image_size") == cand.image_size
                   for t in trial.study.get_trials(deepcopy=False) if t.number != trial.number):
                explore(s, trial)  # suggested again though known to be over the budget
        else:
            t0 = time.perf_counter()
            if repeats(s, trial, cand):
                trial.set_user_attr("repeat", True)  # suggested again: its finished run is reused, not retrained
                explore(s, trial)
            try:
                run_dir = run_candidate(s.recipe, cand, s.teacher, s.folder / "flash", s.flash)
            except Exception as e:
                trial.set_user_attr("status", "failed")
                trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:500])
                raise
            top1 = metric_of(run_dir, "top1")
            trial.set_user_attr("status", "trained")
            trial.set_user_attr("flash_top1", top1)
            trial.set_user_attr("run", str(run_dir))
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
    return tuple(top1 if o == "top1" else float(cost[o]) for o in s.recipe.search.objectives)


def taken(trial: optuna.Trial, cand: Candidate) -> bool:
    """An earlier trial, still running in another worker or finished, has this candidate: without this check two
    workers suggested the same candidate at once both count a trial for one training (the second waits on the
    run's lock and reuses it), and search.trials distinct candidates are not trained."""
    return any(t.number < trial.number and t.state in (TrialState.RUNNING, TrialState.COMPLETE)
               and not t.user_attrs.get("killed") and t.user_attrs.get("spec") == cand.spec
               and t.user_attrs.get("image_size") == cand.image_size for t in trial.study.get_trials(deepcopy=False))


def repeats(s: Search, trial: optuna.Trial, cand: Candidate) -> bool:
    """Suggested again: an earlier counted trial has the candidate, or its finished run exists (the hand-picked
    reference's). A run a killed trial finished before the kill reached the study is not a repeat: this trial
    counts it (the killed one does not), else the killed candidate is never counted and the search trains one more."""
    if taken(trial, cand):
        return True
    if not (s.folder / "flash" / cand.slug / "metrics.json").exists():
        return False
    return not any(t.user_attrs.get("killed") and t.user_attrs.get("spec") == cand.spec
                   and t.user_attrs.get("image_size") == cand.image_size
                   for t in trial.study.get_trials(deepcopy=False))


def explore(s: Search, trial: optuna.Trial) -> None:
    """A sampler that suggests a trained candidate again has stopped exploring (TPE does, once one candidate
    dominates a categorical choice): the next trial gets a seeded random untrained feasible candidate, so
    search.trials still trains that many distinct candidates."""
    import random

    from .cost import check_feasible

    study = trial.study
    done = {f"{t.user_attrs['spec']}@{t.user_attrs['image_size']}" for t in study.get_trials(deepcopy=False)
            if "spec" in t.user_attrs and t.number != trial.number}
    feasible = set(check_feasible(s.costs.measured(), s.recipe))
    rest = [c for c in s.space.candidates() if c.key in feasible and c.key not in done]
    if rest:
        study.enqueue_trial(s.space.params_of(random.Random(trial.number).choice(rest)), skip_if_exists=True)


def counted(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that count towards search.trials: all but waiting ones, those killed (rerun instead) or retired
    (never started), repeats of a trained candidate and infeasible ones (neither costs training; a mostly
    infeasible space still trains)."""
    return [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING
            and not t.user_attrs.get("killed") and not t.user_attrs.get("retired") and not t.user_attrs.get("repeat")
            and t.user_attrs.get("status") != "infeasible"]


MAX_TRIALS_FACTOR = 10  # trials started by one session, infeasible included, stop at this many times search.trials


def revive_killed(s: Search, study: optuna.Study) -> list[Candidate]:
    """Running trials whose process died (their lock is free) are failed as killed and enqueued again.

    Called before this session's workers start. Optuna hands out waiting trials oldest first, so a candidate
    explore() enqueued in the dead session would be taken before the killed ones and, once search.trials are
    counted, leave one of them never rerun: those stale waiting trials are retired first (failed, marked, not
    counted); explore() enqueues afresh when the sampler repeats itself again."""
    if "://" in s.storage:  # RDB: heartbeats retry stale trials, and other machines' workers may be live
        return []
    dead = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not is_locked(_lock(s, t.number))]
    if not dead:
        return []
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        _fail(study, t, "retired")
    out = []
    for t in dead:
        if not _fail(study, t, "killed"):
            continue
        if "spec" in t.user_attrs:
            cand = Candidate(t.user_attrs["spec"], int(t.user_attrs["image_size"]))
            study.enqueue_trial(s.space.params_of(cand), skip_if_exists=False)
            out.append(cand)
    return out


def _fail(study: optuna.Study, t: FrozenTrial, why: str) -> bool:
    """Mark a trial (killed / retired) and fail it; False if it finished meanwhile."""
    study._storage.set_trial_user_attr(t._trial_id, why, True)
    try:
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


def work(s: Search, worker: int = 0, timeout: float | None = None, on_trial: Any = None) -> None:
    """Run trials until search.trials are counted, the timeout passes, or every feasible candidate is trained."""
    study = open_search_study(s, worker)
    total = s.recipe.search.trials
    feasible: set[str] = set()
    costs_path = s.folder / "costs.json"
    if costs_path.exists():
        from .cost import check_feasible

        measured = json.loads(costs_path.read_text()).get("costs", {})
        feasible = {k for k in check_feasible(measured, s.recipe) if k in {c.key for c in s.space.candidates()}}

    finished = (TrialState.COMPLETE, TrialState.FAIL)
    before = len(study.get_trials(deepcopy=False, states=finished))  # a resumed search gets a fresh allowance

    def stop_when_done(study: optuna.Study, trial: FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(study, trial)
        trained = {f"{t.user_attrs['spec']}@{t.user_attrs['image_size']}" for t in counted(study)
                   if t.user_attrs.get("status") == "trained"}
        started = len(study.get_trials(deepcopy=False, states=finished)) - before
        if len(counted(study)) >= total or (feasible and feasible <= trained) or started >= MAX_TRIALS_FACTOR * total:
            study.stop()

    if len(counted(study)) >= total:
        return
    study.optimize(lambda t: objective(t, s), timeout=timeout, callbacks=[stop_when_done], catch=(Exception,),
                   gc_after_trial=True)
