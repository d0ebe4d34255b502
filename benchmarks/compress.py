"""Compression chain evidence: int8 vs fp32, half-channel pruning + distillation fine-tuning, teacher → int8 student.

    python benchmarks/compress.py                                   # (a) digits demo and (b) ImageFolder
    python benchmarks/compress.py --which digits
    python benchmarks/compress.py --which imagefolder --root ../shared/data/cifar10-subset \\
        --teacher-file T.safetensors [--student-file S.safetensors]

Per dataset three chains on the same distilled student: [quantize] (int8 vs its fp32 file),
[prune 0.5 → finetune (distillation from the unpruned student) → quantize], and optionally [qat].
Every stage is measured by the product's own code; on top, fp32 vs int8 ONNX latency at batch 1 on
1 thread is timed interleaved (A/B alternating in rounds), because this machine is ±20-30% noisy.
Writes OUT/compress.json and OUT/compress.md. Not a test: minutes to tens of minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from portable import portable
from rich.console import Console

from edgedistill.commands.compress import compress_target
from edgedistill.compress.measure import all_threads
from edgedistill.deploy.ab_latency import interleaved_latency
from edgedistill.pipeline import run
from edgedistill.recipe import load_recipe
from edgedistill.recipes import recipe_path
from edgedistill.report.stages import stage_rows
from edgedistill.report.tables import markdown_table

REPO = Path(__file__).resolve().parents[1]
CIFAR = ["data.source=imagefolder", "data.image_size=32", "data.augment=padcrop", "data.hflip=true",
         "data.mean=[0.4914,0.4822,0.4465]", "data.std=[0.2470,0.2435,0.2616]"]


def interleaved(a: Path, b: Path, shape: tuple[int, ...], rounds: int, runs: int) -> dict[str, Any]:
    """fp32 vs int8 ONNX at 1 thread, alternating blocks of `runs` so drift hits both alike (the product's timer)."""
    r = interleaved_latency({"fp32": a, "int8": b}, shape, rounds=rounds, runs=runs, threads=1)
    f, q, s = r["files"]["fp32"], r["files"]["int8"], r["speedup_vs_fp32"]["int8"]
    return {"fp32_ms_round_medians": f["round_medians_ms"], "int8_ms_round_medians": q["round_medians_ms"],
            "fp32_ms": f["median_ms"], "int8_ms": q["median_ms"], "speedup": s["median"],
            "speedup_min_max": [s["min"], s["max"]], "int8_faster_in_rounds": s["faster_in_rounds"],
            "rounds": rounds, "runs_per_round": runs, "threads": 1, "batch": shape[0]}


def by_stage(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["stage"]: e for e in result["stages"]}


def summarize(q: dict[str, Any], p: dict[str, Any], qat: dict[str, Any] | None, out: Path, size: int,
              args: argparse.Namespace) -> dict[str, Any]:
    qs, ps = by_stage(q), by_stage(p)
    fp32, int8 = qs["input"], qs["quantize"]
    ab = (interleaved(Path(q["dir"]) / fp32["artifact"], Path(q["dir"]) / int8["artifact"], (1, 3, size, size),
                              args.ab_rounds, args.ab_runs) if int8["reported"] else None)
    s: dict[str, Any] = {
        "int8_vs_fp32": {
            "fp32_bytes_mb": fp32["size_mb"], "int8_mb": int8["size_mb"], "size_ratio": fp32["size_mb"] / int8["size_mb"],
            "top1_fp32": fp32["top1"], "top1_int8": int8["top1"], "top1_diff": int8["top1"] - fp32["top1"],
            "agreement_fp32": int8.get("agreement_fp32"), "reported": int8["reported"],
            "ort_b1_t1_stage_table_ms": [fp32["latency"]["ort_b1_t1"]["latency_ms_median"],
                                         int8["latency"]["ort_b1_t1"]["latency_ms_median"]],
            "interleaved_b1_t1": ab},
        "pruned_half_finetuned": {
            "top1_unpruned": ps["input"]["top1"], "top1_pruned": ps["prune"]["top1"],
            "top1_pruned_finetuned": ps["finetune"]["top1"], "diff": ps["finetune"]["top1"] - ps["input"]["top1"],
            "params_unpruned": ps["input"]["params"], "params_pruned": ps["prune"]["params"],
            "flops_unpruned": ps["input"]["flops"], "flops_pruned": ps["prune"]["flops"]},
    }
    if "teacher" in ps and ps["quantize"]["reported"]:
        t, f = ps["teacher"], ps["quantize"]
        s["teacher_to_int8_pruned"] = {"teacher_mb": t["size_mb"], "final_mb": f["size_mb"],
                                       "size_ratio": t["size_mb"] / f["size_mb"], "top1_teacher": t["top1"],
                                       "top1_final": f["top1"], "params_ratio": t["params"] / f["params"]}
    if qat is not None:
        e = by_stage(qat)["qat"]
        s["qat"] = {"top1": e["top1"], "size_mb": e.get("size_mb"), "reported": e["reported"],
                    "ort_b1_t1_ms": e["latency"].get("ort_b1_t1", {}).get("latency_ms_median"),
                    "parity": e["info"].get("qat_parity")}
    return s


def chains(name: str, ckpt: str, base: list[str], out: Path, args: argparse.Namespace, console: Console
           ) -> dict[str, Any]:
    """The three chains on one student checkpoint (or run folder); results kept under OUT/<chain>/."""
    timing = [f"compress.latency_runs={args.runs}", "compress.warmup_runs=10", "train.resume=false"]
    results: dict[str, Any] = {}
    quant = f"{{name: quantize, calib_samples: {args.calib_samples}, calibration: {args.calibration}}}"
    plan = {"int8": f"[{quant}]",
            "prune": f"[{{name: prune, ratio: 0.5}}, {{name: finetune, epochs: {args.ft_epochs}, lr: {args.ft_lr}}}, "
                     f"{quant}]"}
    if args.qat_epochs:
        plan["qat"] = f"[{{name: qat, epochs: {args.qat_epochs}, lr: {args.qat_lr}}}]"
    for chain, stages in plan.items():
        t0 = time.perf_counter()
        # resume=True: a chain finished earlier is reloaded, an interrupted one continues (compress --resume)
        res = compress_target(ckpt, base + timing + [f"compress.stages={stages}", f"output.dir={out}",
                                                     f"output.name={chain}"], console, resume=True)
        res["seconds"] = round(time.perf_counter() - t0, 1)
        results[chain] = res
    size = int(next(o for o in base if o.startswith("data.image_size=")).split("=")[1]) if any(
        o.startswith("data.image_size=") for o in base) else 16
    summary = summarize(results["int8"], results["prune"], results.get("qat"), out, size, args)
    return {"dataset": name, "checkpoint": ckpt, "summary": summary, "chains": results}


def digits(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    out = args.out / "digits"
    run_dir = run(load_recipe(recipe_path("demo"), [f"output.dir={out}", "output.name=student", "eval.baseline=false",
                                                    "eval.latency_runs=20"]), console)
    teacher = f"teacher.model=file:{run_dir / 'teacher' / 'model.safetensors'}"
    return chains("digits (demo recipe, 16 px)", str(run_dir / "student" / "model.safetensors"),
                  ["data.image_size=16", "data.workers=0", teacher], out, args, console)


def imagefolder(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    out = args.out / "imagefolder"
    base = CIFAR + [f"data.root={args.root}", "data.workers=2", f"teacher.model=file:{args.teacher_file}",
                    "train.batch_size=128"]
    ckpt = args.student_file
    if ckpt is None:
        over = base + [f"student.model={args.student}", f"train.epochs={args.epochs}", "train.lr=0.1",
                       "train.warmup_epochs=1", "eval.baseline=false", "eval.latency_runs=20",
                       f"output.dir={out}", "output.name=student"]
        ckpt = str(run(load_recipe(recipe_path("demo"), over), console) / "student" / "model.safetensors")
    return chains(f"ImageFolder {args.root} (32 px)", str(ckpt), base, out, args, console)


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["# Compression benchmark", ""]
    for r in results:
        lines += [f"## {r['dataset']}", "", f"Student: `{r['checkpoint']}`", "", "```json",
                  json.dumps(r["summary"], indent=2), "```", ""]
        for chain, res in r["chains"].items():
            header, body = stage_rows(res, all_threads())
            lines += [f"### chain `{chain}` ({res['seconds']} s)", "", markdown_table(header, body), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--which", nargs="+", default=["digits", "imagefolder"], choices=["digits", "imagefolder"])
    ap.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "cifar10-subset")
    ap.add_argument("--teacher-file", type=Path, help="trained teacher .safetensors for the ImageFolder chain")
    ap.add_argument("--student-file", type=Path, help="an already distilled student .safetensors (skips training)")
    ap.add_argument("--student", default="cifar:resnet8")
    ap.add_argument("--epochs", type=int, default=15, help="student distillation epochs when it is trained here")
    ap.add_argument("--ft-epochs", type=int, default=3)
    ap.add_argument("--ft-lr", type=float, default=0.01)
    ap.add_argument("--calibration", default="minmax", choices=["minmax", "entropy", "percentile"])
    ap.add_argument("--calib-samples", type=int, default=256)
    ap.add_argument("--qat-epochs", type=int, default=1, help="0 skips the qat chain")
    ap.add_argument("--qat-lr", type=float, default=0.001)
    ap.add_argument("--runs", type=int, default=100, help="timed runs per latency figure")
    ap.add_argument("--ab-rounds", type=int, default=7)
    ap.add_argument("--ab-runs", type=int, default=200)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "compress")
    args = ap.parse_args()
    if "imagefolder" in args.which and args.teacher_file is None:
        ap.error("--teacher-file is needed for the imagefolder chain")
    console = Console(width=150)
    args.out.mkdir(parents=True, exist_ok=True)
    done = args.out / "compress.json"
    # Results of the datasets not rerun now are kept, so `--which imagefolder` adds to an earlier digits run.
    earlier = json.loads(done.read_text()) if done.exists() else []
    results = [r for r in earlier if r.get("which", r["dataset"].split()[0].lower()) not in args.which]
    for which in args.which:
        results.append({"which": which, **(digits(args, console) if which == "digits" else imagefolder(args, console))})
        done.write_text(portable(json.dumps(results, indent=2, default=str)))
        (args.out / "compress.md").write_text(portable(markdown(results)))
    for r in results:
        console.print(r["dataset"], json.dumps(r["summary"], indent=2))


if __name__ == "__main__":
    main()
