"""What a KD student inherits from its teacher, and how stable a tree explanation of the teacher is.

    python benchmarks/audit.py --root ../shared/data/cifar10-subset --threads 1     # ~1 h on 2 CPU cores
    python benchmarks/audit.py --smoke                                               # digits, seconds: checks the script
    python benchmarks/audit.py --from-compare runs/bench-compare/methods --seeds 0 1 2  # audit only, over seeds

--from-compare DIR audits the runs of `benchmarks/compare.py` instead of training: for each seed, the kd arm's
student against the shared teacher with the alone arm of the same seed as the baseline (`audit --alone`), and
writes OUT/audit_seeds.{json,md}: every fidelity figure per seed and its mean ± std over seeds.

One run of recipes/cifar10-edge.yaml without its compression chain: a ResNet-8 distilled with KD from a given
trained ResNet-56 teacher (--teacher-weights, by default the edge benchmark's seed-0 teacher), plus the same
ResNet-8 trained alone on the same budget (eval.baseline=true). Then `edgedistill audit` on it (the KD student vs
the student alone: inherited errors, perturbations, CKA, ECE) and `edgedistill explain` with --repeats fits
(approximation tree vs scikit-learn's CART: fidelity and structural stability). A finished run is reused.
Writes OUT/audit.json, OUT/explain.json, OUT/audit.md (machine paths stripped) and the two charts. Not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from portable import portable
from rich.console import Console

from edgedistill.commands.audit import run_audit
from edgedistill.commands.explain import run_explain
from edgedistill.pipeline import run
from edgedistill.recipe import load_recipe
from edgedistill.recipes import recipe_path
from edgedistill.report.audit import fidelity_rows, perturbation_rows
from edgedistill.report.explain import stability_rows
from edgedistill.report.tables import markdown_table

REPO = Path(__file__).resolve().parents[1]
TEACHER = REPO / "benchmarks" / "results" / "edge" / "runs" / "s0" / "teacher" / "model.safetensors"
SMOKE = ["data.image_size=16", "data.max_train_samples=256", "data.max_val_samples=64", "teacher.model=cifar:resnet8",
         "teacher.epochs=2", "train.epochs=1", "train.batch_size=32", "eval.latency_runs=1", "eval.warmup_runs=1"]


def train(args: argparse.Namespace, console: Console) -> Path:
    """The KD student and the student alone (reused when the run finished earlier)."""
    run_dir = args.runs / "audit"
    if (run_dir / "metrics.json").exists() and (run_dir / "student_alone" / "model.safetensors").exists():
        console.print(f"trained earlier, reusing {run_dir}")
        return run_dir
    common = [f"output.dir={args.runs}", "output.name=audit", "eval.baseline=true",
              f"train.resume={str(run_dir.exists()).lower()}"]
    if args.smoke:
        return run(load_recipe(recipe_path("demo"), SMOKE + common), console)
    weights = Path(args.teacher_weights).resolve()
    over = [f"data.root={Path(args.root).resolve()}", f"teacher.model={args.teacher}", f"teacher.weights={weights}",
            "teacher.epochs=null", f"train.epochs={args.epochs}", f"train.threads={args.threads}",
            "compress.stages=[]", "eval.latency_runs=20"]
    return run(load_recipe(REPO / "recipes" / "cifar10-edge.yaml", over + common), console)


def markdown(audit: dict[str, Any], explain: dict[str, Any], args: argparse.Namespace, times: dict[str, float]) -> str:
    cmd = "python benchmarks/audit.py " + ("--smoke" if args.smoke else
                                           f"--root {args.root} --epochs {args.epochs} --threads {args.threads} "
                                           f"--repeats {args.repeats} --max-images {args.max_images}")
    lines = [
        "# Fidelity audit and approximation trees" + (" (smoke: digits)" if args.smoke else ""),
        "",
        f"`{cmd}` — training {times['train']:.0f} s, audit {times['audit']:.0f} s, explain {times['explain']:.0f} s.",
        "",
        (f"Teacher `{audit['models']['teacher']}`, student `{audit['models']['student']}` distilled with KD and "
         f"trained alone on the same budget; {audit['n_images']} images of the {audit['split']} split."),
        "",
        markdown_table(*fidelity_rows(audit)),
        "",
        "## Under perturbation",
        "",
        markdown_table(*perturbation_rows(audit)),
        "",
        f"## Approximation tree vs CART ({explain['settings']['repeats']} fits, depth {explain['settings']['depth']})",
        "",
        (f"Features: the first {explain['settings']['components']} principal components of the teacher's "
         f"embedding; the teacher's head on their reconstruction agrees with the teacher on "
         f"{explain['features']['reconstruction_agreement']:.1f}% of the {explain['split']} images."),
        "",
        markdown_table(*stability_rows(explain)),
        "",
    ]
    return "\n".join(lines)


FIGURES = {  # name → how to read it from one audit, per student
    "top-1 (%)": lambda a, s: a["clean"][s]["top1"],
    "agreement with teacher (%)": lambda a, s: a["fidelity"][s]["agreement"],
    "KL(teacher‖student), nats": lambda a, s: a["fidelity"][s]["kl"],
    "linear CKA, penultimate": lambda a, s: a["fidelity"][s]["cka"],
    "teacher errors repeated exactly (%)": lambda a, s: 100 * a["inherited"][s]["inherited_rate"],
    "teacher errors also wrong (%)": lambda a, s: 100 * a["inherited"][s]["student_wrong_rate"],
    "per-image error correlation (phi)": lambda a, s: a["errors"][s]["image_error_corr"],
    "ECE": lambda a, s: a["clean"][s]["ece"],
}


def from_compare(args: argparse.Namespace, console: Console) -> None:
    """Audit kd-sN against the shared teacher with alone-sN as the baseline, per seed; mean ± std over seeds."""
    import statistics

    runs = args.from_compare / "runs"
    per_seed: dict[int, dict[str, Any]] = {}
    for seed in args.seeds:
        kd, alone = runs / f"kd-s{seed}", runs / f"alone-s{seed}"
        done = kd / "audit" / "audit.json"
        if done.exists() and json.loads(done.read_text()).get("alone_from") == str(alone):
            per_seed[seed] = json.loads(done.read_text())  # audited earlier: reused
        else:
            per_seed[seed] = run_audit(kd, max_images=args.max_images, alone=alone, console=console)
    table: dict[str, dict[str, Any]] = {}
    for name, get in FIGURES.items():
        for student in ("student", "student_alone"):
            vals = [get(a, student) for a in per_seed.values()]
            table.setdefault(name, {})[student] = {
                "per_seed": vals, "mean": statistics.mean(vals),
                "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
    teacher_errors = [a["inherited"]["student"]["teacher_errors"] for a in per_seed.values()]
    out = {"source": portable(str(args.from_compare)), "seeds": list(per_seed), "n_images": args.max_images,
           "teacher_errors": teacher_errors, "figures": table}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audit_seeds.json").write_text(portable(json.dumps(out, indent=2)))
    rows = [[name, *(f"{v[k]['mean']:.3f} ± {v[k]['std']:.3f}" for k in ("student", "student_alone"))]
            for name, v in table.items()]
    md = [f"# Fidelity audit over seeds: KD student vs the student trained alone ({len(per_seed)} seeds)", "",
          (f"`python benchmarks/audit.py --from-compare {portable(str(args.from_compare))} --seeds "
           f"{' '.join(map(str, args.seeds))}`: the compare benchmark's `kd` and `alone` arms of each seed, audited "
           f"against their shared teacher on the {per_seed[args.seeds[0]]['split']} split "
           f"({per_seed[args.seeds[0]]['n_images']} images; the teacher is wrong on {teacher_errors[0]} of them)."),
          "",
          markdown_table(["figure (mean ± std over seeds)", "KD student", "student alone"], rows), ""]
    (args.out / "audit_seeds.md").write_text(portable("\n".join(md)))
    console.print("\n".join(md))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="../shared/data/cifar10-subset")
    p.add_argument("--teacher", default="cifar:resnet56")
    p.add_argument("--teacher-weights", default=str(TEACHER), help="the trained teacher (safetensors)")
    p.add_argument("--epochs", type=int, default=20, help="epochs of the KD student and of the student alone")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the training (train.threads)")
    p.add_argument("--repeats", type=int, default=100, help="fits of the approximation tree and of CART")
    p.add_argument("--max-images", type=int, default=1000, help="held-out images audited")
    p.add_argument("--smoke", action="store_true", help="tiny digits run to check the script")
    p.add_argument("--from-compare", type=Path, default=None,
                   help="a benchmarks/compare.py comparison folder: audit its kd arm vs its alone arm per seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds audited with --from-compare")
    p.add_argument("--runs", type=Path, default=Path("runs/bench-audit"), help="where the run folder goes")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "audit")
    args = p.parse_args()
    if args.from_compare:
        from_compare(args, Console())
        return
    if args.smoke:
        args.runs, args.out = Path(str(args.runs) + "-smoke"), Path(str(args.out) + "-smoke")
        args.repeats, args.max_images = min(args.repeats, 5), min(args.max_images, 64)
    elif not Path(args.teacher_weights).is_file():
        p.error(f"--teacher-weights {args.teacher_weights} is missing: run benchmarks/edge.py first or pass a file")
    console = Console()
    times: dict[str, float] = {}
    t = time.perf_counter()
    run_dir = train(args, console)
    times["train"] = time.perf_counter() - t
    t = time.perf_counter()
    audit = run_audit(run_dir, max_images=args.max_images, console=console)
    times["audit"] = time.perf_counter() - t
    t = time.perf_counter()
    extra = ["explain.samples=4000", "explain.fresh=2000"] if args.smoke else []
    explain = run_explain(run_dir, extra, repeats=args.repeats, console=console)
    times["explain"] = time.perf_counter() - t
    args.out.mkdir(parents=True, exist_ok=True)
    for name, obj in (("audit.json", audit), ("explain.json", {**explain, "seconds": times})):
        (args.out / name).write_text(portable(json.dumps(obj, indent=2)))
    (args.out / "audit.md").write_text(portable(markdown(audit, explain, args, times)))
    shutil.copy2(run_dir / "audit" / "robustness.png", args.out / "robustness.png")
    shutil.copy2(run_dir / "explain" / "tree.png", args.out / "tree.png")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
