"""The fidelity audit's table (terminal and markdown), its robustness chart and audit/report.md + report.html."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console

from ..atomic import atomic_write_text
from .charts import plt
from .html import write_html
from .tables import LABELS, markdown_table, rich_table


def _f(v: Any, fmt: str = ".3f") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _gaps(ys: list[Any]) -> list[float]:
    return [math.nan if v is None else v for v in ys]


def _count(n: int, rate: float) -> str:
    """"3 (42.9%)"; a bare count when the rate is undefined (the teacher made no error)."""
    return str(n) if math.isnan(rate) else f"{n} ({100 * rate:.1f}%)"


def fidelity_rows(audit: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per measure, one column per student (distilled, and alone when the run trained it)."""
    students = list(audit["fidelity"])
    head = ["measure (vs teacher)", *(LABELS.get(s, s) for s in students)]

    def row(label: str, get: Any, fmt: str = ".3f") -> list[str]:
        return [label, *(_f(get(s), fmt) for s in students)]

    inh = audit["inherited"]
    rows = [
        row("top-1 (%)", lambda s: audit["clean"][s]["top1"], ".2f"),
        row("top-1 agreement (%)", lambda s: audit["fidelity"][s]["agreement"], ".2f"),
        row("KL(teacher‖student), nats", lambda s: audit["fidelity"][s]["kl"], ".4f"),
        row("JS divergence, nats", lambda s: audit["fidelity"][s]["js"], ".4f"),
        row("linear CKA, penultimate features", lambda s: audit["fidelity"][s]["cka"]),
        [f"teacher errors repeated exactly (of {next(iter(inh.values()))['teacher_errors']})",
         *(_count(inh[s]["same_mistake"], inh[s]["inherited_rate"]) for s in students)],
        [f"teacher errors also wrong (of {next(iter(inh.values()))['teacher_errors']})",
         *(_count(inh[s]["also_wrong"], inh[s]["student_wrong_rate"]) for s in students)],
        row("per-class error-rate correlation", lambda s: audit["errors"][s]["class_error_corr"]),
        row("per-image error correlation (phi)", lambda s: audit["errors"][s]["image_error_corr"]),
        row("confusion pattern cosine (off-diagonal)", lambda s: audit["errors"][s]["confusion_cosine"]),
        row("ECE (student)", lambda s: audit["clean"][s]["ece"], ".4f"),
        ["ECE (teacher)", *(_f(audit["clean"]["teacher"]["ece"], ".4f") for _ in students)],
    ]
    return head, rows


def perturbation_rows(audit: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Accuracy of every model and agreement of each student with the teacher, per perturbation and severity."""
    models = list(audit["clean"])
    students = list(audit["fidelity"])
    head = ["perturbation", "level", *(f"top-1 {LABELS.get(m, m)}" for m in models),
            *(f"agree {LABELS.get(s, s)}" for s in students)]
    rows = [["clean", "–", *(_f(audit["clean"][m]["top1"], ".1f") for m in models),
             *(_f(audit["fidelity"][s]["agreement"], ".1f") for s in students)]]
    for name, p in audit["perturbations"].items():
        for r in p["rows"]:
            rows.append([name, f"{r['level']:.4g}", *(_f(r["top1"][m], ".1f") for m in models),
                         *(_f(r["agreement"][s], ".1f") for s in students)])
    return head, rows


def robustness_chart(audit: dict[str, Any], path: Path, metric: str = "top1", label: str = "top-1") -> bool:
    """The metric (solid: top-1, mIoU, mAP) and agreement with the teacher (dashed) against severity, one panel per
    perturbation; an undefined value (None: no box to agree on) leaves a gap."""
    perts = audit["perturbations"]
    if not perts:
        return False
    cols = min(3, len(perts))
    rows = math.ceil(len(perts) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    colors = {"teacher": "#444444", "student": "#1f77b4", "student_alone": "#ff7f0e"}
    for ax, (name, p) in zip(axes.flat, perts.items()):
        xs = [0, *range(1, len(p["rows"]) + 1)]
        ticks = ["clean", *(f"{r['level']:.3g}" for r in p["rows"])]
        for m in audit["clean"]:
            ys = _gaps([audit["clean"][m][metric], *(r[metric][m] for r in p["rows"])])
            ax.plot(xs, ys, marker="o", ms=3, color=colors.get(m), label=f"{label} {LABELS.get(m, m)}")
        for s in audit["fidelity"]:
            ys = _gaps([audit["fidelity"][s]["agreement"], *(r["agreement"][s] for r in p["rows"])])
            ax.plot(xs, ys, ls="--", marker="s", ms=3, color=colors.get(s), label=f"agree {LABELS.get(s, s)}")
        ax.set_xticks(xs, ticks)
        ax.set(title=name, xlabel=p["meaning"], ylabel="%", ylim=(0, 102))
        ax.xaxis.label.set_size(8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(perts):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_audit_report(folder: Path, audit: dict[str, Any]) -> Path:
    """audit/report.md (tables, chart) and its self-contained report.html."""
    chart = robustness_chart(audit, folder / "robustness.png")
    lines = [
        "# Fidelity audit",
        "",
        f"Run `{audit['run']}`: teacher `{audit['models']['teacher']}` → student `{audit['models']['student']}`, "
        f"{audit['n_images']} images of the {audit['split']} split. Penultimate features for CKA: "
        + ", ".join(f"{LABELS.get(n, n)} `{layer}` (pooled)" for n, layer in audit["feature_layers"].items()) + ".",
        "",
        markdown_table(*fidelity_rows(audit)),
        "",
        ("Inherited errors: on the images the teacher gets wrong, how often the student predicts the same wrong "
        "class (repeated exactly) or any wrong class. A student that learned from the teacher's soft labels "
        "repeats more of its mistakes than the same student trained alone when it copied them."),
        "",
        "## Under perturbation",
        "",
        ("Perturbations are applied to the [0, 1] pixels before normalization; FGSM is computed on the teacher "
        "and the same images are given to the students (a transfer attack)."),
        "",
        markdown_table(*perturbation_rows(audit)),
        "",
    ]
    if chart:
        lines += ["![Accuracy and agreement vs severity](robustness.png)", ""]
    md = folder / "report.md"
    atomic_write_text(md, "\n".join(lines))
    write_html(md, title="edgedistill fidelity audit")
    return md


def print_audit(audit: dict[str, Any], console: Console) -> None:
    for title, (head, rows) in (("Fidelity audit", fidelity_rows(audit)), ("Under perturbation",
                                                                           perturbation_rows(audit))):
        console.print(rich_table(f"{title}: {audit['n_images']} images, {audit['split']} split", head, rows))
