"""The `compress:` and `deploy:` sections of a recipe: the stage list, budgets and the target device."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from .base import Section, TermConfig

TEACHER = Literal["unpruned", "teacher", "none"]
TARGETS = ("ratio", "flops_ratio", "target_params", "target_flops")


class PruneStage(Section):
    """Structured channel pruning with Torch-Pruning (DepGraph); the classifier keeps every output.

    One target, reached at the last of `steps` steps; between steps the network recovers by distillation
    (teacher, terms, lr as in finetune) for step_epochs epochs.
    """

    name: Literal["prune"]
    ratio: float | None = Field(None, ge=0, lt=1, description="share of channels removed per layer group "
                                "(global scope: of all channels)")
    flops_ratio: float | None = Field(None, gt=0, lt=1, description="share of the stage input's FLOPs removed "
                                      "(0.5 = half); pruning stops at the first schedule tick at or under it")
    target_params: int | None = Field(None, gt=0, description="prune until the model has at most this many params")
    target_flops: int | None = Field(None, gt=0, description="prune until one image costs at most this many FLOPs")
    importance: Literal["magnitude", "taylor", "bn_scale"] = Field("magnitude", description="channel criterion")
    scope: Literal["uniform", "global"] = Field("uniform", description="same ratio per layer, or ranked across layers")
    max_layer_ratio: float = Field(0.9, gt=0, lt=1, description="global scope: most of any layer's channels "
                                   "removed (of the stage input's width; one channel is always kept)")
    round_to: Annotated[int, Field(gt=0)] | Literal["auto", "off"] | None = Field("off", description=(
        "keep every pruned layer's channel count a multiple of this (the nearest; a layer no multiple fits stays "
        "as it is); auto: ONNX Runtime's NCHWc block on deploy.target (16 with AVX-512, 8 with AVX2), else 8, else "
        "off, whichever first lands the target (at most 10% of the input's count under it); off/null (default): none; "
        "faster files, but it moves the cut to wide layers: check accuracy (README)"))
    calib_batches: int = Field(4, gt=0, description="train batches whose gradients feed taylor importance")
    steps: int = Field(1, ge=1, le=20, description="prune in this many steps (k), each 1/k of the way to the "
                       "target; steps before the last are followed by distillation")
    step_epochs: Annotated[int, Field(ge=0)] | Literal["auto"] = Field("auto", description="distillation epochs after each step but the "
                                               "last; auto = 0.1 × train.epochs (at least 1); 0: none")
    lr: Annotated[float, Field(gt=0)] | Literal["auto"] = Field("auto", description="peak lr between steps (cosine); auto = train.lr / 10")
    teacher: TEACHER = Field("unpruned", description="who teaches between steps (see finetune)")
    terms: list[TermConfig] | None = Field(None, description="loss terms between steps (default: distill.terms)")

    @field_validator("round_to", mode="before")
    @classmethod
    def _round_to(cls, v: object) -> object:
        ok = v is None or v in ("auto", "off") or (isinstance(v, int) and not isinstance(v, bool) and v > 0)
        if not ok:
            raise ValueError(f"round_to {v!r} is not a channel multiple; allowed: a positive integer (8 or 16 match "
                             "CPU vector widths), auto, off")
        return v

    @model_validator(mode="after")
    def _one_target(self) -> PruneStage:
        given = [k for k in TARGETS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a prune stage needs exactly one of {', '.join(TARGETS)} (got "
                             f"{', '.join(given) or 'none'})")
        return self


class UnstructuredStage(Section):
    """Magnitude pruning of single weights (torch.nn.utils.prune), made permanent before export."""

    name: Literal["unstructured"]
    amount: float = Field(0.5, ge=0, lt=1, description="share of Conv/Linear weights set to zero")
    scope: Literal["layerwise", "global"] = Field("layerwise", description="same share per layer, or ranked globally")


class FinetuneStage(Section):
    """Distillation-aware fine-tuning through the engine, usually after pruning; sized to the student's training."""

    name: Literal["finetune"]
    epochs: Annotated[int, Field(gt=0)] | Literal["auto"] = Field("auto", description="fine-tuning epochs; auto = fraction × train.epochs")
    fraction: float = Field(0.5, gt=0, le=1, description="epochs: auto uses this share of train.epochs (at least 1)")
    lr: Annotated[float, Field(gt=0)] | Literal["auto"] = Field("auto", description="peak learning rate; auto = train.lr / 10")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="learning-rate schedule (no warm-up)")
    teacher: TEACHER = Field(
        "unpruned", description="who teaches: the model before compression, the recipe's teacher, or nobody (CE only)")
    terms: list[TermConfig] | None = Field(None, description="loss terms (default: distill.terms)")


