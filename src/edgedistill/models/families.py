"""`arch:FAMILY,key=value,…`: parametric CIFAR ResNets, MobileNetV2/V3 and EfficientNets for a student search.

timm's registered names fix the width and depth multipliers, so the mobile families are built from timm's own
architecture definitions (the block strings of its `_gen_*` generators, decoded by `decode_arch_def`, scaled by
`round_channels`) with the knobs applied; at their defaults they equal the reference nets exactly.
"""

from __future__ import annotations

import re
from functools import partial

from torch import nn

from ..errors import UserError
from .base import MODEL_SOURCES
from .cifar import CifarResNet
from .knobs import FAMILIES, PREFIX, Family, Knob, KnobValue, canonical_spec, check_knobs, family_spec, \
    parse_family_spec

__all__ = ["FAMILIES", "Family", "Knob", "canonical_spec", "check_knobs", "family_spec", "parse_family_spec"]

# Block strings copied from timm 1.0 (efficientnet._gen_mobilenet_v2, _gen_efficientnet, mobilenetv3._gen_mobilenet_v3):
# the private generators take no kernel or expansion knob and need a registered variant name.
_MNV2 = [["ds_r1_k3_s1_c16"], ["ir_r2_k3_s2_e6_c24"], ["ir_r3_k3_s2_e6_c32"], ["ir_r4_k3_s2_e6_c64"],
         ["ir_r3_k3_s1_e6_c96"], ["ir_r3_k3_s2_e6_c160"], ["ir_r1_k3_s1_e6_c320"]]
_EFFNET = [["ds_r1_k3_s1_e1_c16_se0.25"], ["ir_r2_k3_s2_e6_c24_se0.25"], ["ir_r2_k5_s2_e6_c40_se0.25"],
           ["ir_r3_k3_s2_e6_c80_se0.25"], ["ir_r3_k5_s1_e6_c112_se0.25"], ["ir_r4_k5_s2_e6_c192_se0.25"],
           ["ir_r1_k3_s1_e6_c320_se0.25"]]
_MNV3_LARGE = [["ds_r1_k3_s1_e1_c16_nre"], ["ir_r1_k3_s2_e4_c24_nre", "ir_r1_k3_s1_e3_c24_nre"],
               ["ir_r3_k5_s2_e3_c40_se0.25_nre"],
               ["ir_r1_k3_s2_e6_c80", "ir_r1_k3_s1_e2.5_c80", "ir_r2_k3_s1_e2.3_c80"],
               ["ir_r2_k3_s1_e6_c112_se0.25"], ["ir_r3_k5_s2_e6_c160_se0.25"], ["cn_r1_k1_s1_c960"]]
_MNV3_SMALL = [["ds_r1_k3_s2_e1_c16_se0.25_nre"], ["ir_r1_k3_s2_e4.5_c24_nre", "ir_r1_k3_s1_e3.67_c24_nre"],
               ["ir_r1_k5_s2_e4_c40_se0.25", "ir_r2_k5_s1_e6_c40_se0.25"], ["ir_r2_k5_s1_e3_c48_se0.25"],
               ["ir_r3_k5_s2_e6_c96_se0.25"], ["cn_r1_k1_s1_c576"]]


def _edit(arch: list[list[str]], kernel: int, exp: int) -> list[list[str]]:
    """The arch def with every ds/ir block's kernel (and every ir block's expansion) set; 0 keeps the reference."""
    out = []
    for stage in arch:
        blocks = []
        for b in stage:
            if kernel and b.startswith(("ds_", "ir_")):
                b = re.sub(r"_k\d+", f"_k{kernel}", b)
            if exp and b.startswith("ir_"):
                b = re.sub(r"_e[\d.]+", f"_e{exp}", b)
            blocks.append(b)
        out.append(blocks)
    return out


