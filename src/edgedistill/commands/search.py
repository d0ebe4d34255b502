"""`edgedistill search`: check the space, measure every candidate, train the teacher once, run the study,
measure proxy trust, write the folder; `--then-run` runs the chosen recipe with its compress stages."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from ..atomic import atomic_write_text
from ..errors import TrainingError, UserError
from ..output_folder import removed_on_user_error
from ..recipe import Recipe, load_recipe
from ..search.space import Candidate

if TYPE_CHECKING:
    from ..search.study import Search


def _resolve(recipe_file: Path, overrides: list[str], opts: dict[str, Any]) -> Recipe:
    extra = [f"search.{k}={json.dumps(v)}" for k, v in opts.items() if v is not None]
    return load_recipe(recipe_file, overrides + extra)


def _folder(recipe: Recipe, resume: bool) -> Path:
    """The search folder; on --resume the latest one, refused when its recipe changed."""
    from ..run.folder import make_run_dir

    folder = make_run_dir(recipe, resume)
    saved = folder / "recipe.yaml"
    text = recipe.to_yaml()
    if resume and saved.exists() and _stable(saved.read_text()) != _stable(text):
        raise UserError(f"the recipe differs from the one this search started with ({saved}); allowed: the same "
                        "recipe with --resume (--trials/--timeout/--workers may change), or a new search without "
                        "--resume", key="search")
    atomic_write_text(saved, text)
    return folder


def _stable(text: str) -> str:
    """The recipe as today's schema reads it (a key added since the search started is not a change), without
    what a resumed search may change (trials, timeout, workers, storage)."""
    import yaml

    from ..recipe import build_recipe

    data = yaml.safe_load(text) or {}
    try:
        data = build_recipe(data).model_dump(mode="json")
    except UserError:  # e.g. its data.root moved: compare the raw values
        pass
    for k in ("trials", "timeout", "workers", "storage"):
        data.get("search", {}).pop(k, None)
    data.get("train", {}).pop("resume", None)
    return json.dumps(data, sort_keys=True)


def eta_text(total: int, done: int, start: int, elapsed: float) -> str:
    """'ETA 1.5 min' from the trials this session counted; none yet (a repeat, a resumed finished search): no
    guess rather than a figure divided by zero trials."""
    if done >= total:
        return "done"
    if done <= start:
        return "ETA –"
    return f"ETA {(total - done) * elapsed / (done - start) / 60:.1f} min"


def summary_line(rows: list[dict[str, Any]]) -> str:
    """'6 trials: 4 trained, 1 repeated, 1 infeasible': a repeat reused a finished run, it trained nothing."""
    repeats = sum(r["state"] == "trained" and str(r.get("error", "")).startswith("repeat") for r in rows)
    states = {s: sum(r["state"] == s for r in rows) for s in ("trained", "infeasible", "failed", "killed")}
    states["trained"] -= repeats
    states = {"trained": states["trained"], "repeated (run reused)": repeats,
              **{k: v for k, v in states.items() if k != "trained"}}
    return f"{len(rows)} trials: " + ", ".join(f"{v} {k}" for k, v in states.items() if v)


class TrialLog:
    """A progress bar over the search's trials on a terminal, and one line per finished trial with an ETA."""

    def __init__(self, console: Console, total: int, start: int = 0):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console, self.total, self.t0, self.start = console, total, time.perf_counter(), start
        self.bar = Progress(TextColumn("[bold cyan]trials"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=console, transient=True, disable=not console.is_terminal)
        self.task = self.bar.add_task("trials", total=total)

    def __call__(self, study: Any, trial: Any) -> None:
        from ..search.study import counted

        done = len(counted(study))
        self.bar.update(self.task, completed=done)
        eta = eta_text(self.total, done, self.start, time.perf_counter() - self.t0)
        a = trial.user_attrs
        what = a.get("status", trial.state.name.lower())
        fig = (f"flash top-1 {a['flash_top1']:.2f}, " if "flash_top1" in a else "") + \
            (f"{a['cost']['latency_ms']:.3g} ms" if "cost" in a else "")
        err = f" — {a['error']}" if a.get("error") else ""
        self.console.print(f"  trial {done}/{self.total} ({what}) {a.get('spec')} @ {a.get('image_size')} px: {fig}"
                           f"{err}  [dim]{eta}[/]", highlight=False)


def measure_all(search: Search, hand: Candidate, console: Console) -> dict[str, dict[str, Any]]:
    """Every candidate's cost (cached), then the feasibility check: exit 2 when nothing fits the budget."""
    from ..search.cost import check_feasible

    cands = search.space.candidates()
    console.print(f"measuring {len(cands)} candidate(s) with ONNX Runtime (deploy.threads={search.recipe.deploy.threads}, "
                  f"deploy.batch_size={search.recipe.deploy.batch_size}) …")
    costs = {c.key: search.costs.get(c) for c in cands}
    search.costs.get(hand)
    feasible = check_feasible(costs, search.recipe)
    console.print(f"  {len(feasible)} of {len(cands)} within deploy.budget")
    return costs


def _prepare(folder: Path, recipe: Recipe, space: Any, class_names: list[str], n_train: int,
             console: Console) -> tuple[Any, Candidate, Any]:
    """What a search needs before its trials: candidate recipes checked, costs measured, the teacher ready."""
    from ..search.study import Search
    from ..search.trials import candidate_recipe, flash_budget, prepare_teacher

    flash = flash_budget(recipe, n_train)
    url = recipe.search.storage or str(folder / "study.journal")
    search = Search(folder, recipe, space, url, f"search-{folder.name}", None, flash, len(class_names))
    hand = Candidate(recipe.student.model, recipe.data.image_size)
    for c in (hand, space.candidates()[0]):  # a trial's recipe that cannot be built: exit 2 before measuring
        candidate_recipe(recipe, c, None, folder / "flash", flash)
    measure_all(search, hand, console)
    search.teacher = prepare_teacher(recipe, folder, console)
    search.save()
    return search, hand, flash


def run_search(recipe_file: Path, overrides: list[str], *, trials: int | None = None, timeout: float | None = None,
               workers: int | None = None, storage: str | None = None, resume: bool = False, then_run: bool = False,
               console: Console | None = None) -> Path:
    """Run (or resume) a search; returns its folder."""
    from ..analysis.workers import check_parallel_workers
    from ..data import build_data
    from ..jobs.runs import open_storage, run_workers
    from ..preflight import check_recipe
    from ..search.space import resolve_space
    from ..search.study import counted, make_sampler, open_search_study, revive_killed, work

    console = console or Console()
    t0 = time.perf_counter()
    recipe = _resolve(recipe_file, overrides, {"trials": trials, "timeout": timeout, "workers": workers,
                                               "storage": storage})
    space = resolve_space(recipe)
    make_sampler(recipe, False)  # botorch without its packages: exit 2 now
    class_names = check_recipe(recipe)
    check_parallel_workers([(recipe, class_names)], recipe.search.workers, recipe.search.trials,
                           key="search.workers")  # the recipe's student and teacher stand for a trial's
    if recipe.search.storage:
        open_storage(recipe.search.storage, key="search.storage")
    data = build_data(recipe.data)
    folder = _folder(recipe, resume)
    with removed_on_user_error(folder, fresh=not resume):  # a late refusal leaves no search folder behind
        search, hand, flash = _prepare(folder, recipe, space, class_names, len(data.train), console)
        study = open_search_study(search)
    cfg, url = search.recipe.search, search.storage
    for c in revive_killed(search, study):
        console.print(f"  trial of {c.key} was killed: enqueued again (its run folder resumes)")
    left = max(0, cfg.trials - len(counted(study)))
    workers = max(1, min(cfg.workers, left))  # a process per trial still to count, at most; a finished search: 1
    console.print(f"search folder: [bold]{folder}[/] — {len(space.candidates())} candidates, {cfg.trials} trials, "
                  f"flash {flash.steps} steps each ({flash.full_steps} in full), {workers} worker(s), "
                  f"sampler {cfg.sampler}")
    log = TrialLog(console, cfg.trials, start=len(counted(study)))
    child = ["edgedistill.search.worker", str(folder)] + (["--timeout", str(cfg.timeout)] if cfg.timeout else [])
    with log.bar:
        run_workers(url, search.study_name, workers, folder / "logs", child=child,
                    body=lambda: work(search, 0, cfg.timeout, on_trial=log))
    best = finish(search, hand, console, time.perf_counter() - t0)
    if then_run and best is not None:
        from ..pipeline import run

        console.print(f"\n[bold]--then-run[/]: edgedistill run {best}")
        run(load_recipe(best), console)
    return folder


def finish(search: Search, hand: Candidate, console: Console, seconds: float) -> Path | None:
    """Pareto front, hand-picked reference, proxy trust, and every output file; returns best.yaml."""
    from ..search.report import best_recipe, pareto_chart, trial_rows, write_csv, write_report
    from ..search.study import open_search_study
    from ..search.trials import run_candidate
    from ..search.trust import correlate, finished_full, pick, run_full

    study = open_search_study(search)
    cfg, folder = search.recipe.search, search.folder
    rows = trial_rows(study, set(), {})
    trained = [r for r in rows if r["state"] == "trained"]
    firsts: dict[str, int] = {}  # a candidate suggested again is one point of the front, not two
    for t in sorted(study.best_trials, key=lambda t: t.number):
        if t.user_attrs.get("status") == "trained":
            firsts.setdefault(f"{t.user_attrs['spec']}@{t.user_attrs['image_size']}", t.number)
    pareto = set(firsts.values())
    front = sorted((r for r in trained if r["trial"] in pareto), key=lambda r: -r["flash_top1"])
    hand_row: dict[str, Any] | None = dict(search.costs.get(hand))
    done = {f"{r['spec']}@{r['image_size']}": r for r in trained}
    try:
        run_dir = run_candidate(search.recipe, hand, search.teacher, folder / "flash", search.flash)
        from ..jobs.runs import metric_of

        hand_row["flash_top1"] = done[hand.key]["flash_top1"] if hand.key in done else metric_of(run_dir, "top1")
    except Exception as e:  # noqa: BLE001 — the reference point is optional; the search result stands
        console.print(f"[yellow]hand-picked student {hand.spec}: flash run failed ({e})[/]")
    full: dict[str, float] = {}
    trust = None
    if (cfg.top_k or cfg.random_k) and trained:
        uniq = list(dict.fromkeys(Candidate(r["spec"], r["image_size"]) for r in trained))
        chosen = pick([Candidate(r["spec"], r["image_size"]) for r in front], uniq, cfg.top_k, cfg.random_k, cfg.seed)
        console.print(f"proxy trust: {len(chosen)} candidate(s) distilled with the full budget …")
        full = run_full(search, chosen, cfg.workers, lambda m: console.print(f"  {m}", highlight=False))
        full = {**finished_full(search), **full}  # earlier sessions' full runs are pairs too
        picked = {c.key for c in chosen}
        keys = [k for k in full if k in done]
        trust = correlate([done[k]["flash_top1"] for k in keys], [full[k] for k in keys], seed=cfg.seed)
        trust["candidates"] = [{"key": k, "flash_top1": done[k]["flash_top1"], "full_top1": full[k],
                                "picked": k in picked} for k in keys]
        atomic_write_text(folder / "trust.json", json.dumps(trust, indent=2))
    rows = trial_rows(study, pareto, full)
    front = sorted((r for r in rows if r["pareto"] and r["state"] == "trained"), key=lambda r: -r["flash_top1"])
    best = max(front, key=lambda r: (r["full_top1"] is not None, r["full_top1"] or 0, r["flash_top1"]), default=None)
    write_csv(folder / "trials.csv", rows)
    pareto_chart(folder / "pareto.png", rows, search.recipe, hand_row)
    best_path = None
    if best is not None:
        best_path = folder / "best.yaml"
        atomic_write_text(best_path, best_recipe(search.recipe, best["spec"], int(best["image_size"]),
                                                        search.teacher))
    md = write_report(folder, rows, search.recipe, best, hand_row, trust, search.flash, seconds)
    console.print(f"\n{summary_line(rows)}")
    for r in front:
        console.print(f"  Pareto: {r['spec']} @ {r['image_size']} px — flash top-1 {r['flash_top1']:.2f}, "
                      f"{r['latency_ms']:.3g} ms, {r['params']} params", highlight=False)
    if trust is not None:
        console.print(f"flash proxy: {trust['verdict']}")
    console.print(f"report: [bold]{md.with_suffix('.html')}[/]")
    if best_path is None:
        raise TrainingError(f"no trial trained a candidate (see {folder / 'trials.csv'} for each error)")
    console.print(f"best: [bold]{best_path}[/] ({best['spec']} @ {best['image_size']} px); run it with "
                  f"`edgedistill run {best_path}`")
    sys.stdout.flush()
    return best_path
