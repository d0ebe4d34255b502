"""Which int8 (format, graph) pairs saturate on an x86 CPU without VNNI, measured on an emulated Haswell.

    python benchmarks/int8_emulated.py            # needs qemu-x86_64 (Debian: qemu-user) on an x86-64 host

The test network of tests/test_int8_choice.py (tests/int8_nets.py, seeds as there) is quantized in every
format × graph; each file runs in ONNX Runtime here and under `qemu-x86_64 -cpu Haswell` (AVX2, no AVX-512,
no VNNI). Per pair: top-1 agreement with fp32 in both places, and how often the two agree with each other
(100%: Haswell computes exact int8; less: its kernels saturate). compress/cpu.py's CORRECT_INT8 and the
README's int8 table quote these figures. Writes benchmarks/results/int8_emulated/int8_emulated.{json,md}.
Not a test: about a minute.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from int8_nets import NAMES, Net, logits_on_haswell  # noqa: E402

from edgedistill.atomic import atomic_write_text  # noqa: E402
from edgedistill.compress.cpu import CORRECT_INT8, detect_cpu, target_of  # noqa: E402
from edgedistill.compress.int8 import predictions  # noqa: E402
from edgedistill.compress.quantize import quantize_static_onnx  # noqa: E402
from edgedistill.deploy.export import export_onnx  # noqa: E402
from edgedistill.report.tables import markdown_table  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "int8_emulated"
PAIRS = [(f, g) for f in ("u8s8", "u8s8_reduce_range", "u8u8", "s8s8") for g in ("qdq", "qoperator")]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        torch.manual_seed(0)
        model = Net().eval()
        with torch.no_grad():
            model.fc.bias.zero_()
        path = export_onnx(model, t / "net.onnx", 8, NAMES, [0.0] * 3, [1.0] * 3)
        torch.manual_seed(1)
        x, calib = torch.randn(128, 3, 8, 8), torch.randn(256, 3, 8, 8)
        ref = model(x).argmax(1).numpy()
        files = [quantize_static_onnx(path, t / f"{f}-{g}.onnx", calib, fmt=f, graph=g) for f, g in PAIRS]
        here = [predictions(p, x.numpy(), exact=False) for p in files]
        there = [y.argmax(1) for y in logits_on_haswell(t, x.numpy(), files)]
    cpu = detect_cpu()
    rows = [{"format": f, "graph": g, "agreement_here": 100 * float(np.mean(h == ref)),
             "agreement_haswell": 100 * float(np.mean(e == ref)), "haswell_equals_here": 100 * float(np.mean(e == h)),
             "listed_correct_on_x86_avx2": (f, g) in CORRECT_INT8["x86-avx2"]}
            for (f, g), h, e in zip(PAIRS, here, there)]
    result = {"images": len(ref), "host": target_of(cpu.machine, cpu.flags), "host_flags": sorted(cpu.flags),
              "emulated": "qemu-x86_64 -cpu Haswell", "rows": rows}
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_text(OUT / "int8_emulated.json", json.dumps(result, indent=2) + "\n")
    table = markdown_table(["format/graph", "agreement here %", "agreement on Haswell %", "Haswell = here %",
                            "listed correct on x86-avx2"],
                           [[f"{r['format']}/{r['graph']}", f"{r['agreement_here']:.1f}", f"{r['agreement_haswell']:.1f}",
                             f"{r['haswell_equals_here']:.1f}", "yes" if r["listed_correct_on_x86_avx2"] else "no"]
                            for r in rows])
    md = (f"# int8 pairs on an emulated AVX2 CPU\n\nHost: {result['host']} ({', '.join(result['host_flags'])}); "
          f"emulated: {result['emulated']}; {len(ref)} images, the test network of tests/int8_nets.py.\n\n{table}\n")
    atomic_write_text(OUT / "int8_emulated.md", md)
    print(md)


if __name__ == "__main__":
    main()
