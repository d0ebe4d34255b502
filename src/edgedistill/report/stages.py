"""The compression part of a report: stage table, PCR, budget verdicts and charts (accuracy vs latency, energy; size)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from ..deploy.ab_latency import ab_text  # noqa: E402
from ..deploy.budget import overall, verdict  # noqa: E402
from ..deploy.energy import NOT_MEASURABLE, energy_text  # noqa: E402
from ..deploy.openvino_runtime import openvino_summary  # noqa: E402
from .energy import ENERGY_NOTE, energy_chart, pcr_lines, stage_points  # noqa: E402
from .int8 import int8_notes  # noqa: E402
from .tables import human_number, num_text, markdown_table  # noqa: E402
from .tables import stage_label as _label  # noqa: E402


def _lat(e: dict[str, Any], key: str) -> str:
    r = e.get("latency", {}).get(key)
    if r is None and e.get("latency_note"):
        return NOT_MEASURABLE  # built for another CPU (deploy.target): no number pretends to be its latency
    return "–" if r is None else f"{r['latency_ms_median']:.2f} / {r['latency_ms_p90']:.2f}"


def _energy(e: dict[str, Any]) -> str:
    return energy_text(e.get("energy"))


def stage_rows(result: dict[str, Any], all_threads: int) -> tuple[list[str], list[list[str]]]:
    header = ["stage", "precision", "top-1 %", "params", "FLOPs", "MACs", "size MB", "gzip MB", "torch mem MB", "ORT RSS MB",
              "ORT b1 1t ms p50/p90", f"ORT b1 {all_threads}t", "ORT b32 1t", f"ORT b32 {all_threads}t",
              "torch b1 1t", "torch b32 1t", "ORT b1 1t img/s", "energy/img", "checked on", "reported"]
    body = []
    for e in result["stages"]:
        ort1 = e.get("latency", {}).get("ort_b1_t1")
        body.append([_label(e), e["precision"], num_text(e.get("top1"), ".2f"), human_number(e.get("params")),
                     human_number(e.get("flops")), human_number(e.get("macs")), num_text(e.get("size_mb"), ".3f"), num_text(e.get("size_gz_mb"), ".3f"),
                     num_text(e.get("peak_mem_mb"), ".2f"), num_text(e.get("ort_peak_rss_mb"), ".1f"), _lat(e, "ort_b1_t1"), _lat(e, f"ort_b1_t{all_threads}"),
                     _lat(e, "ort_b32_t1"), _lat(e, f"ort_b32_t{all_threads}"), _lat(e, "torch_b1_t1"),
                     _lat(e, "torch_b32_t1"), "–" if ort1 is None else f"{ort1['throughput_ips']:.0f}",
                     _energy(e), openvino_summary(e.get("runtimes")), "yes" if e["reported"] else "no (failed check)"])
    return header, body


def prune_notes(e: dict[str, Any]) -> list[str]:
    """A prune stage's channel rounding and its latency against its input, per step and overall (< 1×: slower)."""
    info = e.get("info") or {}
    ab, rt = info.get("latency_ab"), info.get("round_to") or {}
    if not ab:
        return []
    out = [f"- {_label(e)}: channels in multiples of {rt.get('value') or 'none'} (round_to {rt.get('asked')}"
           + (f": {rt['why']})" if rt.get("why") else ")")]
    if len(ab.get("steps", [])) > 1:
        out += [f"  - step {s['step']}: {ab_text(s)}" for s in ab["steps"]]
    if ab.get("overall"):
        o = ab["overall"]
        slower = " — **slower than its input**" if o["speedup"] < 1 else ""
        out.append(f"  - pruned vs its input: {ab_text(o)}{slower}")
    return out


