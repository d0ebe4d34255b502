"""Which int8 format a CPU runs correctly: CPU flags → deploy target → ONNX Runtime QDQ data types.

Why the format depends on the CPU (ONNX Runtime's quantization guide, "Data type selection" and FAQ
"When to use reduce-range", onnxruntime.ai/docs/performance/model-optimizations/quantization.html, and
the `quantize_static` docstring of onnxruntime 1.32):

- x86-64 with AVX2/AVX-512 but no VNNI: ORT runs U8S8 with VPMADDUBSW, whose 16-bit intermediate
  sums can saturate ("clamped to fit"); the guide says to try reduce_range (7-bit weights) "or the U8U8
  format which doesn't have saturation issues". We pick **U8U8**: it removes the saturation instead of
  making it rarer, and on the digits int8 file of issue 10 (AMD EPYC, AVX2, no VNNI, 360 images) it
  agreed with fp32 on 97.5% of images vs 96.4% for reduce_range and 86.9% for plain U8S8.
- x86-64 with VNNI (AVX512-VNNI, AVX-VNNI; AMX-INT8 implies it): "there is no such issue", so U8S8,
  the combination ORT fuses into QLinearConv, without reduce_range.
- ARM64: no saturation either; ORT recommends symmetric S8S8 QDQ there ("S8S8 with QDQ is the
  default … should be the first choice"; "ARM cores generally handle symmetric QInt8 activations well").

Which formats are *correct* on a target is a property of its kernels; which one is *fastest* is not in any
table: the quantize stage builds every correct format (QDQ and QOperator graphs), gates each on agreement and
times them against fp32 on this CPU (compress/int8_choice.py). Without VNNI, correctness depends on the graph
too (CORRECT_INT8): the test network of tests/test_int8.py under `qemu-x86_64 -cpu Haswell` agreed with fp32
on 86.7% of images as u8s8 and as s8s8 QDQ (97.7% on a VNNI CPU), 96.9% as reduce_range and 97.7% as u8u8 QDQ
(the same as on VNNI), while its u8u8 QOperator file's top-1 differed from the same file run on a VNNI CPU on
11.7% of images (`python benchmarks/int8_emulated.py`).

Detection is a thin reader of /proc/cpuinfo (Linux) plus platform.machine(); elsewhere it says "unknown"
and the choice falls back to the format that is correct on any CPU of that architecture.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Format = Literal["u8s8", "u8s8_reduce_range", "u8u8", "s8s8"]
Target = Literal["x86-vnni", "x86-avx2", "arm64", "unknown"]
FORMATS: tuple[str, ...] = ("u8s8", "u8s8_reduce_range", "u8u8", "s8s8")
TARGETS: tuple[str, ...] = ("x86-vnni", "x86-avx2", "arm64")
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
SIMD_FLAGS = VNNI_FLAGS | {"avx2", "avx512f", "avx512bw", "asimd", "asimddp", "i8mm"}  # worth recording
# (format, graph) pairs each target computes without saturation, the table's own format first. Correctness
# is per pair: under `qemu-x86_64 -cpu Haswell` (tests/test_int8_choice.py) u8u8 saturates as a QOperator
# graph (QLinearConv) but not as QDQ, and s8s8 saturates as QDQ but not as QOperator.
CORRECT_INT8: dict[str, tuple[tuple[str, str], ...]] = {
    "x86-vnni": (("u8s8", "qdq"), ("u8s8", "qoperator"), ("u8u8", "qdq"), ("u8u8", "qoperator")),
    "x86-avx2": (("u8u8", "qdq"), ("u8s8_reduce_range", "qdq"), ("u8s8_reduce_range", "qoperator"),
                 ("s8s8", "qoperator")),
    "arm64": (("s8s8", "qdq"), ("u8s8", "qdq"), ("u8s8", "qoperator"))}
_X86 = {"x86_64", "amd64", "i386", "i686", "x86"}
_ARM64 = {"arm64", "aarch64", "armv8", "armv8l"}


@dataclass(frozen=True)
class Cpu:
    """What detection found: the architecture name and the SIMD flags that matter for int8."""

    machine: str
    flags: frozenset[str] = field(default_factory=frozenset)
    source: str = "unknown"  # /proc/cpuinfo, or why flags are unknown


def parse_cpuinfo(text: str) -> frozenset[str]:
    """The flags of /proc/cpuinfo ('flags' on x86, 'Features' on ARM), first processor only."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


CPUINFO_ENV = "EDGEDISTILL_CPUINFO"


