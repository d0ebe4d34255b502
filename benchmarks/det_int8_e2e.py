"""Graph-only vs end-to-end (graph + DetDecoder: box decoding and NMS) speed-up of every int8 file correct on this
CPU over the fp32 head graph of a finished detection compress folder (issue 25: the int8 choice now times end to
end). Same interleaved rounds per kind; batch and threads as given. Prints a table; --out writes the JSON (machine
paths made portable).

    python benchmarks/det_int8_e2e.py RUN/compress [--batch 1] [--threads 1] [--rounds 5] [--runs 30] [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import yaml

from edgedistill.compress.cpu import correct_int8, detect_cpu, resolve
from edgedistill.compress.prune import load_pruned
from edgedistill.compress.quantize import quantize_static_onnx
from edgedistill.deploy.ab_latency import interleaved_latency
from edgedistill.recipe import build_recipe
from edgedistill.tasks.det_chain import det_data, train_images
from edgedistill.tasks.det_graph import DetDecoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("compress", type=Path, help="a detection compress folder with export/model.onnx")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--out", type=Path, help="write the JSON here")
    a = ap.parse_args()
    r = build_recipe(yaml.safe_load((a.compress / "recipe.yaml").read_text()))
    pruned = a.compress / "prune" / "model.safetensors"
    source = json.loads((a.compress / "plan.json").read_text())["source"]  # the compressed checkpoint
    model, meta = load_pruned(pruned if pruned.exists() else source)
    model.set_image_size(r.data.image_size)
    dec = DetDecoder(model.eval(), r.data.image_size)
    train, _, _ = det_data(r, meta)
    calib, select = train_images(train, 0, 16), train_images(train, 16, 16)  # the quantize stage's defaults' kind
    fp32 = a.compress / "export" / "model.onnx"
    res = resolve("auto", "auto", detect_cpu())
    out: dict = {"target": res["target"], "batch": a.batch, "threads": a.threads, "rounds": a.rounds, "runs": a.runs}
    with tempfile.TemporaryDirectory() as tmp:
        files = {"fp32": fp32}
        for fmt, graph in correct_int8(str(res["target"]), str(res["host_machine"])):
            files[f"{fmt}/{graph}"] = quantize_static_onnx(fp32, Path(tmp) / f"{fmt}-{graph}.onnx", calib, fmt=fmt,
                                                           graph=graph)
        x = np.ascontiguousarray(np.resize(select, (a.batch, *select.shape[1:])), np.float32)
        for kind, after in (("graph", None), ("end_to_end", dec)):
            t = interleaved_latency(files, x.shape, rounds=a.rounds, runs=a.runs, threads=a.threads, warmup=5,
                                    inputs=x, after=after)
            out[kind] = {k: {"ms": t["files"][k]["median_ms"], "speedup_vs_fp32": 1.0 if k == "fp32" else
                             t["speedup_vs_fp32"][k]["median"]} for k in files}
    print(f"| file | graph ms | × fp32 | end to end ms | × fp32 |  ({out['target']}, batch {a.batch}, "
          f"{a.threads} thread(s), {a.rounds} interleaved rounds)\n|---|---|---|---|---|")
    for k in files:
        g, e = out["graph"][k], out["end_to_end"][k]
        print(f"| {k} | {g['ms']:.2f} | {g['speedup_vs_fp32']:.2f} | {e['ms']:.2f} | {e['speedup_vs_fp32']:.2f} |")
    if a.out:
        from portable import portable

        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(portable(json.dumps(out, indent=1)) + "\n")


if __name__ == "__main__":
    main()