def _runtime_notes(e: dict[str, Any]) -> list[str]:
    """Which runtimes ran a reported file, and how OpenVINO's top-1 agreed with ONNX Runtime's."""
    rt = e.get("runtimes")
    if not rt:
        return []
    ov, ort = rt["openvino"], rt["onnxruntime"]
    head = f"- {_label(e)}: run in ONNX Runtime {ort['version']} (all figures)"
    short = str(ov.get("version", "")).split("-")[0]  # 2026.4.1, not its build tag
    if ov["status"] == "checked":
        return [head + f" and OpenVINO {short} ({ov['device']}): top-1 agreement with ORT "
                f"{100 * ov['agreement']:.1f}% on {ov['images']} parity images, max |Δlogit| {ov['max_abs_diff']:.3g}"]
    if ov["status"] == "failed":
        return [head + f"; OpenVINO {short} could not run it: {ov['error']}"]
    return [head + "; OpenVINO not installed (`pip install edgedistill[openvino]` adds the check)"]


def budget_rows(result: dict[str, Any]) -> list[list[str]]:
    return [[b["budget"], f"{b['limit']:g}", "–" if b["measured"] is None else f"{b['measured']:.4g}",
             verdict(b), b.get("note", "")] for b in result["budgets"]]


def charts(result: dict[str, Any], out_dir: Path, prefix: str = "") -> list[tuple[str, str]]:
    """accuracy vs ORT latency per stage, and file size per stage; returns (title, file name) pairs."""
    pts = [e for e in result["stages"] if e.get("latency_ms_median") is not None and e.get("top1") is not None]
    made = []
    if pts:
        fig, ax = plt.subplots(figsize=(6, 4))
        for k, e in enumerate(pts):  # labels fanned out vertically: close stages (fp32 vs int8) would overlap
            ax.scatter(e["latency_ms_median"], e["top1"], s=60, marker="s" if e["precision"] == "int8" else "o")
            ax.annotate(_label(e), (e["latency_ms_median"], e["top1"]), textcoords="offset points",
                        xytext=(6, 10 - 9 * (k % 3)), fontsize=8)
        lat = [e["latency_ms_median"] for e in pts]
        if max(lat) > 4 * min(lat):  # a teacher 10× slower than its students squeezes them into one corner
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set(xlabel="latency, batch 1, 1 thread (ms, median; ONNX Runtime)", ylabel="held-out top-1 (%)",
               title="Accuracy vs latency per compression stage")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / f"{prefix}stages_accuracy_latency.png", dpi=120)
        plt.close(fig)
        made.append(("Accuracy vs latency per stage", f"{prefix}stages_accuracy_latency.png"))
    sized = [e for e in result["stages"] if e.get("size_mb") is not None]
    if sized:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar([_label(e) for e in sized], [e["size_mb"] for e in sized], color="tab:blue", label="file")
        ax.bar([_label(e) for e in sized], [e["size_gz_mb"] for e in sized], color="tab:orange", alpha=0.8,
               width=0.4, label="gzip")
        ax.set(ylabel="MB", title="Artifact size per stage")
        ax.tick_params(axis="x", rotation=30)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / f"{prefix}stages_size.png", dpi=120)
        plt.close(fig)
        made.append(("Size per stage", f"{prefix}stages_size.png"))
    budget_mj = next((b["limit"] for b in result.get("budgets", []) if b["budget"] == "energy_mj"), None)
    if energy_chart(stage_points(result["stages"]), out_dir / f"{prefix}stages_accuracy_energy.png", budget_mj,
                    "Accuracy vs energy per image per stage"):
        made.append(("Accuracy vs energy per stage", f"{prefix}stages_accuracy_energy.png"))
    return made


