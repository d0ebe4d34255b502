"""The edge chain at a realistic input size: MobileNetV3-small at 96 px, distilled, pruned, int8, every runtime.

    python benchmarks/edge224.py --root ../shared/data/cifar10-subset
    python benchmarks/edge224.py --root ../shared/data/cifar10-subset --deploy final   # the matrix of the chain's model only

`edgedistill run recipes/edge224.yaml` trains a ResNet-18 teacher and a KD-distilled `timm:mobilenetv3_small_100`
student from scratch on the CIFAR-10 subset upscaled to 96 px; `edgedistill compress` takes the student through
the recipe's chain (prune half the FLOPs → distillation fine-tune → int8 chosen by measurement); `edgedistill
deploy` builds the chain's final model (and, with `--deploy final,student`, the unpruned student) in ONNX
Runtime, OpenVINO (NNCF int8), ExecuTorch (XNNPACK) and LiteRT, fp32 and int8. On top, the teacher, the student,
the pruned student and the shipped int8 file are timed interleaved (batch 1, 1 thread, rounds of alternating
blocks, ratios per round) in ONNX Runtime and in OpenVINO, and every matrix row's top-1 on the held-out split
is scored against the labels.

Everything resumes: a finished run, chain stage or matrix is reused. Writes OUT/edge224.json and OUT/edge224.md
(paths relative to the repository, no machine paths) and copies the chain's stage charts. Not a test: about an
hour on 2 shared CPU cores. Targets (issue 23): the shipped int8 student ≥ 1.5× faster than its fp32 file in at
least one runtime, ≥ 97% top-1 agreement, ≤ 1 point top-1 drop; the recommendation never slower than fp32;
pruning 50% of the FLOPs ≥ 1.3× faster at batch 1.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from portable import REPO, portable
from rich.console import Console

from edgedistill.atomic import atomic_write_text
from edgedistill.commands.compress import compress_target
from edgedistill.commands.deploy import deploy_target
from edgedistill.compress.measure import all_threads
from edgedistill.deploy.ab_latency import interleaved_rounds
from edgedistill.deploy.backend import predict_batches
from edgedistill.deploy.runtimes import RUNTIMES
from edgedistill.pipeline import run
from edgedistill.recipe import load_recipe, load_yaml
from edgedistill.report.stages import stage_rows
from edgedistill.report.tables import markdown_table

RECIPE = REPO / "recipes" / "edge224.yaml"  # --recipe replaces it (a smoke test with a tiny copy)
AB_RUNTIMES = ("onnxruntime", "openvino")


def scrub(obj: Any) -> Any:
    """Every machine path inside a result made repository-relative (a path outside it keeps its last part)."""
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    if isinstance(obj, str) and "/" in obj:
        return re.sub(r"(?<![\w.])/(?:[\w.+-]+/)+([\w.+-]+)", r"\1", portable(obj))  # any other absolute path: its name
    return obj


def rel(p: Path | str) -> str:
    """A path as the committed results show it (see scrub)."""
    return scrub(str(Path(p).resolve()))


def cpu_name() -> dict[str, Any]:
    """The CPU's model name and the int8 instruction sets the issue's targets depend on."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = sorted(set(re.findall(r"\b(avx512_vnni|avx_vnni|amx_int8|avx2)\b", text)))
    return {"model": model.group(1).strip() if model else platform.processor(), "int8_flags": flags,
            "cores": all_threads()}


def train(args: argparse.Namespace, console: Console) -> Path:
    """Teacher and distilled student (`edgedistill run`, no compression); reused when finished."""
    runs, name = args.out / "runs", f"s{args.seed}"
    run_dir = runs / name
    if (run_dir / "student" / "model.safetensors").exists() and (run_dir / "metrics.json").exists():
        console.print(f"[cyan]{name}[/]: trained earlier, reusing {rel(run_dir)}")
        return run_dir
    over = [f"data.root={args.root}", f"train.seed={args.seed}", f"output.dir={runs}", f"output.name={name}",
            "compress.stages=[]", f"train.resume={str(run_dir.exists()).lower()}"]
    if args.teacher_weights:  # a teacher trained earlier by this recipe (teacher.epochs) is reused, not retrained
        over += [f"teacher.weights={args.teacher_weights}", "teacher.epochs=null"]
    return run(load_recipe(RECIPE, over), console)