class QuantizeStage(Section):
    """Post-training int8 quantization of the ONNX export with ONNX Runtime."""

    name: Literal["quantize"]
    mode: Literal["static", "dynamic"] = Field("static", description="static: calibrated QDQ; dynamic: weights only")
    calibration: Literal["minmax", "entropy", "percentile"] = Field("minmax", description=(
        "range calibration method (entropy gives the minmax ranges in ORT's quantize_static; see README)"))
    calib_samples: int = Field(256, gt=0, description="train images (eval preprocessing) used for calibration")
    per_channel: bool = Field(True, description="one weight scale per output channel")
    format: Literal["auto", "u8s8", "u8s8_reduce_range", "u8u8", "s8s8"] = Field("auto", description=(
        "activation×weight int8 types; auto: every format deploy.target runs correctly (VNNI u8s8, u8u8; x86 "
        "without VNNI u8u8, u8s8_reduce_range; arm64 s8s8, u8s8) is built, gated and timed, the fastest kept"))
    graph: Literal["auto", "qdq", "qoperator"] = Field("auto", description=(
        "ONNX int8 graph: qdq (Quantize/Dequantize pairs), qoperator (QLinearConv …); auto: both are timed"))
    ship: Literal["fastest", "int8"] = Field("fastest", description=(
        "fastest: when no int8 file beats fp32 on this CPU, the fp32 file is the deployable (budgets judge it); "
        "int8: the int8 file ships anyway (size before speed)"))
    choice_rounds: int = Field(5, gt=0, le=50, description=(
        "interleaved timing rounds when choosing among int8 candidates (runs per round: compress.latency_runs, "
        "at most 50)"))
    mixed_precision: Literal["auto", "off"] = Field("auto", description=(
        "auto: if int8 misses compress.min_int8_agreement on train images, keep the most sensitive layers fp32"))
    fp32_layers: list[str] = Field(default_factory=list, description=(
        "module or ONNX node names always kept fp32 (e.g. conv1, /fc/Gemm)"))
    sensitivity_images: int = Field(256, gt=0, description=(
        "train images (not the held-out split) mixed precision is chosen on"))
    sensitivity_layers: int = Field(64, gt=0, description=(
        "at most this many layers scored (graph order; one int8 build + inference each)"))
    sensitivity_seconds: float = Field(600.0, gt=0, description="stop scoring layers after this many seconds")
    max_fp32_layers: int = Field(8, gt=0, description="mixed precision keeps at most this many layers fp32")

    @model_validator(mode="after")
    def _dynamic_format(self) -> QuantizeStage:
        if self.mode == "dynamic" and self.format == "s8s8":
            raise ValueError("format s8s8 has no dynamic form (ONNX Runtime quantizes dynamic activations to uint8); "
                             "allowed with mode=dynamic: auto, u8s8, u8s8_reduce_range, u8u8")
        return self

    @model_validator(mode="before")
    @classmethod
    def _activations_moved(cls, data: object) -> object:
        if isinstance(data, dict) and "activations" in data:
            new = {"uint8": "u8s8", "int8": "s8s8"}.get(str(data["activations"]), "auto")
            raise ValueError(f"activations={data['activations']!r} is now the format key; allowed: format={new} "
                             "(or auto, u8s8_reduce_range, u8u8)")
        return data


