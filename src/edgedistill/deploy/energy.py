"""Energy of a code block from hardware counters (Intel RAPL, NVIDIA NVML); None, with a reason, when unreadable."""

from __future__ import annotations

import glob
import re
import time
from pathlib import Path
from types import TracebackType
from typing import Any

RAPL_GLOB = "/sys/class/powercap/intel-rapl:*"
NOT_MEASURABLE = "not measurable here"


def _rapl_zones(pattern: str = RAPL_GLOB) -> list[Path]:
    """Top-level package zones only (intel-rapl:N): subzones (core, dram) are inside them, so never summed."""
    zones = [Path(z) for z in sorted(glob.glob(pattern)) if re.fullmatch(r"intel-rapl:\d+", Path(z).name)]
    readable = []
    for z in zones:
        try:
            int((z / "energy_uj").read_text())
            readable.append(z)
        except (OSError, ValueError):  # since 2020 energy_uj is root-only on most distros
            continue
    return readable


def _read_uj(zone: Path) -> int:
    return int((zone / "energy_uj").read_text())


def _max_uj(zone: Path) -> int | None:
    try:
        return int((zone / "max_energy_range_uj").read_text())
    except (OSError, ValueError):
        return None


def rapl_delta_uj(start: int, end: int, max_range: int | None) -> int | None:
    """Counter difference; it wraps to 0 past max_energy_range_uj, so a drop means one wrap (None: range unknown)."""
    if end >= start:
        return end - start
    return None if max_range is None else end + max_range - start


class EnergyMeter:
    """Context manager: after the block, `joules` holds the energy used (or None) and `reason` says why not."""

    def __init__(self, rapl_glob: str = RAPL_GLOB, use_nvml: bool = True):
        self.rapl_glob, self.use_nvml = rapl_glob, use_nvml
        self.joules: float | None = None
        self.seconds: float | None = None
        self.source: str | None = None
        self.reason: str | None = None
        self._start: Any = None
        self._t0 = 0.0
        self._handles: list[Any] = []
        self._zones: list[Path] = []

    def _nvml_handles(self) -> list[Any]:
        """GPU handles whose total-energy counter works (Volta or newer); empty if pynvml or a GPU is missing."""
        try:
            import pynvml
        except ImportError:
            return []
        try:
            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            for h in handles:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
            return handles
        except Exception:  # noqa: BLE001 — no driver, no GPU, or an older GPU: not measurable
            return []

    def __enter__(self) -> EnergyMeter:
        self._zones = _rapl_zones(self.rapl_glob)
        if self._zones:
            self.source = "rapl"
            self._start = [_read_uj(z) for z in self._zones]
        elif self.use_nvml and (handles := self._nvml_handles()):
            import pynvml

            self.source, self._handles = "nvml", handles
            self._start = [pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in handles]  # mJ
        else:
            self.reason = NOT_MEASURABLE + " (no readable RAPL counter, no NVML GPU)"
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.seconds = time.perf_counter() - self._t0
        if self.source == "rapl":
            ends = [_read_uj(z) for z in self._zones]
            deltas = [rapl_delta_uj(s, e, _max_uj(z)) for s, e, z in zip(self._start, ends, self._zones)]
            if any(d is None for d in deltas):
                self.reason = NOT_MEASURABLE + " (RAPL counter wrapped and its range is unreadable)"
            else:
                self.joules = sum(deltas) / 1e6
        elif self.source == "nvml":
            import pynvml

            ends = [pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles]
            self.joules = sum(e - s for s, e in zip(self._start, ends)) / 1e3

    def result(self) -> dict[str, Any]:
        """joules, seconds, source (rapl/nvml/None) and reason (set only when joules is None)."""
        return {"joules": self.joules, "seconds": self.seconds, "source": self.source, "reason": self.reason}


def energy_meter(rapl_glob: str = RAPL_GLOB, use_nvml: bool = True) -> EnergyMeter:
    """Measure a block's energy: `with energy_meter() as e: ...; e.joules` (None + e.reason if unmeasurable)."""
    return EnergyMeter(rapl_glob, use_nvml)