def chain(run_dir: Path, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """The recipe's compress stages on the student (`edgedistill compress`), the teacher measured beside them."""
    r = load_yaml(RECIPE)
    over = [f"{sec}.{k}={json.dumps(v)}" for sec in ("data", "train", "deploy") for k, v in r[sec].items()]
    over += [f"compress.{k}={json.dumps(v)}" for k, v in r["compress"].items()]
    teacher = args.teacher_weights or run_dir / "teacher" / "model.safetensors"
    over += [f"data.root={args.root}", "train.resume=false", f"teacher.model=file:{teacher}",
             f"output.dir={args.out / 'chains'}", f"output.name=s{args.seed}"]
    done = args.out / "chains" / f"s{args.seed}"
    if (done / "stages.json").exists():  # finished: read it (a schema key added since would refuse the resume)
        console.print(f"[cyan]chain[/]: finished earlier, reusing {rel(done / 'stages.json')}")
        return {**json.loads((done / "stages.json").read_text()), "dir": str(done)}
    t0 = time.perf_counter()
    res = compress_target(str(run_dir / "student" / "model.safetensors"), over, console, resume=True)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def deploy(name: str, model: Path, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """`edgedistill deploy MODEL --images 1000` into OUT/deploy/s<seed>-<name>; reused when its matrix exists."""
    out = args.out / "deploy" / f"s{args.seed}-{name}"
    if (out / "matrix.json").exists():
        console.print(f"[cyan]deploy {name}[/]: measured earlier, reusing {rel(out / 'matrix.json')}")
        return json.loads((out / "matrix.json").read_text())
    r = load_yaml(RECIPE)
    over = [f"data.{k}={json.dumps(v)}" for k, v in r["data"].items()] + [f"data.root={args.root}"]
    over += [f"deploy.{k}={json.dumps(v)}" for k, v in r["deploy"].items()]
    over.append(f"compress.min_int8_agreement={r['compress']['min_int8_agreement']}")
    opts = {"runtimes": None, "precisions": None, "images": args.images, "calib": args.calib, "image_dir": None,
            "split": "val", "rounds": args.rounds, "runs": args.runs, "memory": True, "out": out}
    t0 = time.perf_counter()
    res = deploy_target(str(model), over, opts, console)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_text(out / "matrix.json", json.dumps(res, indent=2, default=str))
    return res


def held_out(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """The held-out split with its labels, eval preprocessing, as the matrix's images (its first --images)."""
    import torch

    from edgedistill.data import build_data

    recipe = load_recipe(RECIPE, [f"data.root={args.root}"])
    ds = build_data(recipe.data).held_out("val")
    n = min(args.images, len(ds))
    xs, ys = zip(*(ds[i] for i in range(n)))
    return torch.stack(list(xs)).numpy().astype(np.float32), np.asarray([int(y) for y in ys])


def score_rows(matrix: dict[str, Any], model: Path, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Top-1 on the held-out labels of the PyTorch model and of every built matrix row (all threads)."""
    import torch

    from edgedistill.compress.prune import load_pruned

    net = load_pruned(model)[0].cpu().float().eval()
    with torch.no_grad():
        ref = torch.cat([net(torch.from_numpy(images[i:i + 100])) for i in range(0, len(images), 100)]).numpy()
    out = {"pytorch": 100.0 * float(np.mean(ref.argmax(1) == labels))}
    for row in matrix["rows"]:
        if "path" in row:
            logits = predict_batches(RUNTIMES[row["runtime"]].runner(Path(row["path"]), all_threads()), images)
            out[row["id"]] = 100.0 * float(np.mean(logits.argmax(1) == labels))
    return out


def ratio_stats(base: list[float], other: list[float]) -> dict[str, Any]:
    """Speed-up of `other` over `base` computed per round (same machine moment), median and min–max."""
    r = [a / b for a, b in zip(base, other)]
    return {"median": statistics.median(r), "min": min(r), "max": max(r), "faster_in_rounds": sum(x > 1 for x in r),
            "rounds": len(r)}


def ab_latency(files: dict[str, Path], side: int, args: argparse.Namespace) -> dict[str, Any]:
    """The chain's files timed interleaved per runtime (batch 1, 1 thread); speed-ups vs teacher and vs fp32."""
    x = np.random.default_rng(0).standard_normal((1, 3, side, side)).astype(np.float32)
    out: dict[str, Any] = {"batch": 1, "threads": 1, "rounds": args.ab_rounds, "runs_per_round": args.ab_runs}
    for rt in AB_RUNTIMES:
        backend, calls, skipped = RUNTIMES[rt], {}, {}
        if not backend.available():
            out[rt] = {"status": "not installed"}
            continue
        for name, path in files.items():
            try:
                run_one = backend.runner(path, 1)
                run_one(x)
                calls[name] = lambda f=run_one: f(x)
            except Exception as e:  # noqa: BLE001 — e.g. a QOperator int8 graph OpenVINO cannot read
                skipped[name] = " ".join(str(e).split())[:200]
        per = interleaved_rounds(calls, args.ab_rounds, args.ab_runs, warmup=20)
        res: dict[str, Any] = {"version": backend.version(), "skipped": skipped,
                               "files": {k: {"median_ms": statistics.median(v), "min_ms": min(v), "max_ms": max(v),
                                             "round_medians_ms": v} for k, v in per.items()}}
        if "teacher" in per:
            res["speedup_vs_teacher"] = {k: ratio_stats(per["teacher"], v) for k, v in per.items() if k != "teacher"}
        if "student_fp32" in per and "pruned_fp32" in per:
            res["pruning_speedup"] = ratio_stats(per["student_fp32"], per["pruned_fp32"])
        if "pruned_fp32" in per and "int8" in per:
            res["int8_speedup_vs_its_fp32"] = ratio_stats(per["pruned_fp32"], per["int8"])
        out[rt] = res
    return out


def stage(res: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((e for e in res["stages"] if e["stage"] == name), None)


def matrix_summary(m: dict[str, Any], top1: dict[str, Any]) -> dict[str, Any]:
    """Per runtime: int8 vs that runtime's fp32 (per-round ratio in the matrix's own interleaved rounds)."""
    key = m["deploy_setting"]
    rows = {r["id"]: r for r in m["rows"]}
    per_rt: dict[str, Any] = {}
    for rt in RUNTIMES:
        fp, q = rows.get(f"{rt}-fp32"), rows.get(f"{rt}-int8")
        entry: dict[str, Any] = {}
        for prec, row in (("fp32", fp), ("int8", q)):
            if row is None:
                continue
            lat = row.get("latency", {}).get(key)
            entry[prec] = {"status": row["status"], "reason": row.get("reason"), "agreement": row.get("agreement"),
                           "size_bytes": row.get("size_bytes"), "rss_mb": row.get("rss_mb"),
                           "top1": top1.get(row["id"]), "quantizer": (row.get("info") or {}).get("quantizer")
                           or (row.get("info") or {}).get("format"),
                           "median_ms": lat and lat["median_ms"], "min_ms": lat and lat["min_ms"],
                           "max_ms": lat and lat["max_ms"], "speedup_vs_ort_fp32": lat and lat.get("speedup_vs_ort_fp32")}
        if fp and q and key in fp.get("latency", {}) and key in q.get("latency", {}):
            entry["int8_speedup_vs_fp32"] = ratio_stats(fp["latency"][key]["round_medians_ms"],
                                                        q["latency"][key]["round_medians_ms"])
        if "int8" in entry and entry["int8"]["top1"] is not None:
            entry["int8_top1_drop"] = top1["pytorch"] - entry["int8"]["top1"]
        per_rt[rt] = entry
    rec = m["recommendation"]
    return {"setting": key, "runtimes": per_rt, "recommendation": rec, "pytorch_top1": top1["pytorch"],
            "recommendation_not_slower": rec.get("id") is not None and (
                rec["id"] == "onnxruntime-fp32" or rec.get("speedup_vs_ort_fp32", 0) >= 1.0)}


def summarize(res: dict[str, Any], ab: dict[str, Any], matrices: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures the targets are judged on, and the verdicts."""
    t, s0, q = stage(res, "teacher"), stage(res, "input"), stage(res, "quantize")
    ft = next(e for e in reversed(res["stages"]) if e["precision"] == "fp32" and e["index"] not in ("ref", 0))
    pr = stage(res, "prune") or {}
    choice = (q or {}).get("info", {}).get("int8_choice", {})
    out: dict[str, Any] = {
        "teacher_top1": t["top1"], "student_top1": s0["top1"], "pruned_top1": ft["top1"],
        "flops_removed": 1 - ft["flops"] / s0["flops"], "params_removed": 1 - ft["params"] / s0["params"],
        "round_to": {k: v for k, v in pr.get("info", {}).items() if "round" in k},
        "sizes_mb": {"teacher": t["size_mb"], "student_fp32": s0["size_mb"], "pruned_fp32": ft["size_mb"],
                     "int8": q["size_mb"] if q and q.get("reported") else None},
        "int8_reported": bool(q and q["reported"]), "int8_choice": choice,
        "shipped": choice.get("shipped", "fp32" if not (q and q["reported"]) else "int8")}
    if q and q.get("top1") is not None:  # measured even when it missed the held-out gate (then not reported)
        out.update(int8_top1=q["top1"], int8_drop=ft["top1"] - q["top1"], int8_agreement=q.get("agreement_fp32"))
    out["matrices"] = {k: matrix_summary(m["matrix"], m["top1"]) for k, m in matrices.items()}
    speedups = {f"chain int8 in {rt} (A/B)": ab[rt]["int8_speedup_vs_its_fp32"]["median"]
                for rt in AB_RUNTIMES if "int8_speedup_vs_its_fp32" in ab.get(rt, {})}
    fin = out["matrices"].get("final", {}).get("runtimes", {})
    speedups.update({f"matrix {rt} int8, {e['int8']['status']}": e["int8_speedup_vs_fp32"]["median"]
                     for rt, e in fin.items() if "int8_speedup_vs_fp32" in e})
    speedups.update({f"chain {c['candidate']}": c["speedup_vs_fp32"] for c in choice.get("candidates", [])
                     if c.get("speedup_vs_fp32") is not None})
    best = max(speedups.items(), key=lambda kv: kv[1]) if speedups else (None, None)
    ok_rows = [(rt, e) for rt, e in fin.items() if e.get("int8", {}).get("status") == "pass"]
    prune = ab.get("onnxruntime", {}).get("pruning_speedup", {}).get("median")
    rec_ok = out["matrices"].get("final", {}).get("recommendation_not_slower")
    chain_not_slower = out["shipped"] == "fp32" or (choice.get("speedup_vs_fp32") or 0) > 1.0
    passing = [v for k, v in speedups.items() if "below gate" not in k and not k.startswith("chain ")]
    out["targets"] = {
        "int8 >= 1.5x its fp32 in at least one runtime": {"met": any(v >= 1.5 for v in passing),
                                                          "measured": f"best {best[1]:.2f}x ({best[0]})" if best[0] else "–"},
        "agreement >= 97% (chain int8, held-out)": {"met": (out.get("int8_agreement") or 0) >= 97,
                                                    "measured": f"{out.get('int8_agreement', float('nan')):.1f}%"},
        "top-1 drop <= 1 point (chain int8)": {"met": out.get("int8_drop", 99) <= 1,
                                               "measured": f"{out.get('int8_drop', float('nan')):+.1f} pt"},
        "matrix int8 rows passing 97% / drop <= 1 pt": {
            "met": bool(ok_rows) and all((e.get("int8_top1_drop") or 0) <= 1 for _, e in ok_rows),
            "measured": ", ".join(f"{rt} {100 * e['int8']['agreement']:.1f}% / {e.get('int8_top1_drop', 0):+.1f} pt"
                                  for rt, e in fin.items() if e.get("int8", {}).get("agreement") is not None) or "–"},
        "recommendation never slower than fp32": {"met": bool(rec_ok) and chain_not_slower,
                                                  "measured": (out["matrices"].get("final", {}).get("recommendation", {})
                                                               .get("line", "no matrix")) + f"; chain ships {out['shipped']}"},
        "pruned 50% FLOPs >= 1.3x faster at batch 1 (ORT A/B)": {"met": bool(prune and prune >= 1.3),
                                                                 "measured": f"{prune:.2f}x" if prune else "–"}}
    return out


def _x(s: dict[str, Any] | None) -> str:
    return "–" if not s else f"{s['median']:.2f}× ({s['min']:.2f}–{s['max']:.2f})"


def _ms(f: dict[str, Any] | None) -> str:
    return "–" if not f else f"{f['median_ms']:.3f} ({f['min_ms']:.3f}–{f['max_ms']:.3f})"


def markdown(result: dict[str, Any], res: dict[str, Any]) -> str:
    s, ab, cpu = result["summary"], result["ab_latency"], result["cpu"]
    lines = ["# Edge chain at 96 px (MobileNetV3-small, CIFAR-10 subset upscaled)", "",
             f"Command: `{result['command']}`. CPU: {cpu['model']}, {cpu['cores']} cores, int8 flags "
             f"{', '.join(cpu['int8_flags'])}. One seed. Held-out split: val ({res['measurement']['n_images']} images).",
             "", f"Teacher top-1 {s['teacher_top1']:.2f} · distilled student {s['student_top1']:.2f} · pruned + "
             f"fine-tuned {s['pruned_top1']:.2f} ({100 * s['flops_removed']:.1f}% FLOPs, "
             f"{100 * s['params_removed']:.1f}% params removed) · int8 "
             + (f"{s['int8_top1']:.2f} (agreement {s['int8_agreement']:.1f}%{'' if s['int8_reported'] else ', below the gate: not reported'})"
                if s.get("int8_top1") is not None else "not measured")
             + f" · shipped: {s['shipped']}", "",
             f"## Interleaved A/B, batch 1, 1 thread ({ab['rounds']} rounds × {ab['runs_per_round']} runs): ms median "
             "(min–max of round medians); speed-ups per round", "",
             "| runtime | file | ms | × over teacher | × over its fp32 file |", "|---|---|---|---|---|"]
    for rt in AB_RUNTIMES:
        a = ab.get(rt, {})
        for name, f in a.get("files", {}).items():
            own = {"pruned_fp32": a.get("pruning_speedup"), "int8": a.get("int8_speedup_vs_its_fp32")}.get(name)
            lines.append(f"| {rt} | {name} | {_ms(f)} | {_x(a.get('speedup_vs_teacher', {}).get(name))} | "
                         f"{_x(own)}{' (vs unpruned)' if name == 'pruned_fp32' else ''} |")
        for name, why in a.get("skipped", {}).items():
            lines.append(f"| {rt} | {name} | could not run: {why} | | |")
    c = s["int8_choice"]
    if c:
        lines += ["", f"## int8 chosen by the quantize stage: `{c.get('chosen')}`, shipped: {c.get('shipped')} "
                  f"(ORT b{c.get('batch')} {c.get('threads')}t, {c.get('rounds')} rounds; fp32 {c.get('fp32_ms', 0):.3f} ms)",
                  "", "| candidate | agreement (train images) | passed gate | ms (min–max) | × fp32 |", "|---|---|---|---|---|"]
        for cand in c["candidates"]:
            ms = (f"{cand['latency_ms']:.3f} ({cand['latency_min_ms']:.3f}–{cand['latency_max_ms']:.3f})"
                  if cand.get("latency_ms") is not None else cand.get("error") or "–")
            agree = f"{cand['agreement']:.1f}%" if cand.get("agreement") is not None else "–"
            sp = f"{cand['speedup_vs_fp32']:.2f}" if cand.get("speedup_vs_fp32") is not None else "–"
            lines.append(f"| {cand['candidate']}{' (mixed)' if cand.get('mixed') else ''} | {agree} | "
                         f"{'yes' if cand['passed_gate'] else 'no'} | {ms} | {sp} |")
        if c.get("note"):
            lines += ["", c["note"]]
    for name, m in s["matrices"].items():
        lines += ["", f"## Deploy matrix: {name} model (PyTorch top-1 {m['pytorch_top1']:.2f}); {m['setting']}: "
                  "ms median (min–max); int8 × = per-round over the same runtime's fp32", "",
                  "| runtime | precision | status | agreement vs PyTorch | top-1 | ms | × ORT fp32 | int8 × its fp32 | size | RSS MB |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for rt, e in m["runtimes"].items():
            for prec in ("fp32", "int8"):
                r = e.get(prec)
                if r is None:
                    continue
                lines.append(
                    f"| {rt} | {prec} | {r['status']} | "
                    + (f"{100 * r['agreement']:.1f}%" if r["agreement"] is not None else "–") + " | "
                    + (f"{r['top1']:.2f}" if r["top1"] is not None else "–") + " | "
                    + (f"{r['median_ms']:.3f} ({r['min_ms']:.3f}–{r['max_ms']:.3f})" if r["median_ms"] else "–") + " | "
                    + (f"{r['speedup_vs_ort_fp32']:.2f}" if r["speedup_vs_ort_fp32"] else "–") + " | "
                    + (_x(e.get("int8_speedup_vs_fp32")) if prec == "int8" else "") + " | "
                    + (f"{r['size_bytes'] / 1e6:.2f} MB" if r["size_bytes"] else "–") + " | "
                    + (f"{r['rss_mb']:.1f}" if r["rss_mb"] else "–") + " |")
        lines += ["", f"Recommendation: {m['recommendation']['line']}"]
        lines += [f"- {rt} {p}: {e[p]['reason']}" for rt, e in m["runtimes"].items() for p in ("fp32", "int8")
                  if e.get(p, {}).get("reason")]
    lines += ["", "## Targets (issue 23; this CPU has VNNI/AMX — the issue's AVX2-only figures cannot be timed here)",
              "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {k} | {v['measured']} | {'yes' if v['met'] else 'NO'} |" for k, v in s["targets"].items()]
    header, body = stage_rows(res, all_threads())
    lines += ["", "## Stage table (`edgedistill compress`)", "", markdown_table(header, body), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "cifar10-subset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--deploy", default="final,student",
                    help="comma-separated models given to `edgedistill deploy`: final (the chain's pruned, fine-tuned "
                         "model), student (the unpruned distilled student); empty: none")
    ap.add_argument("--images", type=int, default=1000, help="held-out images every matrix row is checked on")
    ap.add_argument("--calib", type=int, default=128, help="train images the matrix's int8 rows calibrate on")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the deploy matrix")
    ap.add_argument("--runs", type=int, default=50, help="batch-1 runs per row and round in the deploy matrix")
    ap.add_argument("--ab-rounds", type=int, default=9)
    ap.add_argument("--ab-runs", type=int, default=100)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "edge224")
    ap.add_argument("--teacher-weights", type=Path, default=None,
                    help="reuse a teacher this recipe trained earlier (its model.safetensors) instead of training one")
    ap.add_argument("--recipe", type=Path, default=RECIPE, help=argparse.SUPPRESS)
    args = ap.parse_args()
    globals()["RECIPE"] = args.recipe.resolve()
    console = Console(width=160)
    args.out.mkdir(parents=True, exist_ok=True)
    run_dir = train(args, console)
    res = chain(run_dir, args, console)
    base = Path(res["dir"])
    ft = next(e for e in reversed(res["stages"]) if e["precision"] == "fp32" and e["index"] not in ("ref", 0))
    q = stage(res, "quantize")
    files = {"teacher": base / stage(res, "teacher")["artifact"], "student_fp32": base / stage(res, "input")["artifact"],
             "pruned_fp32": base / ft["artifact"]}
    if q and q["reported"]:
        files["int8"] = base / q["artifact"]
    side = int(load_yaml(RECIPE)["data"]["image_size"])
    ab_path = args.out / "ab_latency.json"
    ab = json.loads(ab_path.read_text()) if ab_path.exists() else ab_latency(files, side, args)
    atomic_write_text(ab_path, json.dumps(ab, indent=2))
    models = {"final": base / ft["dir"] / "model.safetensors", "student": run_dir / "student" / "model.safetensors"}
    wanted = [w.strip() for w in args.deploy.split(",") if w.strip()]
    matrices: dict[str, dict[str, Any]] = {}
    images = labels = None
    for name in wanted:
        m = deploy(name, models[name], args, console)
        top_path = args.out / "deploy" / f"s{args.seed}-{name}" / "top1.json"
        if top_path.exists():
            top1 = json.loads(top_path.read_text())
        else:
            if images is None:
                images, labels = held_out(args)
            top1 = score_rows(m, models[name], images, labels)
            atomic_write_text(top_path, json.dumps(top1, indent=2))
        matrices[name] = {"matrix": m, "top1": top1}
    summary = summarize(res, ab, matrices)
    result = {"command": "python benchmarks/edge224.py --root ../shared/data/cifar10-subset"
                         + (f" --deploy {args.deploy}" if args.deploy != "final,student" else "")
                         + (f" --teacher-weights {rel(args.teacher_weights)}" if args.teacher_weights else ""),
              "recipe": rel(RECIPE), "data": args.root.name, "seed": args.seed, "cpu": cpu_name(),
              "chain_seconds": res.get("seconds"), "summary": summary, "ab_latency": ab,
              "matrices": {k: v["matrix"] for k, v in matrices.items()}, "stages": res["stages"]}
    result = scrub(result)
    res_rel = scrub(res)
    atomic_write_text(args.out / "edge224.json", json.dumps(result, indent=2, default=str))
    atomic_write_text(args.out / "edge224.md", markdown(result, res_rel))
    for png in ("stages_accuracy_latency.png", "stages_size.png"):
        if (base / png).exists():
            shutil.copy(base / png, args.out / png)
    console.print(markdown(result, res_rel))


if __name__ == "__main__":
    main()
