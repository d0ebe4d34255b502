"""Which calibration should static int8 default to? minmax vs percentile vs entropy on the edge chain's students.

    python benchmarks/edge.py --root ../shared/data/cifar10-subset          # first: the pruned, fine-tuned students
    python benchmarks/int8_calibration.py --root ../shared/data/cifar10-subset

Per seed, the fine-tuned (pruned) student of `benchmarks/edge.py`'s `unpruned` chain is quantized by the product's
own quantize stage once per calibration method (same 512 seeded train images, the format this CPU needs, mixed
precision off so calibration alone is compared), and measured on the held-out split: top-1 and top-1 agreement
with its fp32 file. Writes OUT/int8_calibration.{json,md}. Resumes: a finished compress folder is reused.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from edge import REPO, recipe_overrides
from portable import portable
from rich.console import Console

from edgedistill.atomic import atomic_write_text
from edgedistill.commands.compress import compress_target

METHODS = ("minmax", "percentile", "entropy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "cifar10-subset")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--calib-samples", type=int, default=512)
    ap.add_argument("--edge", type=Path, default=REPO / "benchmarks" / "results" / "edge")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "int8_calibration")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per latency figure (latency is not the point)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    console = Console(width=160)
    rows: dict[str, dict[str, dict[str, float]]] = {m: {} for m in METHODS}
    for seed in args.seeds:
        model = args.edge / "chains" / f"s{seed}" / "unpruned" / "2-finetune" / "model.safetensors"
        if not model.exists():
            raise SystemExit(f"{model} is missing: run benchmarks/edge.py first")
        for method in METHODS:
            stage = {"name": "quantize", "calibration": method, "calib_samples": args.calib_samples,
                     "mixed_precision": "off"}
            over = recipe_overrides(argparse.Namespace(root=args.root, runs=args.runs)) + [
                f"compress.stages={json.dumps([stage])}", "compress.warmup_runs=3",
                f"output.dir={args.out / 'runs' / f's{seed}'}", f"output.name={method}"]
            res = compress_target(str(model), over, console, resume=True)
            by = {e["stage"]: e for e in res["stages"]}
            q = by["quantize"]
            rows[method][f"s{seed}"] = {"fp32_top1": by["input"]["top1"], "int8_top1": q["top1"],
                                        "agreement": q.get("agreement_fp32"), "reported": q["reported"],
                                        "format": q["info"].get("format")}
    summary = {m: {k: {"mean": statistics.fmean(r[k] for r in v.values()),
                       "std": statistics.stdev(r[k] for r in v.values()) if len(v) > 1 else 0.0}
                   for k in ("int8_top1", "agreement")} for m, v in rows.items()}
    result = {"command": "python benchmarks/int8_calibration.py --seeds " + " ".join(map(str, args.seeds)),
              "calib_samples": args.calib_samples, "per_seed": rows, "summary": summary}
    md = ["# int8 calibration on the edge chain's pruned students (CIFAR-10 subset, 1,000 val images)", "",
          f"Command: `{result['command']}`", "", "| calibration | int8 top-1 | agreement with fp32 % |", "|---|---|---|"]
    md += [f"| {m} | {s['int8_top1']['mean']:.2f} ± {s['int8_top1']['std']:.2f} | "
           f"{s['agreement']['mean']:.2f} ± {s['agreement']['std']:.2f} |" for m, s in summary.items()]
    atomic_write_text(args.out / "int8_calibration.json", portable(json.dumps(result, indent=2)))
    atomic_write_text(args.out / "int8_calibration.md", portable("\n".join(md) + "\n"))
    console.print("\n".join(md))


if __name__ == "__main__":
    main()
