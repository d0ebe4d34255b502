"""Energy per image through CodeCarbon: measured where a counter is readable, else its power model, always labelled.

CodeCarbon picks the source itself: Intel RAPL package counters (Linux), Windows EMI, Intel Power Gadget or
Apple powermetrics / a Raspberry Pi PMIC are *measured*; on a machine without them (a VM, a container without
/sys/class/powercap) it falls back to a power model: the CPU's TDP from its table × this process's share of the
CPU time (`cpu_load`, tracking_mode="process"), or a constant share of the TDP (`constant`). Those figures are
*estimated* and every one says so (`kind`, `label`). The hand-written RAPL/NVML reader this replaces is gone:
CodeCarbon reads the same package counters (wraps handled by max_energy_range_uj) and more platforms.

Only the CPU's energy is reported: every figure here times CPU inference (ONNX Runtime, PyTorch on the CPU),
so a GPU's board energy would be an idle board's, and CodeCarbon's RAM figure is always a model (never a
counter), which would turn a measured figure into a partly estimated one.

Stability: the first tracker in a process spends 4–7 s detecting hardware (cached afterwards); each later
start+stop costs ~0.12 s wall and ~0.01 CPU s (0.04 J by the model on the 2-core VM this was written on:
`python` loop over `OfflineEmissionsTracker(...).start(); time.sleep(x); .stop()`). In process mode the
estimate follows the process's CPU time, not wall time, so it is stable on a loaded machine; the loop runs
for at least MIN_SECONDS so the per-measurement overhead stays a few percent of the figure, and
measure_power_secs=1 keeps a sample per second (the total does not depend on it: CPU-time deltas and
counter deltas add up over any sampling).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

NOT_MEASURABLE = "not measurable here"
MIN_SECONDS = 0.5  # shortest timed loop: tracker overhead (~0.01 CPU s) stays a few % of the figure
KWH_TO_J = 3.6e6
# CodeCarbon CPU modes that read a hardware energy counter; anything else (cpu_load, constant, unknown) is a model.
COUNTER_MODES = {"intel_rapl": "Intel RAPL", "windows_emi": "Windows EMI", "intel_power_gadget": "Intel Power Gadget",
                 "apple_powermetrics": "Apple powermetrics"}
COUNTER_CLASSES = {"AppleSiliconChip": "Apple powermetrics", "Raspberry": "Raspberry Pi PMIC"}


def _tracker(rapl_dir: str | None) -> Any:
    """An offline, silent, file-less CodeCarbon tracker of this process; rapl_dir: a RAPL tree other than /sys.

    rapl_dir replaces the CPU probe CodeCarbon chose by its own `CPU(mode="intel_rapl", rapl_dir=…)`, the one
    hook its tracker has for a counter tree elsewhere (a bind-mounted powercap, a test's fake tree).
    """
    from codecarbon import OfflineEmissionsTracker

    logging.getLogger("codecarbon").setLevel(logging.ERROR)  # after the import, which sets its own level

    # The country only sets a carbon intensity, which is never read here; output_methods=[]: no emissions.csv.
    t = OfflineEmissionsTracker(country_iso_code="USA", measure_power_secs=1, log_level="error", output_methods=[],
                                tracking_mode="process", allow_multiple_runs=True)
    if rapl_dir is not None:
        from codecarbon.external.hardware import CPU

        t._ensure_hardware_ready()
        cpu = CPU(output_dir=t._output_dir, mode="intel_rapl", model=f"RAPL at {rapl_dir}", tdp=0,
                  rapl_dir=rapl_dir, tracking_mode="process")
        t._hardware = [h for h in t._hardware if not isinstance(h, CPU)] + [cpu]
    return t


def _source(tracker: Any) -> tuple[str, str]:
    """(kind, label) of the CPU figure from the hardware CodeCarbon chose; unknown → estimated, never measured."""
    for h in getattr(tracker, "_hardware", []):
        name = type(h).__name__
        if name in COUNTER_CLASSES and getattr(h, "chip_part", "CPU") == "CPU":
            return "measured", f"measured ({COUNTER_CLASSES[name]})"
        if name != "CPU":
            continue
        mode = getattr(h, "_mode", None)
        if mode in COUNTER_MODES:
            return "measured", f"measured ({COUNTER_MODES[mode]})"
        tdp = getattr(h, "_tdp", None)
        if mode == "cpu_load":
            return "estimated", f"estimated (model: CodeCarbon cpu_load, TDP {tdp} W × this process's CPU share)"
        if mode == "constant":
            return "estimated", f"estimated (model: CodeCarbon constant, {tdp} W TDP × a fixed share)"
        return "estimated", f"estimated (model: CodeCarbon {mode})"
    return "estimated", "estimated (model: CodeCarbon, CPU source unknown)"


class EnergyMeter:
    """Context manager: after the block, `joules` (CPU energy) with `kind`/`label`, or None and a `reason`."""

    def __init__(self, rapl_dir: str | None = None):
        self.rapl_dir = rapl_dir
        self.joules: float | None = None
        self.seconds: float | None = None
        self.kind: str | None = None
        self.label: str | None = None
        self.reason: str | None = None
        self._t: Any = None
        self._t0 = 0.0

    def __enter__(self) -> EnergyMeter:
        try:
            self._t = _tracker(self.rapl_dir)
            self._t.start()
        except ImportError:
            self._t, self.reason = None, NOT_MEASURABLE + " (CodeCarbon is not installed: pip install codecarbon)"
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.seconds = time.perf_counter() - self._t0
        if self._t is None:
            return
        # stop() skips its closing sample when the last one is under 50 ms old, dropping the block's tail (all of
        # a short block): take it now, so every joule up to here counts.
        flush = getattr(self._t, "_measure_power_and_energy", None)
        if flush is not None:
            flush()
        else:
            time.sleep(0.051)
        self._t.stop()
        data = getattr(self._t, "final_emissions_data", None)
        if data is None:  # CodeCarbon swallows its own errors (@suppress) and leaves no data
            self.reason = NOT_MEASURABLE + " (CodeCarbon recorded no data)"
            return
        self.kind, self.label = _source(self._t)
        self.joules = float(data.cpu_energy) * KWH_TO_J

    def result(self) -> dict[str, Any]:
        """joules, seconds, kind (measured/estimated), label, reason (set only when joules is None)."""
        return {"joules": self.joules, "seconds": self.seconds, "kind": self.kind, "label": self.label,
                "reason": self.reason}


def energy_meter(rapl_dir: str | None = None) -> EnergyMeter:
    """Measure a block's CPU energy: `with energy_meter() as e: ...; e.joules, e.label` (None + e.reason)."""
    return EnergyMeter(rapl_dir)


def energy_per_image(step: Callable[[], Any], images_per_step: int, min_steps: int,
                     min_seconds: float = MIN_SECONDS, rapl_dir: str | None = None) -> dict[str, Any]:
    """Run `step` (one inference, set up beforehand) ≥ min_steps times and ≥ min_seconds; joules per image, labelled."""
    n = 0
    with energy_meter(rapl_dir) as e:
        t0 = time.perf_counter()
        while n < min_steps or time.perf_counter() - t0 < min_seconds:
            step()
            n += 1
    r = e.result()
    per = None if r["joules"] is None else r["joules"] / (n * images_per_step)
    out = {"j_per_image": per, "kind": r["kind"], "label": r["label"], "images": n * images_per_step,
           "seconds": r["seconds"]}
    return out if per is not None else {**out, "reason": r["reason"]}


def energy_text(e: dict[str, Any] | None) -> str:
    """A table cell: `0.123 mJ (estimated)`, `… (measured)`, or why there is no figure."""
    e = e or {}
    j = e.get("j_per_image")
    if j is None:
        return NOT_MEASURABLE
    return f"{1e3 * j:.3f} mJ ({e.get('kind') or 'estimated'})"


def is_estimate(e: dict[str, Any] | None) -> bool:
    """True unless the figure came from a hardware counter (an entry without a kind counts as an estimate)."""
    return (e or {}).get("kind") != "measured"


def torch_energy(model: Any, input_shape: tuple[int, ...], runs: int, threads: int | None = None,
                 rapl_dir: str | None = None) -> dict[str, Any]:
    """Joules per image of a PyTorch model's CPU forward at input_shape (a float32 CPU copy is timed)."""
    import copy

    import torch

    m = copy.deepcopy(model).cpu().float().eval()
    x = torch.zeros(input_shape)
    previous = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        with torch.inference_mode():
            m(x)  # warm-up outside the measured window

            def step() -> None:
                with torch.inference_mode():
                    m(x)

            return energy_per_image(step, input_shape[0], runs, rapl_dir=rapl_dir)
    finally:
        torch.set_num_threads(previous)
