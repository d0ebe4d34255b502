"""Atomic training checkpoints: a killed run never leaves a half-written file behind."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_path


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temp file in the same folder, fsync, then rename over the target.

    Through a Python file object: a full disk then raises OSError(ENOSPC), not torch's opaque RuntimeError."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        out = _Writes(f, path)
        try:
            torch.save(obj, out)
        except Exception:
            if out.error is not None:  # torch re-raises a failed write as a RuntimeError of its zip writer
                raise out.error from None
            raise


class _Writes:
    """A file wrapper that keeps the first OSError of a write, for atomic_save to raise instead of torch's."""

    def __init__(self, f: Any, path: Path):
        self.f, self.path, self.error = f, path, None

    def write(self, b: bytes) -> int:
        try:
            return self.f.write(b)
        except OSError as e:
            self.error = self.error or OSError(e.errno, e.strerror, str(self.path))
            raise

    def flush(self) -> None:
        self.f.flush()


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Our own files too are read with weights_only=True: plain tensors and containers, no pickled code."""
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_gauss": random.getstate()[2],
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
