"""How loaded the machine was while a benchmark variant ran: other processes' CPU share, steal, load average.

A throughput figure taken while other jobs share the cores is not a property of the code (the project once
quoted 0.79x that way; the quiet-machine figure was 0.996x). /proc/stat gives the CPU time every process
used; subtracting this process's own (os.times, children included) leaves what the others took. Steal is
time the hypervisor gave to other VMs. Linux only; elsewhere every figure is None and nothing is refused.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

# Above these a comparison of two variants measures the neighbours, not the code.
MAX_OTHERS_SHARE = 0.10  # of all cores, on average over the variant
MAX_STEAL_SHARE = 0.05


@dataclass
class Snapshot:
    wall: float
    busy: float | None  # seconds of non-idle CPU time, all cores, all processes
    steal: float | None
    own: float  # this process and its waited-for children, user + system seconds
    load1: float | None


def _proc_stat() -> tuple[float, float] | tuple[None, None]:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None, None
    ticks = [int(v) for v in fields]
    hz = os.sysconf("SC_CLK_TCK")
    idle, iowait = ticks[3], ticks[4]
    steal = ticks[7] if len(ticks) > 7 else 0
    busy = sum(ticks[:8]) - idle - iowait - steal  # user nice system irq softirq (guest is inside user)
    return busy / hz, steal / hz


def snapshot() -> Snapshot:
    busy, steal = _proc_stat()
    t = os.times()
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = None
    return Snapshot(time.monotonic(), busy, steal, t.user + t.system + t.children_user + t.children_system, load1)


def load_between(a: Snapshot, b: Snapshot) -> dict[str, float | None]:
    """Shares of all cores over the interval: others' CPU use, steal; and the 1-minute load before and after."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    span = max(b.wall - a.wall, 1e-9) * cores
    if a.busy is None or b.busy is None:
        return {"others_share": None, "steal_share": None, "load1_before": a.load1, "load1_after": b.load1}
    others = max(0.0, (b.busy - a.busy) - (b.own - a.own))
    return {"others_share": others / span, "steal_share": (b.steal - a.steal) / span,
            "load1_before": a.load1, "load1_after": b.load1}


def too_loaded(load: dict[str, float | None]) -> str | None:
    """Why this interval's figures are not comparable, or None when the machine was quiet enough."""
    if (load["others_share"] or 0) > MAX_OTHERS_SHARE:
        return f"other processes used {load['others_share']:.0%} of the cores (limit {MAX_OTHERS_SHARE:.0%})"
    if (load["steal_share"] or 0) > MAX_STEAL_SHARE:
        return f"the hypervisor stole {load['steal_share']:.0%} of the CPU time (limit {MAX_STEAL_SHARE:.0%})"
    return None