class QATStage(Section):
    """Quantization-aware training with the distillation loss (torchao PT2E), exported as int8 ONNX."""

    name: Literal["qat"]
    epochs: int = Field(2, gt=0, description="QAT epochs")
    lr: float = Field(0.001, gt=0, description="peak learning rate")
    teacher: Literal["unpruned", "teacher", "none"] = Field("unpruned", description="who teaches (see finetune)")
    terms: list[TermConfig] | None = Field(None, description="logit loss terms (default: distill.terms)")
    format: Literal["auto", "u8s8", "u8s8_reduce_range", "s8s8"] = Field("auto", description=(
        "int8 types the fake quantizers train for; auto: deploy.target's (VNNI u8s8, x86 without VNNI "
        "u8s8_reduce_range = 7-bit weights, arm64 s8s8); u8u8 has no PT2E form"))


class ExportStage(Section):
    """The deliverable: fp32 ONNX with parity check, optionally TorchScript too."""

    name: Literal["export"]
    torchscript: bool = Field(False, description="also write a traced TorchScript file")


StageConfig = Annotated[Union[PruneStage, UnstructuredStage, FinetuneStage, QuantizeStage, QATStage, ExportStage],
                        Field(discriminator="name")]
STAGE_TYPES = {"prune": PruneStage, "unstructured": UnstructuredStage, "finetune": FinetuneStage,
               "quantize": QuantizeStage, "qat": QATStage, "export": ExportStage}


class CompressConfig(Section):
    stages: list[StageConfig] = Field(default_factory=list, description=(
        "ordered stages, each {name: prune|unstructured|finetune|export|quantize|qat, …}; see README"))
    latency_runs: int = Field(100, gt=0, description="timed runs per latency figure (after warm-up)")
    warmup_runs: int = Field(10, ge=0, description="untimed runs before each latency figure")
    opset: int = Field(17, ge=17, description="ONNX opset of every export")
    atol: float = Field(1e-4, gt=0, description="fp32 ONNX parity: absolute logit tolerance vs PyTorch")
    rtol: float = Field(1e-3, ge=0, description="fp32 ONNX parity: relative logit tolerance vs PyTorch")
    parity_images: int = Field(64, gt=0, description="held-out images the parity check runs on")
    min_int8_agreement: float = Field(0.9, ge=0, le=1, description="int8 top-1 agreement with fp32 a result needs")

    @model_validator(mode="after")
    def _order(self) -> CompressConfig:
        names = [s.name for s in self.stages]
        int8 = [k for k, n in enumerate(names) if n in ("quantize", "qat")]
        if int8 and int8 != [len(names) - 1]:
            raise ValueError(f"compress.stages: quantize or qat must be the last stage, and only one of them (got "
                             f"{names}); allowed: prune/unstructured/finetune/export before one quantize or qat")
        return self


class BudgetConfig(Section):
    latency_ms: float | None = Field(None, gt=0, description="ONNX Runtime latency (median) at deploy.batch_size/threads")
    size_mb: float | None = Field(None, gt=0, description="file size of the final artifact, MB (1e6 bytes)")
    params: int | None = Field(None, gt=0, description="parameters of the final model")
    flops: int | None = Field(None, gt=0, description="FLOPs per image of the final model")
    max_accuracy_drop: float | None = Field(None, ge=0, description="top-1 points lost from the uncompressed model")
    energy_mj: float | None = Field(None, gt=0, description="CPU energy per image of the final artifact, millijoules "
                                    "(ONNX Runtime at deploy.batch_size/threads; measured or estimated, see README)")
    energy_estimates: Literal["count", "warn", "fail"] = Field("warn", description=(
        "an energy figure that is a power-model estimate (no counter here): count = it passes or fails like a "
        "measurement; warn = verdict shown, marked estimated, never fails --strict; fail = the budget fails"))


class DeployConfig(Section):
    target: Literal["auto", "x86-vnni", "x86-avx2", "arm64"] = Field("auto", description=(
        "CPU the int8 file is built for: auto = this machine; x86-avx2 = x86 without VNNI; another CPU's latency "
        "reads 'not measurable here'"))
    threads: int = Field(1, gt=0, description="CPU threads of the target device")
    batch_size: int = Field(1, gt=0, description="batch size the target runs")
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="limits the final artifact must meet")
