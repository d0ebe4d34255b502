"""Does distillation help a small detector on real images? Teacher once, then student alone vs distilled, seeds.

    python benchmarks/bccd_data.py --repo BCCD_Dataset --out ../shared/data/bccd      # the data, once
    python benchmarks/det.py --root ../shared/data/bccd --seeds 0 1 2
    python benchmarks/det.py --root ../shared/data/bccd --seeds 1 --no-table   # one seed per process
    python benchmarks/det.py --root ../shared/data/bccd --teacher-weights T.safetensors   # reuse a teacher
    python benchmarks/det.py --smoke                     # tiny det-shapes, 1 epoch, 2 seeds: the script runs

Data: BCCD blood-cell photographs (3 classes: RBC, WBC, Platelets) as Pascal VOC folders (the det-voc source),
built by benchmarks/bccd_data.py from a public repository snapshot (source, commit, licence and every change to
the annotations there); trained on its train split (205 images), monitored on val (87), reported on --split
(test: 72 images). Models: an FCOS MobileNetV3-Large teacher and an FCOS MobileNetV3-Small (width 0.5) student,
from scratch (no download). The teacher is trained once, by the run of --teacher-seed; every seed's run then
trains the student alone (detection loss) and distilled (detection loss + --terms) on the same budget, from the
same initial weights. The gain is the per-seed difference distilled − alone in COCO mAP, tested with the
project's paired test (edgedistill.analysis.stats.paired); a per-image Wilcoxon test (per-image COCO mAP, each
arm averaged over the seeds) is added. Every arm is an ordinary run folder under --out (reused when finished);
writes det.json and det.md (mean ± sd over seeds) to --results. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from arms import add_options, mean_sd, seed_run, teacher_first, write_results

from edgedistill.analysis.stats import paired, per_image_wilcoxon
from edgedistill.data.det_base import det_loader
from edgedistill.evaluate.detection import ap_scores, mean_ap
from edgedistill.models.factory import load_model
from edgedistill.recipe import load_recipe
from edgedistill.tasks.detection import build_det_data

BCCD = ["RBC", "WBC", "Platelets"]
METRICS = ("map", "map50", "map75", "map_small", "map_medium", "map_large", "teacher_agreement", "params",
           "latency_ms_median")
ARMS = ("teacher", "student_alone", "student")


def base(args: argparse.Namespace, seed: int) -> list[str]:
    if args.smoke:
        data = ["data.source=det-shapes", "data.image_size=64", "detection.synthetic_images=64", "eval.split=val"]
    else:
        data = ["data.source=det-voc", f"data.root={args.root}", f"data.image_size={args.image_size}",
                "detection.image_dir=JPEGImages", f"detection.class_names={BCCD}", f"eval.split={args.split}"]
    return ["task=detection", *data, "data.workers=0", "data.hflip=true", f"teacher.model={args.teacher}",
            f"teacher.epochs={args.teacher_epochs}", f"teacher.lr={args.teacher_lr}", f"student.model={args.student}",
            f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}", "train.optimizer=adamw",
            f"train.lr={args.lr}",
            "train.weight_decay=0.0001", f"train.warmup_epochs={args.warmup}", f"train.grad_clip={args.grad_clip}",
            f"train.seed={seed}", f"train.threads={args.threads}", f"train.eval_every={args.eval_every}",
            f"eval.threads={args.threads}", "eval.latency_runs=5", "eval.warmup_runs=2", "eval.baseline=true",
            "distill.ce_weight=1.0", f"distill.terms={args.terms}", f"output.dir={args.out}"]


def arm(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One seed's run (teacher trained by the --teacher-seed run, loaded by the others); its models' metrics."""
    m = seed_run(args, "det", seed, base(args, seed))
    return {"models": {k: {s: v.get(s) for s in METRICS} for k, v in m["models"].items()},
            "seconds": m["seconds"], "n_images": m["n_images"], "n_boxes": m["n_boxes"]}