def _stem_stride(model: nn.Module, stride: int) -> nn.Module:
    """Stride-1 stem for tiny images (16-32 px): same weights and padding (k//2 for both strides), half the
    downsampling; timm's constructors hard-code stride 2."""
    conv = model.conv_stem
    k = conv.kernel_size[0]
    if stride != 2:
        assert conv.padding == (k // 2, k // 2), conv.padding  # plain symmetric padding: valid at stride 1 too
        conv.stride = (stride, stride)
    return model


def _classes(n: int | None, default: int) -> int:
    return default if n is None else n


def _cifar_resnet(k: dict[str, KnobValue], num_classes: int | None) -> nn.Module:
    return CifarResNet(tuple(k["blocks"]), tuple(k["widths"]), _classes(num_classes, 100))  # type: ignore[arg-type]


def _mobilenetv2(k: dict[str, KnobValue], num_classes: int | None) -> nn.Module:
    from timm.models._efficientnet_builder import decode_arch_def, round_channels
    from timm.models.efficientnet import EfficientNet

    round_chs = partial(round_channels, multiplier=k["width"])
    model = EfficientNet(
        block_args=decode_arch_def(_edit(_MNV2, k["kernel"], k["exp"]), depth_multiplier=k["depth"]),
        num_classes=_classes(num_classes, 1000), num_features=max(1280, round_chs(1280)), stem_size=32,
        round_chs_fn=round_chs, norm_layer=nn.BatchNorm2d, act_layer=nn.ReLU6)
    return _stem_stride(model, k["stem_stride"])


def _efficientnet(k: dict[str, KnobValue], num_classes: int | None) -> nn.Module:
    from timm.layers import get_act_layer
    from timm.models._efficientnet_builder import decode_arch_def, round_channels
    from timm.models.efficientnet import EfficientNet

    round_chs = partial(round_channels, multiplier=k["width"], divisor=8)
    model = EfficientNet(
        block_args=decode_arch_def(_edit(_EFFNET, k["kernel"], k["exp"]), k["depth"]),
        num_classes=_classes(num_classes, 1000), num_features=round_chs(1280), stem_size=32,
        round_chs_fn=round_chs, norm_layer=nn.BatchNorm2d, act_layer=get_act_layer("swish"))
    return _stem_stride(model, k["stem_stride"])


def _mobilenetv3(arch: list[list[str]], num_features: int, k: dict[str, KnobValue],
                 num_classes: int | None) -> nn.Module:
    from timm.layers import get_act_layer
    from timm.models._efficientnet_blocks import SqueezeExcite
    from timm.models._efficientnet_builder import decode_arch_def, round_channels
    from timm.models.mobilenetv3 import MobileNetV3

    se = partial(SqueezeExcite, gate_layer="hard_sigmoid", force_act_layer=nn.ReLU, rd_round_fn=round_channels)
    model = MobileNetV3(
        block_args=decode_arch_def(_edit(arch, k["kernel"], k["exp"]), depth_multiplier=k["depth"]),
        num_classes=_classes(num_classes, 1000), num_features=num_features, stem_size=16,
        fix_stem=k["width"] < 0.75, round_chs_fn=partial(round_channels, multiplier=k["width"]),
        norm_layer=nn.BatchNorm2d, act_layer=get_act_layer("hard_swish"), se_layer=se)
    return _stem_stride(model, k["stem_stride"])


def _mult(what: str, high: float = 2.0) -> Knob:
    return Knob("float", 1.0, low=0.1, high=high, help=f"{what} multiplier (1.0 = the reference net)")


_STEM = Knob("int", 2, choices=(1, 2), help="stride of the first conv; 1 keeps 16-32 px inputs from "
             "shrinking to 1x1 (an explicit knob: nothing is inferred from the data)")


def _mobile_knobs(exp: Knob, kernel: Knob, depth_high: float = 2.0) -> dict[str, Knob]:
    return {"width": _mult("channel"), "depth": _mult("block-repeat", depth_high), "exp": exp, "kernel": kernel,
            "stem_stride": _STEM}


_REF_EXP = Knob("int", 0, low=0, high=8, help="expansion ratio of every inverted-residual block; 0 = the "
                "reference's per-block ratios")
_REF_KERNEL = Knob("int", 0, choices=(0, 3, 5, 7), help="depthwise kernel of every block; 0 = the reference's "
                   "per-block kernels")

for _name, _fam in {
    "cifar_resnet": Family(
        {"blocks": Knob("ints", (1, 1, 1), low=1, high=18, length=3, help="BasicBlocks in each of the 3 stages"),
         "widths": Knob("ints", (16, 16, 32, 64), low=4, high=512, length=4, help="channels of stem, stage 1-3")},
        _cifar_resnet, "CIFAR ResNet (models/cifar.py) with per-stage depth and width", 100, "cifar:resnet8"),
    "mobilenetv2": Family(
        _mobile_knobs(Knob("int", 6, low=1, high=8, help="expansion ratio of every inverted-residual block"),
                      Knob("int", 3, choices=(3, 5, 7), help="depthwise kernel of every block")),
        _mobilenetv2, "MobileNetV2 from timm's arch def", 1000, "timm:mobilenetv2_100"),
    "mobilenetv3": Family(_mobile_knobs(_REF_EXP, _REF_KERNEL), partial(_mobilenetv3, _MNV3_LARGE, 1280),
                          "MobileNetV3-Large from timm's arch def", 1000, "timm:mobilenetv3_large_100"),
    "mobilenetv3_small": Family(_mobile_knobs(_REF_EXP, _REF_KERNEL), partial(_mobilenetv3, _MNV3_SMALL, 1024),
                                "MobileNetV3-Small from timm's arch def", 1000, "timm:mobilenetv3_small_100"),
    "efficientnet": Family(
        _mobile_knobs(Knob("int", 6, low=1, high=8, help="expansion ratio of every inverted-residual block"),
                      _REF_KERNEL, depth_high=4.0),
        _efficientnet, "EfficientNet (B0 block layout, SE) from timm's arch def", 1000, "timm:efficientnet_b0"),
}.items():
    FAMILIES.register(_name, description=_fam.description)(_fam)


class ArchSource:
    """`arch:FAMILY,key=value,…`: one point of a parametric family (see FAMILIES), trained from scratch."""

    def create(self, name: str, num_classes: int | None, pretrained: bool) -> nn.Module:
        family, knobs = parse_family_spec(name)
        if pretrained:
            raise UserError(f"{PREFIX}{name} has no pretrained weights; allowed: a weights file, or none")
        return FAMILIES.get(family).build(knobs, num_classes)

    def validate(self, name: str) -> None:
        """Check the grammar without building (recipe validation)."""
        parse_family_spec(name)

    def names(self) -> list[str]:
        return [family_spec(e.name, {})[len(PREFIX):] for e in FAMILIES]

    def native_classes(self, name: str, pretrained: bool) -> int | None:
        parse_family_spec(name)
        return None


MODEL_SOURCES.register("arch", description="parametric families for a student search: arch:FAMILY,key=value,… "
                                           "(see the arch families table); train from scratch")(ArchSource())
