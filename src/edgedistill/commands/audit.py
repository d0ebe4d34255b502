"""`edgedistill audit`: check the options, collect, analyse, then write audit/ and the run's fidelity section."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from ..analysis.audit import analyse, check_args, collect, load_inputs, summary
from ..atomic import atomic_write_text
from ..engine import resolve_device
from ..errors import UserError
from ..run.reader import read_finished_run
from ..tasks import task_chain


def run_audit(run_dir: Path, *, max_images: int = 1000, batch_size: int = 128, perturb: str | None = None,
              levels: list[str] | None = None, split: str | None = None, device: str = "cpu",
              alone: Path | None = None, console: Console | None = None) -> dict[str, Any]:
    """Audit a finished run; writes RUN_DIR/audit/{audit.json,report.md,report.html,robustness.png} and
    adds `fidelity` to RUN_DIR/metrics.json. Returns the audit."""
    from ..report.audit import print_audit, write_audit_report

    console = console or Console()
    chosen = check_args(max_images, batch_size, perturb, levels or [], split, device)
    if alone is not None and Path(alone).expanduser().resolve() == Path(run_dir).expanduser().resolve():
        raise UserError(f"--alone {alone} is RUN_DIR itself: its student is the distilled one, not a baseline "
                        "trained alone; allowed: another run (e.g. the alone arm of the same compare seed)",
                        key="--alone")
    _, r, metrics = read_finished_run(run_dir)
    chain = task_chain(metrics, "audit")
    if chain is not None:  # segmentation, detection: the task's own metric under perturbation (tasks/)
        run_dir = Path(run_dir).expanduser()
        spec = chain.audit(run_dir, r, metrics, resolve_device(device))
        return _task_audit(spec, run_dir, r, metrics, chosen, console, named=perturb, max_images=max_images,
                           batch_size=batch_size, split=split or r.eval.split, alone=alone)
    inputs = load_inputs(run_dir, alone)
    r = inputs.recipe
    split = split or r.eval.split
    dev = resolve_device(device)
    console.print(f"auditing [bold]{inputs.run_dir}[/]: {', '.join(inputs.models)} on ≤ {max_images} "
                  f"{split} images, {sum(len(v) for v in chosen.values())} perturbed copies each")
    col, _ = collect(inputs, chosen, max_images, batch_size, dev, split)
    audit = analyse(col, chosen, len(inputs.metrics["class_names"]), r.eval.ece_bins, r.eval.kd_T)
    audit = {"run": str(inputs.run_dir), "split": split, **({"alone_from": str(alone)} if alone else {}), "models": {n: s for n, (s, _) in inputs.models.items()},
             **audit}
    md = _write(inputs.run_dir, audit, write_audit_report, summary)
    print_audit(audit, console)
    console.print(f"\nreport: [bold]{md.with_suffix('.html')}[/]")
    return audit


def _write(run_dir: Path, audit: dict[str, Any], write_report: Any, summarize: Any) -> Path:
    """audit/audit.json, the report, and the `fidelity` section of metrics.json (each written atomically)."""
    folder = run_dir / "audit"
    atomic_write_text(folder / "audit.json", json.dumps(audit, indent=2))
    md = write_report(folder, audit)
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text())  # reread: keep anything written since the run was read
    metrics["fidelity"] = summarize(audit)
    atomic_write_text(metrics_path, json.dumps(metrics, indent=2))
    return md


def _task_audit(spec: Any, run_dir: Path, r: Any, metrics: dict[str, Any], chosen: dict[str, Any],
                console: Console, *, alone: Path | None, split: str, **opts: Any) -> dict[str, Any]:
    """A segmentation or detection run's audit (the task chain's side, analysis/dense_audit.py's run): audit/ and
    the run's fidelity section."""
    from ..analysis.dense_audit import audit_run, dense_summary
    from ..report.task_audit import print_dense_audit, write_dense_audit_report

    audit = audit_run(spec, run_dir, r, metrics, chosen, alone=alone, split=split, say=console.print, **opts)
    audit = {"run": str(run_dir), "split": split, **({"alone_from": str(alone)} if alone else {}), **audit}
    md = _write(run_dir, audit, write_dense_audit_report, dense_summary)
    print_dense_audit(audit, console)
    console.print(f"\nreport: [bold]{md.with_suffix('.html')}[/]")
    return audit