def stages_markdown(result: dict[str, Any], out_dir: Path, link_prefix: str = "", all_threads: int = 2
                    ) -> list[str]:
    """Markdown lines: stage table, notes, charts (written into out_dir), budget verdicts."""
    header, body = stage_rows(result, all_threads)
    m = result["measurement"]
    lines = ["## Compression stages", "", markdown_table(header, body), "",
             f"Every stage measured on the held-out `{m['split']}` split ({m['n_images']} images). Latency: ms "
             f"median / p90 over {m['runs']} runs after {m['warmup']} warm-up runs; b = batch, t = threads. "
             "Size: the stage's ONNX file (gzip shows what unstructured zeros save). int8 params/FLOPs are those of "
             "the fp32 model it was quantized from. Artifacts: `<k>-<stage>/` folders beside this report.", ""]
    for e in result["stages"]:
        if e["precision"] == "int8" and "agreement_fp32" in e:
            lines.append(f"- {_label(e)}: top-1 agreement with its fp32 source {e['agreement_fp32']:.1f}%"
                         + (" (QAT retrains, so this is not its check)" if "qat_parity" in e.get("info", {}) else ""))
        lines += int8_notes(e) + prune_notes(e)
        qp = e.get("info", {}).get("qat_parity")
        if qp:
            lines.append(f"- {_label(e)}: int8 ONNX vs the converted PyTorch int8 graph: top-1 agreement "
                         f"{100 * qp['top1_agreement']:.1f}%, max |Δlogit| {qp['max_abs_diff']:.3f} "
                         f"({qp['images']} images; {'passed' if qp['passed'] else 'FAILED'})")
        lines += _runtime_notes(e)
        parity = e.get("info", {}).get("parity")
        if parity:
            lines.append(f"- {_label(e)}: fp32 ONNX parity {'passed' if parity['passed'] else 'FAILED'} "
                         f"(max |Δlogit| {parity['max_abs_diff']:.2e}, atol {parity['atol']}, rtol {parity['rtol']}, "
                         f"{parity['images']} images)")
    lines += ["", ENERGY_NOTE, ""]
    variants = next((list(e["pcr"]) for e in result["stages"] if e.get("pcr")), [])
    lines += pcr_lines([(_label(e), e.get("pcr")) for e in result["stages"]], variants,
                       f"`{result.get('pcr_reference', 'teacher')}` row")
    for title, name in charts(result, out_dir, ""):
        lines.append(f"![{title}]({link_prefix}{name})\n")
    if result["budgets"]:
        d = result["deploy"]
        shipped = f" ({result['shipped_note']})" if result.get("shipped_note") else ""
        lines += ["## Budgets", "", f"Final artifact: `{result['final']}`{shipped}; target: batch {d['batch_size']}, "
                  f"{d['threads']} thread(s). Overall: **{overall(result['budgets'])}**.", "",
                  markdown_table(["budget", "limit", "measured", "verdict", "note"], budget_rows(result)), ""]
    return lines


def stages_table(result: dict[str, Any], all_threads: int = 2) -> Table:
    """The terminal's stage table: a refused row (its file failed a check) is dimmed, its top-1 bracketed,
    and says so in `reported`, as report.md does: it was measured for inspection, it is not a result."""
    header, body = stage_rows(result, all_threads)
    names = ("stage", "precision", "top-1 %", "params", "FLOPs", "MACs", "size MB", "ORT RSS MB",
             "ORT b1 1t ms p50/p90", f"ORT b32 {all_threads}t", "energy/img", "checked on", "reported")
    keep = [header.index(n) for n in names if n in header]  # the deploy-relevant columns; report.md has all
    table = Table(title="compression stages")
    for i in keep:
        table.add_column(header[i], justify="left" if header[i] in ("stage", "precision", "energy/img",
                                                                    "checked on", "reported") else "right")
    for e, row in zip(result["stages"], body):
        if not e["reported"] and row[2] != "–":
            row = [*row[:2], f"({row[2]})", *row[3:]]
        table.add_row(*(row[i] for i in keep), style=None if e["reported"] else "dim")
    return table


def print_stages(result: dict[str, Any], console: Console, all_threads: int = 2) -> None:
    console.print(stages_table(result, all_threads))
    if result.get("shipped_note"):
        console.print(f"[yellow]deployable: {result['final']}[/] — {result['shipped_note']}")
    if not all(e["reported"] for e in result["stages"]):
        console.print("[dim](…) refused: the row's file failed its check; measured for inspection, not reported[/]")
    if result["budgets"]:
        t = Table(title=f"budgets — {overall(result['budgets'])}")
        for h in ("budget", "limit", "measured", "verdict", "note"):
            t.add_column(h)
        for row in budget_rows(result):
            t.add_row(*row)
        console.print(t)
