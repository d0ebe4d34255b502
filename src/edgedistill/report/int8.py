"""The int8 part of a stage report: the format chosen and why, every candidate timed, mixed-precision layers."""

from __future__ import annotations

from typing import Any

from .tables import num_text
from .tables import stage_label as _label


def candidate_lines(e: dict[str, Any]) -> list[str]:
    """One indented line per int8 candidate: agreement on train images, gate, latency median [min–max], speed-up."""
    ch = (e.get("info") or {}).get("int8_choice") or {}
    if len(ch.get("candidates", [])) < 2 and ch.get("by") != "measured":
        return []
    out = []
    if ch.get("fp32_ms") is not None:
        e2e = f", {ch['timed']}" if ch.get("timed", "graph") != "graph" else ""  # a detector's: with decoding
        out.append(f"  - fp32 source: {ch['fp32_ms']:.3f} ms [{ch['fp32_min_ms']:.3f}–{ch['fp32_max_ms']:.3f}] "
                   f"(ORT b{ch['batch']} {ch['threads']}t{e2e}, median of {ch['rounds']} interleaved rounds × "
                   f"{ch['runs_per_round']} runs)")
    for c in ch["candidates"]:
        if c.get("error"):
            out.append(f"  - {c['candidate']}: could not be built: {c['error']}")
            continue
        gate = "passed" if c["passed_gate"] else "failed the gate"
        lat = (f"; {c['latency_ms']:.3f} ms [{c['latency_min_ms']:.3f}–{c['latency_max_ms']:.3f}], "
               f"{c['speedup_vs_fp32']:.2f}× fp32" if c.get("latency_ms") is not None else "; not timed")
        chosen = " ← chosen" if c["candidate"] == ch["chosen"] else ""
        mixed = " (mixed precision)" if c.get("mixed") else ""
        out.append(f"  - {c['candidate']}{mixed}: agreement {num_text(c['agreement'], '.1f')}% on train images "
                   f"({gate}){lat}{chosen}")
    return out


def int8_notes(e: dict[str, Any]) -> list[str]:
    """The int8 format a PTQ stage chose and why, its candidates, and which layers stayed fp32 at what cost."""
    info = e.get("info", {})
    if "format" not in info:
        return []
    rr = " with reduce_range" if info.get("reduce_range") else ""
    graph = f", {info['graph']} graph" if info.get("graph") else ""
    out = [f"- {_label(e)}: int8 format {info['format']}{rr}{graph} for target {info['target']} (built on "
           f"{info['host']}; {info['format_reason']})" + (f"; latency {e['latency_note']}" if e.get("latency_note") else "")]
    out += candidate_lines(e)
    note = (info.get("int8_choice") or {}).get("note")
    if note:
        out.append(f"- {_label(e)}: **{note}**")
    mp = info.get("mixed_precision") or {}
    if mp.get("fp32_layers"):
        lat = mp.get("latency") or {}
        cost = (f"; ORT b{lat['batch']} {lat['threads']}t {lat['all_int8_ms']:.3f} ms all-int8 → "
                f"{lat['mixed_ms']:.3f} ms mixed" if lat.get("mixed_ms") else "")
        out.append(f"- {_label(e)}: kept fp32: {', '.join(mp['fp32_layers'])} (agreement on {mp['selection_images']} "
                   f"train images {mp['agreement_all_int8']:.1f}% all-int8 → {mp['agreement']:.1f}%{cost})")
    return out