def detect_cpu(cpuinfo: Path | None = None) -> Cpu:
    """This machine's architecture and int8-relevant flags; flags stay empty where cpuinfo is unreadable.

    $EDGEDISTILL_CPUINFO names another cpuinfo file: under user-mode emulation (`qemu-x86_64 -cpu Haswell`)
    /proc/cpuinfo is the host's, not the emulated CPU's, so the emulated flags must come from elsewhere.
    """
    cpuinfo = cpuinfo or Path(os.environ.get(CPUINFO_ENV) or "/proc/cpuinfo")
    machine = platform.machine().lower()
    try:
        flags = parse_cpuinfo(cpuinfo.read_text(errors="replace"))
        return Cpu(machine, flags & SIMD_FLAGS, str(cpuinfo))
    except OSError:
        return Cpu(machine, frozenset(), f"unknown ({cpuinfo} not readable on {platform.system() or 'this OS'})")


def target_of(machine: str, flags: frozenset[str] | set[str]) -> Target:
    """The deploy target a CPU is: x86 with or without VNNI, arm64, or unknown (no flags / other arch)."""
    m = machine.lower()
    if m in _ARM64:
        return "arm64"
    if m in _X86 and flags:
        return "x86-vnni" if VNNI_FLAGS & set(flags) else "x86-avx2"
    return "unknown"


def format_for(target: str, machine: str = "") -> tuple[Format, str]:
    """The QDQ format a target runs correctly, and why (see the module docstring for the sources)."""
    if target == "x86-vnni":
        return "u8s8", "x86 with VNNI: U8S8 does not saturate and is what ORT fuses into QLinearConv"
    if target == "x86-avx2":
        return "u8u8", "x86 without VNNI: ORT's U8S8 kernels (VPMADDUBSW) can saturate; U8U8 cannot"
    if target == "arm64":
        return "s8s8", "arm64: ORT recommends symmetric S8S8 QDQ"
    if machine.lower() in _X86:
        return "u8u8", "x86 with unknown flags: U8U8 is correct with or without VNNI"
    return "s8s8", "unknown CPU: S8S8 QDQ, ORT's default format"


def correct_int8(target: str, machine: str = "") -> tuple[tuple[str, str], ...]:
    """Every (format, graph) pair `target` runs without saturation; the table's own format first."""
    return CORRECT_INT8.get(target) or ((format_for(target, machine)[0], "qdq"),)


def resolve(requested_format: str, deploy_target: str, cpu: Cpu) -> dict[str, object]:
    """Everything the quantize stage records: target, host, format and reason, and whether it is measurable here.

    deploy_target 'auto' means this machine; a forced format wins over the target's own.
    """
    host = target_of(cpu.machine, cpu.flags)
    target = host if deploy_target == "auto" else deploy_target
    fmt, reason = format_for(target, cpu.machine if deploy_target == "auto" else "")
    if requested_format != "auto":
        fmt, reason = requested_format, "forced by the recipe's format key"
    measurable = deploy_target == "auto" or deploy_target == host
    return {"format": fmt, "reduce_range": fmt == "u8s8_reduce_range", "format_reason": reason,
            "target": target, "host": host, "host_machine": cpu.machine, "cpu_flags": sorted(cpu.flags),
            "cpu_source": cpu.source, "measurable_here": measurable}


def not_measurable_reason(deploy_target: str, cpu: Cpu) -> str | None:
    """Why the target's latency cannot be timed on this machine, or None when it can."""
    host = target_of(cpu.machine, cpu.flags)
    if deploy_target in ("auto", host):
        return None
    return f"deploy.target {deploy_target} is not this CPU ({host}, {cpu.machine})"


def in_format(resolved: dict[str, object], fmt: str, **extra: object) -> dict[str, object]:
    """`resolved` for another int8 format (reduce_range follows it), plus extra keys such as the graph."""
    return {**resolved, "format": fmt, "reduce_range": fmt == "u8s8_reduce_range", **extra}


def dynamic_resolved(resolved: dict[str, object]) -> dict[str, object]:
    """`resolved` for dynamic quantization: ONNX Runtime quantizes dynamic activations to uint8 only, so s8s8
    becomes u8s8 on arm64 (no saturation there) and u8u8 elsewhere (correct on any CPU)."""
    if resolved["format"] != "s8s8":
        return resolved
    arm = resolved["target"] == "arm64"
    reason = ("dynamic quantization has no int8 activations in ONNX Runtime; "
              + ("arm64 runs u8s8 without saturation" if arm else "u8u8 is correct on any CPU"))
    return in_format(resolved, "u8s8" if arm else "u8u8", format_reason=reason)
