"""LiteRT rows: a `.tflite` file converted by litert-torch, fp32 and int8 (PT2E), run by ai-edge-litert.

litert-torch 0.10 cannot lower a dynamic batch through `flatten` (its JAX bridge needs concrete shapes), so
the file is converted at batch 1 and the interpreter's `resize_tensor_input` sets the batch at run time. Where
the file's own reshapes fix the batch (GroupNorm's and a detection head's reshapes are lowered with batch 1
written in; the XNNPACK delegate then refuses the resize: "failed to reshape runtime"), a batch runs one image
per invoke and the row's info says so (BATCH_NOTE).
A PT2E int8 file takes and returns int8 tensors; the runner quantizes the input and dequantizes the output
with the scale and zero point the file declares, as an application on the device does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .backend import Backend, Runner, Source, quiet
from .shared_weights import keep_float, unshare_weights


BATCH_NOTE = ("converted at batch 1 and its reshapes keep batch 1 (litert-torch cannot convert a dynamic batch): "
              "a batch of N runs as N invokes")


def resizes(path: Path, shape: list[int]) -> bool:
    """Whether the file's interpreter accepts a batch of 2 (False: batch 1 is written into its reshapes)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    try:
        with quiet():
            it.resize_tensor_input(it.get_input_details()[0]["index"], [2, *shape[1:]])
            it.allocate_tensors()
    except RuntimeError:
        return False
    return True


class LiteRt(Backend):
    """The ai-edge-litert interpreter (XNNPACK delegate on CPU) with `num_threads` threads."""

    name, label, extra, package = "litert", "LiteRT", "litert", "ai-edge-litert"
    modules = ("litert_torch", "ai_edge_litert.interpreter")
    run_modules = ("ai_edge_litert.interpreter",)

    def build(self, source: Source, precision: str, folder: Path) -> tuple[Path, dict[str, Any]]:
        """litert_torch.convert at batch 1; int8 through its PT2EQuantizer and QuantConfig."""
        import copy

        import litert_torch
        import torch

        litert_torch.config.show_progress = False
        model = copy.deepcopy(source.model).cpu().float().eval()
        x = torch.from_numpy(source.calib[:1]).float()
        info: dict[str, Any] = {"converted_batch": 1}
        kwargs: dict[str, Any] = {}
        if precision == "int8":
            from litert_torch.quantize import pt2e_quantizer
            from litert_torch.quantize.quant_config import QuantConfig
            from torchao.quantization.pt2e import move_exported_model_to_eval, quantize_pt2e

            quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
                pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
            graph = torch.export.export(model, (x,)).module()
            unshare_weights(graph)  # a head shared by FPN levels: quantize every level's convs
            float_out = tuple(getattr(source.model, "float_outputs", ()))
            if float_out:  # a detection head: its output convs and concatenations stay float (shared_weights.py)
                info["float"] = f"{keep_float(graph, float_out)} nodes: output convs of {', '.join(float_out)} and cat"
            graph = quantize_pt2e.prepare_pt2e(graph, quantizer)
            with torch.no_grad():  # the graph is exported at batch 1, so calibration feeds one image at a time
                for i in range(len(source.calib)):
                    graph(torch.from_numpy(source.calib[i:i + 1]).float())
            model = move_exported_model_to_eval(quantize_pt2e.convert_pt2e(graph, fold_quantize=False))
            kwargs["quant_config"] = QuantConfig(pt2e_quantizer=quantizer)
            info.update(quantizer="litert-torch PT2EQuantizer symmetric per-channel", calib_images=len(source.calib))
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / ("model.tflite" if precision == "fp32" else "model.int8.tflite")
        litert_torch.convert(model, (x,), **kwargs).export(str(out))
        if not resizes(out, list(x.shape)):
            info["note"] = BATCH_NOTE
        return out, info

    def runner(self, path: Path, threads: int) -> Runner:
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(path), num_threads=int(threads))
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        in_scale, in_zero = inp["quantization"]
        out_scale, out_zero = out["quantization"]
        info = np.iinfo(inp["dtype"]) if inp["dtype"] != np.float32 else None
        shape: list[int] = []

        fixed = not resizes(path, list(inp["shape"]))

        def run(x: np.ndarray) -> np.ndarray:
            if fixed and len(x) > 1:
                return np.concatenate([run(x[i:i + 1]) for i in range(len(x))])
            if list(x.shape) != shape:
                with quiet():  # the XNNPACK delegate is applied here and announces itself once per process
                    it.resize_tensor_input(inp["index"], list(x.shape))
                    it.allocate_tensors()
                shape[:] = list(x.shape)
            if info is not None:
                x = np.clip(np.round(x / in_scale) + in_zero, info.min, info.max).astype(inp["dtype"])
            it.set_tensor(inp["index"], x)
            it.invoke()
            y = it.get_tensor(out["index"])
            return y if out["dtype"] == np.float32 else (y.astype(np.float32) - out_zero) * out_scale

        return run
