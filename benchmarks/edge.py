"""The headline chain on real images, over seeds: teacher → distilled student → prune → distill → int8.

    python benchmarks/edge.py --root ../shared/data/cifar10-subset                 # 3 seeds, both fine-tune teachers
    python benchmarks/edge.py --root ../shared/data/cifar10-subset --seeds 0 --teachers unpruned

Per seed s: `edgedistill run recipes/cifar10-edge.yaml train.seed=s` trains the distilled student (seed 0 also
trains the teacher, later seeds reuse its weights), then the recipe's compression chain runs on that student
once per fine-tune teacher (`unpruned`: the distilled student before pruning; `teacher`: the ResNet-56), every
stage measured by the product's own code. On top, the teacher's fp32 ONNX file, the student's fp32 file and
the final int8 file are timed interleaved (ONNX Runtime, 1 thread, batch 1, rounds of alternating blocks).

Everything resumes: finished runs and chains are reused, an interrupted one continues. Writes OUT/edge.json and
OUT/edge.md (paths relative to the repository) and copies seed 0's stage chart. Not a test: about an hour on 2
CPU cores. Targets (issue 10): pruning ≤ 1 point below the unpruned student at 50% FLOPs removed (mean of the
seeds); final int8 ≥ 10× faster and ≥ 10× smaller than the teacher, within 2 points of the distilled fp32
student, ≥ 95% top-1 agreement with its fp32 source.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from edgedistill.atomic import atomic_write_text
from edgedistill.commands.compress import compress_target
from edgedistill.compress.measure import all_threads
from edgedistill.deploy.ab_latency import interleaved_latency
from edgedistill.pipeline import run
from edgedistill.recipe import load_recipe, load_yaml
from edgedistill.report.stages import stage_rows
from edgedistill.report.tables import markdown_table

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "cifar10-edge.yaml"


def rel(p: Path | str) -> str:
    """A path as the committed results show it: relative to the repository, never the machine's absolute path."""
    p = Path(p).resolve()
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return p.name


def teacher_file(args: argparse.Namespace) -> Path:
    """The one teacher every seed's student learns from: trained by the run of seed --teacher-seed."""
    return args.out / "runs" / f"s{args.teacher_seed}" / "teacher" / "model.safetensors"


def train(seed: int, args: argparse.Namespace, console: Console) -> Path:
    """The distilled student of one seed (and, for the first seed, the teacher); reused when finished."""
    runs = args.out / "runs"
    run_dir = runs / f"s{seed}"
    over = [f"data.root={args.root}", f"train.seed={seed}", f"output.dir={runs}", f"output.name=s{seed}",
            "compress.stages=[]"]
    if seed != args.teacher_seed:
        over += [f"teacher.weights={teacher_file(args)}",
                 "teacher.epochs=null"]
    if (run_dir / "student" / "model.safetensors").exists() and (run_dir / "metrics.json").exists():
        console.print(f"[cyan]s{seed}[/]: trained earlier, reusing {run_dir}")
        return run_dir
    resume = run_dir.exists()
    return run(load_recipe(RECIPE, over + [f"train.resume={str(resume).lower()}"]), console)


def recipe_overrides(args: argparse.Namespace) -> list[str]:
    """The recipe's data and train keys as overrides: compressing a model file starts from its own data keys only."""
    r = load_yaml(RECIPE)
    out = [f"{sec}.{k}={json.dumps(v)}" for sec in ("data", "train") for k, v in r[sec].items()]
    return out + [f"data.root={args.root}", f"compress.latency_runs={args.runs}", "train.resume=false"]


