"""Peak resident memory of one deploy-matrix artifact, measured in a fresh process of its own runtime.

    python -m edgedistill.deploy.rss_probe RUNTIME PATH BATCH THREADS SIDE   # prints: base_bytes peak_bytes

The Linux high-water mark (VmHWM) is read after the runtime's modules are imported and before the model
is loaded, then after five runs: the difference is what loading and running this artifact costs (weights,
graph, arena, activations), as `onnx_runtime.ort_peak_rss_mb` measures it for ONNX Runtime alone.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np


def _hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss(runtime: str, path: Path, batch: int, threads: int, side: int) -> tuple[int, int]:
    """(high-water mark with the runtime imported, high-water mark after loading and running the artifact)."""
    from .runtimes import RUNTIMES

    backend = RUNTIMES[runtime]
    for m in backend.run_modules:
        importlib.import_module(m)
    x = np.zeros((batch, 3, side, side), np.float32)
    base = _hwm()
    run = backend.runner(path, threads)
    for _ in range(5):
        run(x)
    return base, _hwm()


def measure_peak_rss_mb(runtime: str, path: Path, batch: int, threads: int, side: int) -> float | None:
    """MB that loading and running the artifact adds to a fresh process; None off Linux or when the probe fails."""
    if not Path("/proc/self/status").exists():
        return None
    args = [runtime, str(path), str(batch), str(threads), str(side)]
    try:
        done = subprocess.run([sys.executable, "-m", __name__, *args], capture_output=True, text=True, timeout=300,
                              check=True)
        base, peak = (int(v) for v in done.stdout.split()[-2:])
    except (subprocess.SubprocessError, ValueError):
        return None
    return max(peak - base, 0) / 1e6


if __name__ == "__main__":
    rt, p, b, t, s = sys.argv[1:6]
    print(*peak_rss(rt, Path(p), int(b), int(t), int(s)))
