"""Does pruning half the FLOPs buy latency, and does `round_to` (channel counts in multiples of 8/16) help?

    python benchmarks/prune_latency.py                       # every model below, ~10 min on 2 loaded cores
    python benchmarks/prune_latency.py --models cifar:resnet20@32 --rounds 5

Per model (random weights, `weights=None`: latency depends on shapes, not values), the product's own
`prune_structured` removes 50% of the FLOPs (`target_flops`, magnitude importance) in uniform and global scope,
with round_to none / 8 / 16. Every file is exported to fp32 ONNX and all of one model's files are timed
**interleaved** in the same rounds (`deploy/ab_latency.interleaved_latency`: ONNX Runtime, batch 1, 1 thread,
the order alternating per round); the speed-up over the unpruned file is computed per round. Writes
OUT/prune_latency.{json,md}; no machine paths. The CPU's SIMD flags are recorded, since vector width is the point.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
import torch
import torch_pruning as tp
from rich.console import Console

from edgedistill.atomic import atomic_write_text
from edgedistill.compress.cpu import detect_cpu
from edgedistill.compress.prune import prunable_layers, layer_width, prune_structured
from edgedistill.deploy.ab_latency import interleaved_latency
from edgedistill.deploy.export import export_onnx
from edgedistill.deploy.onnx_runtime import ort_latency
from edgedistill.deploy.profile import count_flops, count_params
from edgedistill.errors import UserError
from edgedistill.models import create_model
from edgedistill.models.heads import head_name

REPO = Path(__file__).resolve().parents[1]
MODELS = ("cifar:resnet8@32", "cifar:resnet20@32", "torchvision:mobilenet_v3_small@96", "torchvision:mobilenet_v3_small@224",
          "torchvision:resnet18@224")
VARIANTS = [(scope, r) for scope in ("uniform", "global") for r in (None, 8, 16)]


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def widths(model: torch.nn.Module) -> list[int]:
    """Output widths of every prunable layer but the classifier."""
    head = model.get_submodule(head_name(model))
    return [layer_width(m) for _, m in prunable_layers(model) if m is not head]


def build(spec: str, size: int, out: Path, flops_ratio: float, unreachable: dict[str, str]
          ) -> dict[str, dict[str, Any]]:
    """Export the unpruned model and every pruned variant; returns name → facts (file included); a variant
    whose target is out of reach goes into `unreachable` with the refusal."""
    files: dict[str, dict[str, Any]] = {}
    torch.manual_seed(0)
    base = create_model(spec, 10).eval()
    f0, w0 = count_flops(base, (1, 3, size, size)), widths(base)
    variants: list[tuple[str, torch.nn.Module, dict[str, Any]]] = [("unpruned", base, {})]
    for scope, r in VARIANTS:
        torch.manual_seed(0)
        m = create_model(spec, 10).eval()
        t0 = time.perf_counter()
        try:
            prune_structured(m, torch.zeros(2, 3, size, size), target_flops=int(f0 * (1 - flops_ratio)),
                             global_pruning=scope == "global", round_to=r)
        except UserError as e:  # e.g. a 16-channel ResNet cannot lose half its FLOPs in multiples of 16
            unreachable[f"{scope} round_to={r or '-'}"] = str(e)
            continue
        variants.append((f"{scope} round_to={r or '-'}", m.eval(), {"scope": scope, "round_to": r,
                                                                    "prune_s": time.perf_counter() - t0}))
    for name, m, extra in variants:
        path = export_onnx(m, out / f"{len(files)}.onnx", size, [str(i) for i in range(10)], [0.0] * 3, [1.0] * 3)
        w = widths(m)
        pruned = [b for a, b in zip(w0, w) if b != a]
        files[name] = {**extra, "file": path, "params": count_params(m), "flops": count_flops(m, (1, 3, size, size)),
                       "size_mb": path.stat().st_size / 1e6, "flops_kept": count_flops(m, (1, 3, size, size)) / f0,
                       "pruned_layers": len(pruned), "layers": len(w),
                       "pruned_mult8": sum(b % 8 == 0 for b in pruned), "pruned_mult16": sum(b % 16 == 0 for b in pruned),
                       "all_mult8": sum(b % 8 == 0 for b in w), "widths": w}
    return files


def nchwc_convs(path: Path, tmp: Path) -> tuple[int, int]:
    """(Convs ONNX Runtime rewrote into its NCHWc kernels, all Convs) in the graph it optimizes for this CPU."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = str(tmp / f"{path.stem}.opt.onnx")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    nodes = onnx.load(opts.optimized_model_filepath).graph.node
    convs = [n for n in nodes if n.op_type in ("Conv", "FusedConv")]
    return sum(n.domain == "com.microsoft.nchwc" for n in convs), len(convs)


def runs_for(path: Path, shape: tuple[int, ...], budget_ms: float) -> int:
    """Runs per block so that one block of the unpruned file takes about budget_ms."""
    ms = ort_latency(path, shape, threads=1, runs=10, warmup=5)["latency_ms_median"]
    return max(10, min(400, int(budget_ms / max(ms, 1e-3))))


