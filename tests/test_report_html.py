"""report.html opens in a real headless browser (Debian's Chromium): its tables and every image render."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgedistill.analysis import stats
from edgedistill.report.compare import write_compare_report
from system_tools import tool_or_skip


def _result() -> dict:
    """A comparison result built by the real statistics on made-up numbers (no training needed)."""
    vals = {"alone": [90.1, 90.8, 89.9], "kd": [92.0, 92.4, 91.7], "dkd": [91.9, 90.2, 92.8]}
    comps = [{"arm": a, "vs": b, **stats.paired(vals[a], vals[b])} for a, b in
             (("kd", "alone"), ("dkd", "alone"), ("dkd", "kd"))]
    for c, p in zip(comps, stats.correct([c["t_p"] for c in comps]), strict=True):
        c["t_p_adj"], c["verdict"] = p, stats.verdict(c["diff"], p, 0.05)
    return {"metric": "top1", "higher_is_better": True, "alpha": 0.05, "correction": "holm", "baseline": "alone",
            "seeds": 3, "splits": 1, "units": [[0, 0], [1, 0], [2, 0]], "split": "val", "notes": [],
            "arms": {a: stats.describe(v) | {"values": v, "runs": [f"/x/{a}-s{i}" for i in range(3)]}
                     for a, v in vals.items()}, "comparisons": comps}


def _browser(chromium: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--virtual-time-budget=3000", *args], check=False, capture_output=True, text=True, timeout=120)


def test_compare_report_renders_in_chromium(tmp_path):
    chromium = tool_or_skip("chromium", "chromium", "chromium-browser")
    res = _result()
    (tmp_path / "compare.json").write_text(json.dumps(res))
    write_compare_report(tmp_path, res)
    html = (tmp_path / "report.html").read_text()
    assert "http://" not in html and "https://" not in html  # opens without a network
    # A copy with a probe script: the browser counts decoded images and rendered table rows into the title.
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", "<script>document.title = 'images ' + [...document.images].filter("
                                  "i => i.complete && i.naturalWidth > 0).length + '/' + document.images.length + "
                                  "' rows ' + document.querySelectorAll('tr').length;</script></body>"))
    dom = _browser(chromium, "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-500:]
    title = re.search(r"<title>(.*?)</title>", dom.stdout).group(1)
    assert title == "images 1/1 rows 8", title  # forest plot decoded; 3 arms and 3 comparisons, 2 headers
    assert "better" in dom.stdout and "no evidence" in dom.stdout
    shot = tmp_path / "report.png"
    done = _browser(chromium, f"--screenshot={shot}", "--window-size=1200,1600", (tmp_path / "report.html").as_uri())
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-500:]
    out = Path(os.environ.get("EDGEDISTILL_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shot, out / "compare-report.png")
