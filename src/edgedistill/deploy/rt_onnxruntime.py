"""ONNX Runtime rows: the fp32 ONNX file as exported, and its int8 file from the project's own quantizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .backend import Backend, Runner, Source


class OnnxRuntime(Backend):
    """CPU execution provider; int8 is whatever `Source.int8_onnx` builds (the compress stage's quantizer)."""

    name, label, modules, extra, package = "onnxruntime", "ONNX Runtime", ("onnxruntime",), "", "onnxruntime"

    @property
    def install_hint(self) -> str:
        return "pip install onnxruntime (a core dependency of edgedistill)"

    def build(self, source: Source, precision: str, folder: Path) -> tuple[Path, dict[str, Any]]:
        """fp32: a copy of the parity-checked export; int8: static QDQ calibrated on the source's images."""
        import shutil

        folder.mkdir(parents=True, exist_ok=True)
        if precision == "fp32":
            out = folder / "model.onnx"
            if source.onnx().resolve() != out.resolve():
                shutil.copyfile(source.onnx(), out)
            return out, {}
        out = folder / "model.int8.onnx"
        return out, source.int8_onnx(source.onnx(), out, source.calib)

    def runner(self, path: Path, threads: int) -> Runner:
        from .onnx_runtime import ort_session

        session = ort_session(path, threads)
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
