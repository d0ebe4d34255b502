"""Committed benchmark results are readable anywhere: no absolute machine paths in them."""

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
ABSOLUTE = re.compile(r"(?<![\w.])/(?:work|root|home|tmp|Users|mnt|opt)/")


def test_no_machine_paths_in_committed_results():
    files = [p for p in RESULTS.glob("*/*") if p.suffix in (".json", ".md")]
    bad = {str(p.relative_to(RESULTS)): m.group(0) for p in files if (m := ABSOLUTE.search(p.read_text()))}
    assert not bad, f"absolute paths in committed benchmark results: {bad}"