def bench(model: str, rounds: int, budget_ms: float, flops_ratio: float, console: Console) -> dict[str, Any]:
    spec, size = model.rsplit("@", 1)
    s = int(size)
    with tempfile.TemporaryDirectory() as tmp:
        unreachable: dict[str, str] = {}
        files = build(spec, s, Path(tmp), flops_ratio, unreachable)
        for v in files.values():
            v["nchwc_convs"], v["convs"] = nchwc_convs(v["file"], Path(tmp))
        shape = (1, 3, s, s)
        runs = runs_for(files["unpruned"]["file"], shape, budget_ms)
        console.print(f"[cyan]{model}[/]: {len(files)} files, {rounds} rounds × {runs} runs each")
        ab = interleaved_latency({k: v["file"] for k, v in files.items()}, shape, rounds=rounds, runs=runs, threads=1)
    rows = {}
    for k, v in files.items():
        lat = ab["files"][k]
        sp = ab["speedup_vs_unpruned"].get(k)
        rows[k] = {**{a: b for a, b in v.items() if a != "file"},
                   "median_ms": lat["median_ms"], "min_ms": lat["min_ms"], "max_ms": lat["max_ms"],
                   "round_medians_ms": lat["round_medians_ms"],
                   **({"speedup": sp["median"], "speedup_min": sp["min"], "speedup_max": sp["max"],
                       "faster_in_rounds": sp["faster_in_rounds"]} if sp else {})}
    return {"model": spec, "image_size": s, "rounds": rounds, "runs_per_round": runs, "threads": 1, "batch": 1,
            "variants": rows, "unreachable": unreachable}


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# Pruned 50% FLOPs vs unpruned: ONNX Runtime latency, batch 1, 1 thread (interleaved)", "",
             f"CPU: {m['cpu']} ({', '.join(m['simd']) or 'flags unknown'}); {m['cores']} cores shared with other "
             f"work; ONNX Runtime {m['onnxruntime']}, torch {m['torch']}, Torch-Pruning {m['torch_pruning']}. "
             "Random weights (`weights=None`), magnitude importance, `target_flops` = 50% of the unpruned FLOPs. "
             "Latency: median of the round medians, min–max over rounds; speed-up computed per round "
             "(unpruned ms / pruned ms), `won` = rounds the pruned file was faster. `NCHWc convs`: convolutions ONNX "
             "Runtime's optimizer rewrote into its blocked NCHWc kernels on this CPU (the others run the NCHW path).", "",
             "| model | px | variant | FLOPs kept | params | MB | ms median (min–max) | speed-up (min–max) | won | "
             "pruned layers ×8 / ×16 | NCHWc convs |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for b in result["models"]:
        for k, v in b["variants"].items():
            sp = (f"**{v['speedup']:.2f}×** ({v['speedup_min']:.2f}–{v['speedup_max']:.2f})" if "speedup" in v else "1")
            won = f"{v['faster_in_rounds']}/{b['rounds']}" if "speedup" in v else "–"
            mult = f"{v['pruned_mult8']}/{v['pruned_layers']} · {v['pruned_mult16']}/{v['pruned_layers']}" \
                if v["pruned_layers"] else "–"
            lines.append(f"| {b['model']} | {b['image_size']} | {k} | {v['flops_kept']:.3f} | {v['params']:,} | "
                         f"{v['size_mb']:.2f} | {v['median_ms']:.3f} ({v['min_ms']:.3f}–{v['max_ms']:.3f}) | {sp} | "
                         f"{won} | {mult} | {v['nchwc_convs']}/{v['convs']} |")
        for k, why in b.get("unreachable", {}).items():
            lines.append(f"| {b['model']} | {b['image_size']} | {k} | out of reach: {why.split(' (')[0]} "
                         "| | | | | | | |")
    lines += ["", f"{result['rounds']} rounds; runs per round chosen so one block of the unpruned file lasts "
              f"about {result['block_ms']:.0f} ms. Command: `{result['command']}`.", ""]
    return "\n".join(lines)


def command(args: argparse.Namespace) -> str:
    """The command line that reproduces this result, defaults left out."""
    parts = ["python benchmarks/prune_latency.py"]
    if args.models != list(MODELS):
        parts.append("--models " + " ".join(args.models))
    parts += [f"--{k} {v}" for k, v, d in (("rounds", args.rounds, 9), ("block-ms", args.block_ms, 300.0),
                                         ("flops-ratio", args.flops_ratio, 0.5)) if v != d]
    return " ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="SPEC@PX, e.g. torchvision:resnet18@224")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--block-ms", type=float, default=300.0, help="length of one file's block of runs per round")
    ap.add_argument("--flops-ratio", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "prune_latency")
    args = ap.parse_args()
    torch.set_num_threads(1)
    console = Console(width=160)
    cpu = detect_cpu()
    result: dict[str, Any] = {
        "machine": {"cpu": cpu_name(), "simd": sorted(cpu.flags), "cores": os.cpu_count(),
                    "onnxruntime": ort.__version__, "torch": torch.__version__, "torch_pruning": tp.__version__},
        "rounds": args.rounds, "block_ms": args.block_ms, "flops_ratio": args.flops_ratio,
        "command": command(args), "models": []}
    args.out.mkdir(parents=True, exist_ok=True)
    for model in args.models:
        result["models"].append(bench(model, args.rounds, args.block_ms, args.flops_ratio, console))
        atomic_write_text(args.out / "prune_latency.json", json.dumps(result, indent=2))
        atomic_write_text(args.out / "prune_latency.md", markdown(result))
        console.print(markdown({**result, "models": result["models"][-1:]}))


if __name__ == "__main__":
    main()