def chain(run_dir: Path, seed: int, ft_teacher: str, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """The recipe's compress stages on the seed's student, the fine-tune taught by `ft_teacher`."""
    stages = load_yaml(RECIPE)["compress"]["stages"]
    stages = [{**s, "teacher": ft_teacher} if s["name"] in ("prune", "finetune") else s for s in stages]
    over = recipe_overrides(args) + [f"teacher.model=file:{teacher_file(args)}", f"compress.stages={json.dumps(stages)}",
                                     f"output.dir={args.out / 'chains' / f's{seed}'}", f"output.name={ft_teacher}"]
    t0 = time.perf_counter()
    res = compress_target(str(run_dir / "student" / "model.safetensors"), over, console, resume=True)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def by_stage(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["stage"]: e for e in res["stages"]}


def summarize(res: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The figures the targets are judged on, for one chain of one seed."""
    st = by_stage(res)
    t, s0 = st["teacher"], st["input"]
    ft = next(e for e in reversed(res["stages"]) if e["precision"] == "fp32" and e["index"] not in ("ref", 0))
    q = st.get("quantize")
    out = {"teacher_top1": t["top1"], "student_top1": s0["top1"], "pruned_top1": ft["top1"],
           "prune_drop": s0["top1"] - ft["top1"], "flops_removed": 1 - ft["flops"] / s0["flops"],
           "params_removed": 1 - ft["params"] / s0["params"], "int8_reported": bool(q and q["reported"])}
    if q and q["reported"]:
        out.update(int8_top1=q["top1"], int8_drop_vs_student=s0["top1"] - q["top1"],
                   int8_agreement=q.get("agreement_fp32"), size_ratio=t["size_mb"] / q["size_mb"],
                   int8_format=q["info"].get("format"))
        base = Path(res["dir"])
        files = {"teacher": base / t["artifact"], "student_fp32": base / s0["artifact"],
                 "pruned_fp32": base / ft["artifact"], "int8": base / q["artifact"]}
        s = load_yaml(RECIPE)["data"]["image_size"]
        ab = interleaved_latency(files, (1, 3, s, s), rounds=args.ab_rounds, runs=args.ab_runs, threads=1)
        out["ab_latency"] = ab
        out["latency_ratio"] = ab["speedup_vs_teacher"]["int8"]["median"]
        sp = ab["speedup_vs_teacher"]
        out["pruning_speedup"] = sp["pruned_fp32"]["median"] / sp["student_fp32"]["median"]
    return out


def mean_std(xs: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}


def aggregate(per: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Mean ± std over seeds per fine-tune teacher, and the issue's targets judged on the means."""
    agg: dict[str, Any] = {}
    for ft, seeds in per.items():
        rows = list(seeds.values())
        keys = [k for k in ("teacher_top1", "student_top1", "pruned_top1", "prune_drop", "flops_removed",
                            "int8_top1", "int8_drop_vs_student", "int8_agreement", "size_ratio", "latency_ratio", "pruning_speedup")
                if all(r.get(k) is not None for r in rows)]
        m = {k: mean_std([r[k] for r in rows]) for k in keys}
        targets = {"prune_drop_le_1pt_at_50pct_flops": (m["prune_drop"]["mean"] <= 1.0
                                                        and m["flops_removed"]["mean"] >= 0.5 - 0.01)}
        if "latency_ratio" in m:
            targets.update(latency_ge_10x=m["latency_ratio"]["mean"] >= 10, size_ge_10x=m["size_ratio"]["mean"] >= 10,
                           int8_within_2pts=m["int8_drop_vs_student"]["mean"] <= 2,
                           agreement_ge_95=m["int8_agreement"]["mean"] >= 95)
        agg[ft] = {"seeds": list(seeds), "stats": m, "targets": targets}
    return agg


def markdown(result: dict[str, Any], chains: dict[str, dict[str, Any]]) -> str:
    lines = ["# Edge chain benchmark (CIFAR-10 subset)", "", f"Command: `{result['command']}`", "",
             "| fine-tune teacher | seeds | teacher top-1 | student top-1 | pruned+ft top-1 | drop | FLOPs removed "
             "| int8 top-1 | int8 agree % | size ×| latency × (A/B) | pruning's own speed-up (A/B) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(m: dict[str, Any], k: str, fmt: str = ".2f") -> str:
        return "–" if k not in m else f"{m[k]['mean']:{fmt}} ± {m[k]['std']:{fmt}}"

    for ft, a in result["aggregate"].items():
        m = a["stats"]
        lines.append(f"| {ft} | {len(a['seeds'])} | {f(m, 'teacher_top1')} | {f(m, 'student_top1')} | "
                     f"{f(m, 'pruned_top1')} | {f(m, 'prune_drop')} | {f(m, 'flops_removed', '.3f')} | "
                     f"{f(m, 'int8_top1')} | {f(m, 'int8_agreement')} | {f(m, 'size_ratio', '.1f')} | "
                     f"{f(m, 'latency_ratio', '.1f')} | {f(m, 'pruning_speedup')} |")
    if result.get("pending"):
        lines += ["", f"Pending (not run yet, not in the table): {', '.join(result['pending'])}"]
    lines += ["", "| fine-tune teacher | target (issue 10, on the mean over seeds) | met |", "|---|---|---|"]
    lines += [f"| {ft} | {name} | {'yes' if ok else 'NO'} |" for ft, a in result["aggregate"].items()
              for name, ok in a["targets"].items()]
    lines.append("")
    for name, res in chains.items():
        header, body = stage_rows(res, all_threads())
        lines += [f"## chain `{name}`", "", markdown_table(header, body), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "cifar10-subset")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--teacher-seed", type=int, default=0, help="the seed whose run trains the shared teacher")
    ap.add_argument("--teachers", nargs="+", default=["unpruned", "teacher"], choices=["unpruned", "teacher"],
                    help="who teaches the pruned student's fine-tuning (one chain each)")
    ap.add_argument("--runs", type=int, default=100, help="timed runs per latency figure in the stage table")
    ap.add_argument("--ab-rounds", type=int, default=9)
    ap.add_argument("--ab-runs", type=int, default=200)
    ap.add_argument("--only-finished", action="store_true",
                    help="summarize the chains finished so far; the others are listed as pending, not run")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "edge")
    args = ap.parse_args()
    console = Console(width=160)
    args.out.mkdir(parents=True, exist_ok=True)
    per: dict[str, dict[str, dict[str, Any]]] = {ft: {} for ft in args.teachers}
    chains: dict[str, dict[str, Any]] = {}
    if args.teacher_seed not in args.seeds and not teacher_file(args).exists():
        train(args.teacher_seed, args, console)
    pending = []
    for seed in args.seeds:
        run_dir = train(seed, args, console)
        for ft in args.teachers:
            if args.only_finished and not (args.out / "chains" / f"s{seed}" / ft / "stages.json").exists():
                pending.append(f"s{seed}/{ft}")
                continue
            res = chain(run_dir, seed, ft, args, console)
            chains[f"s{seed}/{ft}"] = res
            per[ft][f"s{seed}"] = summarize(res, args)
    result = {"command": "python benchmarks/edge.py " + " ".join(
                  [f"--seeds {' '.join(map(str, args.seeds))}", f"--teachers {' '.join(args.teachers)}"]
                  + (["--only-finished"] if args.only_finished else [])),
              "data": rel(args.root) if args.root.resolve().is_relative_to(REPO) else args.root.name,
              "recipe": rel(RECIPE), "per_seed": per, "aggregate": aggregate({k: v for k, v in per.items() if v}),
              "pending": pending}
    for res in chains.values():  # stage folders as repository-relative paths
        res["dir"] = rel(res["dir"])
    atomic_write_text(args.out / "edge.json", json.dumps(result, indent=2, default=str))
    atomic_write_text(args.out / "edge.md", markdown(result, chains))
    first = args.out / "chains" / f"s{args.seeds[0]}" / args.teachers[0]
    for png in ("stages_accuracy_latency.png", "stages_size.png"):
        if (first / png).exists():
            shutil.copy(first / png, args.out / png)
    console.print(markdown(result, {}))


if __name__ == "__main__":
    main()
