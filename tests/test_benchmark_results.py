"""Committed benchmark results are readable anywhere: no absolute machine paths in them."""

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
ABSOLUTE = re.compile(r"(?<![\w.])/(?:work|root|home|tmp|Users|mnt|opt)/")


def test_no_machine_paths_in_committed_results():
    files = [p for p in RESULTS.glob("*/*") if p.suffix in (".json", ".md")]
    bad = {str(p.relative_to(RESULTS)): m.group(0) for p in files if (m := ABSOLUTE.search(p.read_text()))}
    assert not bad, f"absolute paths in committed benchmark results: {bad}"


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat (fields 14 and 15, after the parenthesised name)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_machine_load_sees_another_process_and_refuses():
    """A busy neighbour process is counted as others' CPU time and the interval is refused; our own work is not.

    Checked in CPU seconds, not shares of a quiet machine: other jobs on a loaded box add to "others" too, so the
    neighbour's own CPU time (from /proc) is a lower bound and ours must have been subtracted from the total.
    """
    import os
    import subprocess
    import sys
    import time

    sys.path.insert(0, str(RESULTS.parent))
    from machine_load import load_between, snapshot, too_loaded

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    a = snapshot()
    t = time.process_time()
    while time.process_time() - t < 0.5:  # our own busy loop: half a CPU second (os.times: 10 ms ticks)
        pass
    b = snapshot()
    own = load_between(a, b)
    if own["others_share"] is None:
        return  # not Linux: nothing measured, nothing refused
    others = own["others_share"] * (b.wall - a.wall) * cores
    assert b.own - a.own >= 0.45 and others <= (b.busy - a.busy) - 0.4, (others, b.busy - a.busy)
    hog = subprocess.Popen([sys.executable, "-c", "import time\nprint(flush=True)\nt=time.time()\n"
                            "while time.time()-t<120: pass"], stdout=subprocess.PIPE)
    try:
        hog.stdout.readline()  # it is running
        a, hog_a = snapshot(), _cpu_seconds(hog.pid)
        time.sleep(1.0)
        b, hog_b = snapshot(), _cpu_seconds(hog.pid)
    finally:
        hog.kill()
        hog.wait()
    busy = load_between(a, b)
    others = busy["others_share"] * (b.wall - a.wall) * cores
    assert hog_b - hog_a > 0.05 and others >= 0.9 * (hog_b - hog_a), (others, hog_b - hog_a)
    assert too_loaded(busy) and "other processes used" in too_loaded(busy), busy
    assert too_loaded({"others_share": 0.0, "steal_share": 0.0, "load1_before": 0, "load1_after": 0}) is None
