"""Small networks the int8 tests quantize, and ONNX Runtime on an emulated AVX2 CPU: shared by test_int8.py,
test_int8_choice.py (fixtures in conftest) and benchmarks/int8_emulated.py."""

import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from system_tools import tool_or_skip

NAMES = [str(i) for i in range(10)]


class Net(nn.Module):
    """Two convs and a classifier: small enough to quantize in a second, predictions that vary with the input."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv2(torch.relu(self.conv1(x)))).amax((2, 3)))


_RUN_ORT = """
import sys, numpy as np, onnxruntime as ort
x = np.load(sys.argv[1]); out = {}
for p in sys.argv[3:]:
    s = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
    out[p] = s.run(None, {s.get_inputs()[0].name: x})[0]
np.savez(sys.argv[2], *[out[p] for p in sys.argv[3:]])
"""


def qemu_or_skip() -> str:
    """qemu-x86_64 (Debian's qemu-user), installed when missing and we are root; else the test is skipped."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("AVX2 emulation checks run on x86-64 hosts")
    return tool_or_skip("qemu-x86_64", "qemu-user")


def logits_on_haswell(tmp_path: Path, x: np.ndarray, files: list[Path]) -> list[np.ndarray]:
    """Run ONNX files in ONNX Runtime on an emulated Haswell (AVX2, FMA; no AVX-512, no VNNI)."""
    qemu = qemu_or_skip()
    (tmp_path / "run_ort.py").write_text(_RUN_ORT)
    np.save(tmp_path / "x.npy", x)
    subprocess.run([qemu, "-cpu", "Haswell", sys.executable, str(tmp_path / "run_ort.py"), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npz"), *map(str, files)], check=True, timeout=600, capture_output=True)
    got = np.load(tmp_path / "y.npz")
    return [got[f"arr_{i}"] for i in range(len(files))]
