"""Quantization-aware training with the distillation loss: torchao PT2E (X86InductorQuantizer) → int8 ONNX.

torch 2.14 no longer ships torch.ao.quantization.quantize_pt2e; torchao's copy is the maintained one.
XNNPACKQuantizer moved to ExecuTorch, so the x86 quantizer is the one used here. The model is captured
with torch.export (dynamic batch), fake-quantized with prepare_qat_pt2e, trained through the engine with
the Distiller, converted with convert_pt2e and exported by the dynamo ONNX exporter as a QDQ graph.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError


class QATModel(nn.Module):
    """Holds an exported, fake-quantized GraphModule; train()/eval() use torchao's switches.

    Hand-written because an exported GraphModule rejects plain .train()/.eval() (BatchNorm and
    dropout must be swapped by move_exported_model_to_train/eval), and the engine calls both.
    """

    def __init__(self, gm: nn.Module):
        super().__init__()
        self.gm = gm

    def train(self, mode: bool = True) -> QATModel:
        from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

        (move_exported_model_to_train if mode else move_exported_model_to_eval)(self.gm)
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gm(x)


def _batch_dim() -> dict[int, Any]:
    return {0: torch.export.Dim("batch", min=1, max=4096)}


# QAT format → (activation dtype, its range, weight range). reduce_range narrows the *weights* to 7 bits as
# ORT's does (torchao's own reduce_range narrows activations instead): |u8 × s7| pair sums fit VPMADDUBSW's
# int16, so the exported QDQ file does not saturate on x86 without VNNI.
QAT_FORMATS: dict[str, tuple[torch.dtype, tuple[int, int], tuple[int, int]]] = {
    "u8s8": (torch.uint8, (0, 255), (-128, 127)), "u8s8_reduce_range": (torch.uint8, (0, 255), (-64, 63)),
    "s8s8": (torch.int8, (-128, 127), (-128, 127))}
QAT_AUTO = {"x86-vnni": "u8s8", "x86-avx2": "u8s8_reduce_range", "arm64": "s8s8"}


def qat_format(requested: str, target: str) -> str:
    """The QAT int8 format: the recipe's, or the target's (unknown CPUs get reduce_range: correct on any x86)."""
    return requested if requested != "auto" else QAT_AUTO.get(target, "u8s8_reduce_range")


def _config(fmt: str) -> Any:
    """torchao's default x86 QAT config with the activation dtype and the weight range of `fmt`."""
    import dataclasses

    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        get_default_x86_inductor_quantization_config,
    )

    act_dtype, (amin, amax), (wmin, wmax) = QAT_FORMATS[fmt]
    base = get_default_x86_inductor_quantization_config(is_qat=True)
    act = dataclasses.replace(base.input_activation, dtype=act_dtype, quant_min=amin, quant_max=amax)
    weight = dataclasses.replace(base.weight, quant_min=wmin, quant_max=wmax)
    return dataclasses.replace(base, input_activation=act, output_activation=act, weight=weight)


def prepare_qat(model: nn.Module, example: torch.Tensor, fmt: str = "u8s8") -> QATModel:
    """Capture `model` with a dynamic batch and insert fake quantization (int8 in `fmt`, per-channel weights)."""
    try:
        from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer
    except ImportError as e:
        raise UserError(f"the qat stage needs torchao ({e}); allowed: pip install torchao, or the quantize stage"
                        ) from None
    m = model.cpu().float().train()
    try:
        gm = torch.export.export(m, (example,), dynamic_shapes=(_batch_dim(),)).module()
    except Exception as e:  # noqa: BLE001 — an untraceable model is the user's to change
        raise UserError(f"qat: torch.export cannot capture {type(model).__name__}: {str(e).splitlines()[0][:300]}; "
                        "allowed: the quantize stage (ONNX Runtime PTQ)") from None
    quantizer = X86InductorQuantizer().set_global(_config(fmt))
    return QATModel(prepare_qat_pt2e(gm, quantizer)).train()


def convert(qat: QATModel) -> nn.Module:
    """Fold the fake quantizers into quantize/dequantize ops (eval mode): the model ONNX export sees."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    qat.train(False)
    return convert_pt2e(qat.gm)


@contextlib.contextmanager
def _quiet_logs() -> Any:
    """The exporter logs a traceback when it cannot down-convert the opset (it keeps 18 then): not an error."""
    loggers = [logging.getLogger(n) for n in ("onnxscript", "torch.onnx", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def export_qat_onnx(converted: nn.Module, path: Path, example: torch.Tensor, opset: int) -> Path:
    """Dynamo ONNX export of the converted graph: int8 weights with QuantizeLinear/DequantizeLinear nodes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_logs():
            warnings.simplefilter("ignore")
            torch.onnx.export(converted, (example,), str(path), dynamo=True, dynamic_shapes=(_batch_dim(),),
                              opset_version=opset, input_names=["input"], output_names=["logits"])
    except Exception as e:  # noqa: BLE001
        raise UserError(f"qat: ONNX export of the quantized graph failed: {str(e).splitlines()[0][:300]}") from None
    return path
