"""What every runtime of the deploy matrix provides: build an artifact, run it, and say when it is missing.

A backend is a small object, not a plugin system: `available()` (its packages import), `install_hint`,
`build(source, precision, folder)` → artifact path, and `runner(path, threads)` → a callable from NCHW float32
images to logits. Heavy libraries are imported inside the methods, so a missing runtime costs nothing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .capture import captured_output

if TYPE_CHECKING:
    from torch import nn

PRECISIONS: tuple[str, ...] = ("fp32", "int8")
# Runtimes named here (comma-separated) count as not installed: to see the matrix a user without them gets,
# and how the missing-runtime row is tested without uninstalling a package.
HIDE_ENV = "EDGEDISTILL_HIDE_RUNTIMES"
_OP = re.compile(r"(?:aten|prim|onnx)(?:::|\.)[A-Za-z0-9_]+(?:\.[A-Za-z][A-Za-z0-9_]*)?")

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass
class Source:
    """The one student every runtime starts from: the PyTorch model, its fp32 ONNX file and calibration images.

    onnx() exports lazily (once) through `export`, so runtimes that start from PyTorch still run when the
    ONNX exporter lacks an op; an export failure is raised again for every ONNX-based row.
    """

    model: nn.Module
    image_size: int
    calib: np.ndarray
    export: Callable[[], Path]
    int8_onnx: Callable[[Path, Path, np.ndarray], dict[str, Any]]
    _onnx: Path | Exception | None = field(default=None, repr=False)

    def onnx(self) -> Path:
        """The fp32 ONNX file (parity-checked by `export`), exported on first use."""
        if self._onnx is None:
            try:
                self._onnx = self.export()
            except Exception as e:  # noqa: BLE001 — kept and re-raised for each row that needs the file
                self._onnx = e
        if isinstance(self._onnx, Exception):
            raise self._onnx
        return self._onnx


class Backend:
    """A runtime a user ships to; subclasses fill in the names and the three methods."""

    name = ""
    label = ""
    modules: tuple[str, ...] = ()  # what must import for the runtime to be there (to build and to run)
    run_modules: tuple[str, ...] = ()  # what running alone imports (the memory probe's baseline)
    extra = ""  # the pip extra that installs it
    package = ""  # the distribution whose version the row records

    @property
    def install_hint(self) -> str:
        return f"pip install 'edgedistill[{self.extra}]'"

    def available(self) -> bool:
        """True when its packages are installed and the user did not hide it (EDGEDISTILL_HIDE_RUNTIMES)."""
        hidden = {v.strip() for v in os.environ.get(HIDE_ENV, "").split(",") if v.strip()}
        if self.name in hidden:
            return False
        try:
            return all(importlib.util.find_spec(m) is not None for m in self.modules)
        except (ImportError, ValueError):
            return False

    def version(self) -> str:
        """The runtime package's version string."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.package)
        except PackageNotFoundError:
            return "?"

    def build(self, source: Source, precision: str, folder: Path) -> tuple[Path, dict[str, Any]]:
        """Write the artifact for `precision` into `folder`; returns its main file and what was chosen."""
        raise NotImplementedError

    def runner(self, path: Path, threads: int) -> Runner:
        """A callable that runs the artifact on a batch of NCHW float32 images with `threads` threads."""
        raise NotImplementedError

    def files(self, path: Path) -> list[Path]:
        """Every file the artifact consists of (its size is their sum)."""
        return [path]


def quiet() -> contextlib.AbstractContextManager[None]:
    """Keep a runtime's C/C++ log lines (delegate notes, thread pools, op counts) off the console."""
    return captured_output([])


def predict_batches(run: Runner, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Logits for all images through a runner, `batch_size` at a time."""
    x = np.ascontiguousarray(images, dtype=np.float32)
    return np.concatenate([np.asarray(run(x[i:i + batch_size]), np.float32) for i in range(0, len(x), batch_size)])


def failure_reason(e: BaseException) -> str:
    """One line saying why a runtime could not convert or run the model, naming the op when the error does."""
    text = " ".join(str(e).split()) or type(e).__name__
    cause = e.__cause__ or e.__context__
    found = _OP.search(text) or (cause is not None and _OP.search(str(cause)))
    first = str(e).strip().splitlines()[0][:240] if str(e).strip() else type(e).__name__
    if found:
        return f"op {found.group(0)} not supported: {first}"
    return f"{type(e).__name__}: {first}"