@torch.no_grad()
def per_image_map(args: argparse.Namespace, seeds: list[int]) -> dict[str, Any]:
    """Per-image COCO mAP of each arm on the reported split, averaged over seeds; Wilcoxon distilled vs alone."""
    torch.set_num_threads(args.threads)
    held = build_det_data(load_recipe(None, base(args, seeds[0])))[1][args.split]
    loader = det_loader(held, args.batch_size, train=False, workers=0, seed=0)
    scores: dict[str, list[list[float]]] = {"student_alone": [], "student": []}
    for s in seeds:
        for k in scores:
            model = load_model(args.out / f"det-s{s}" / k / "model.safetensors")[0]
            model.set_image_size(args.image_size if not args.smoke else 64)  # type: ignore[operator]
            model.eval()
            row = []
            for images, boxes, labels in loader:
                for p, b, c in zip(model(images), boxes, labels, strict=True):
                    m = mean_ap()
                    keep = p["scores"] >= 0.05
                    m.update([{k2: v[keep] for k2, v in p.items()}], [{"boxes": b, "labels": c}])
                    row.append(ap_scores(m)["map"] or 0.0)
            scores[k].append(row)
    alone, dist = (np.mean(scores[k], axis=0) for k in ("student_alone", "student"))
    return {"metric": "per-image COCO mAP (each arm averaged over the seeds)", **per_image_wilcoxon(dist, alone)}


def fmt(v: list[float | None]) -> str:
    x = [a for a in v if a is not None]
    if not x:
        return "n/a"
    return f"{statistics.mean(x):.1f} ± {statistics.stdev(x) if len(x) > 1 else 0.0:.1f}"


