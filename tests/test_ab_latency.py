"""Interleaved A/B latency: every file timed in every round, ratios per round, a larger model measured slower."""

import pytest
import torch

from edgedistill.deploy.ab_latency import interleaved_latency
from edgedistill.deploy.export import export_onnx
from edgedistill.models import create_model

NAMES = [f"c{i}" for i in range(10)]


@pytest.fixture(scope="module")
def two_files(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("ab")
    big = export_onnx(create_model("cifar:resnet56", 10).eval(), d / "big.onnx", 32, NAMES, [0.5] * 3, [0.25] * 3)
    small = export_onnx(create_model("cifar:resnet8", 10).eval(), d / "small.onnx", 32, NAMES, [0.5] * 3, [0.25] * 3)
    return big, small


def test_interleaved_rounds_and_speedup(two_files):
    big, small = two_files
    r = interleaved_latency({"big": big, "small": small}, (1, 3, 32, 32), rounds=3, runs=10, threads=1)
    for k in ("big", "small"):
        f = r["files"][k]
        assert len(f["round_medians_ms"]) == 3 and f["min_ms"] <= f["median_ms"] <= f["max_ms"]
    s = r["speedup_vs_big"]["small"]
    assert len(s["round_ratios"]) == 3 and s["min"] <= s["median"] <= s["max"]
    assert s["median"] > 2  # resnet8 does a tenth of resnet56's FLOPs: measured several times faster


def test_rejects_empty_rounds(two_files):
    with pytest.raises(ValueError, match="at least 1"):
        interleaved_latency({"a": two_files[0]}, (1, 3, 32, 32), rounds=0)


def test_a_timed_call_that_sets_torch_threads_leaves_the_callers_count():
    from edgedistill.deploy.ab_latency import interleaved_rounds

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        per = interleaved_rounds({"one": lambda: torch.set_num_threads(1), "two": lambda: None}, rounds=2, runs=2,
                                 warmup=1)
        assert torch.get_num_threads() == 2 and len(per["one"]) == 2
    finally:
        torch.set_num_threads(before)