def table(res: dict[str, Any], args: argparse.Namespace) -> list[str]:
    runs = res["runs"].values()
    per_seed = {k: ", ".join(f"{r['models'][k]['map']:.1f}" for r in runs) for k in ARMS}
    label = {"teacher": f"teacher {args.teacher} (trained once)", "student_alone": f"{args.student} alone",
             "student": f"{args.student} distilled ({res['terms_text']})"}
    out = [f"Data: {res['data']}; {res['split']} split, {res['n_images']} images, {res['n_boxes']} boxes; "
           f"seeds {res['seeds']}.", "",
           "| model | mAP % (mean ± sd over seeds) | mAP50 % | mAP small % | teacher agreement % | params "
           "| per seed mAP |",
           "|---|---|---|---|---|---|---|"]
    for k in ARMS:
        col = {m: [r["models"][k][m] for r in runs] for m in METRICS}
        agree = fmt(col["teacher_agreement"]) if k != "teacher" else "—"
        out.append(f"| {label[k]} | {fmt(col['map'])} | {fmt(col['map50'])} | {fmt(col['map_small'])} | {agree} | "
                   f"{col['params'][0] / 1e6:.2f} M | {per_seed[k]} |")
    g = res["gain"]
    ci = g["diff_ci"]
    ci_text = f"[{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci[0] is not None else "n/a"
    out += ["", f"Gain distilled − alone (mAP points): per seed {', '.join(f'{d:+.2f}' for d in res['diffs'])}; "
            f"mean {g['diff']:+.2f} (sd {res['diff_sd']:.2f}), 95% CI {ci_text}, {g['test']} p = {g['p']:.3g} "
            f"(n = {g['n']}); mAP50 per seed {', '.join(f'{d:+.2f}' for d in res['diffs50'])}; "
            f"teacher agreement per seed {', '.join(f'{d:+.1f}' for d in res['diffs_agree'])}."]
    if res.get("per_image"):
        p = res["per_image"]
        out.append(f"Per image ({p['metric']}, n = {p['n']}): mean difference {p['mean_diff']:+.2f}, distilled "
                   f"better on {p['better_a']}, alone better on {p['better_b']}, Wilcoxon p = {p['p']:.3g}.")
    out.append(f"Target +1.0 mAP (mean gain ≥ 1.0 and paired p < 0.05): "
               f"{'met' if res['target_met'] else 'not met'}; mean gain ≥ 1.0 alone: "
               f"{'yes' if g['diff'] >= 1.0 else 'no'}.")
    return out + ([f"Note: {res['note']}"] if res.get("note") else [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, help="BCCD VOC folders (benchmarks/bccd_data.py)")
    add_options(ap, "det", teacher="det:fcos_mobilenet_v3_large", student="det:fcos_mobilenet_v3_small@0.5",
                image_size=128, epochs=12, teacher_epochs=20, batch_size=16, lr=0.0015, eval_every=4, threads=1,
                terms="[{name: pkd, weight: 1.0, levels: 1}, {name: head_kd, weight: 2.0, T: 1.0}]")
    ap.add_argument("--teacher-lr", type=float, default=0.003, help="teacher.lr (the students: --lr)")
    ap.add_argument("--warmup", type=int, default=3, help="train.warmup_epochs (from-scratch FCOS needs it)")
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--note", default="", help="a line for the table, e.g. how the settings were chosen")
    ap.add_argument("--no-per-image", action="store_true", help="skip the per-image Wilcoxon test")
    ap.add_argument("--smoke", action="store_true", help="tiny det-shapes, 1 epoch, seeds 0 1, temp folder")
    args = ap.parse_args()
    if args.smoke:
        args.seeds, args.epochs, args.teacher_epochs, args.eval_every, args.warmup = [0, 1], 1, 1, 1, 0
        args.out = args.results = Path(tempfile.mkdtemp(prefix="bench-det-"))
        args.split = "val"
    elif args.root is None:
        ap.error("--root (BCCD folders from benchmarks/bccd_data.py), or --smoke")
    t0 = time.time()
    runs = {s: arm(args, s) for s in teacher_first(args)}
    if args.no_table:
        return
    seeds = sorted(runs)

    def col(k: str, m: str) -> list[float]:
        return [runs[s]["models"][k][m] or 0.0 for s in seeds]

    diffs = [d - a for d, a in zip(col("student", "map"), col("student_alone", "map"), strict=True)]
    gain = paired(col("student", "map"), col("student_alone", "map"))
    res = {
        "data": ("synthetic det-shapes scenes (64 px), not real images" if args.smoke else
                 f"BCCD blood cells (real photographs, 3 classes; benchmarks/bccd_data.py, Shenggan/BCCD_Dataset "
                 f"commit d272fb1), {args.image_size} px"),
        "split": args.split, "n_images": runs[seeds[0]]["n_images"], "n_boxes": runs[seeds[0]]["n_boxes"],
        "seeds": seeds, "teacher": args.teacher, "student": args.student, "terms": args.terms,
        "terms_text": " + ".join(f"{t.pop('name')} ({', '.join(f'{k} {v}' for k, v in t.items())})"
                                 for t in yaml.safe_load(args.terms)),
        "settings": {k: getattr(args, k) for k in ("image_size", "epochs", "teacher_epochs", "batch_size", "lr",
                                                   "teacher_lr", "warmup", "grad_clip", "threads", "eval_every")},
        "summary": {k: {m: mean_sd(col(k, m)) for m in ("map", "map50", "map_small")} for k in ARMS},
        "diffs": diffs, "diff_sd": statistics.stdev(diffs), "gain": gain,
        "diffs50": [d - a for d, a in zip(col("student", "map50"), col("student_alone", "map50"), strict=True)],
        "diffs_agree": [d - a for d, a in zip(col("student", "teacher_agreement"),
                                              col("student_alone", "teacher_agreement"), strict=True)],
        "gain50": paired(col("student", "map50"), col("student_alone", "map50")),
        "target_met": gain["diff"] >= 1.0 and gain["p"] is not None and gain["p"] < 0.05,
        "per_image": None if args.no_per_image else per_image_map(args, seeds),
        "runs": {str(s): runs[s] for s in seeds}, "note": args.note,
    }
    res["table_seconds"] = round(time.time() - t0, 1)
    write_results(args.results, "det", res, table(res, args))


if __name__ == "__main__":
    main()
