"""The retention line of a dense run's report: a student larger or slower than its teacher reads "more"/"higher"."""

from __future__ import annotations

from edgedistill.report.detection import det_lines
from edgedistill.report.segmentation import seg_lines


def _metrics(params_ratio: float, latency_ratio: float) -> dict:
    return {"comparison": {"retention": 0.5, "params_ratio": params_ratio, "latency_ratio": latency_ratio},
            "terms": [], "split": "val", "n_images": 4, "n_boxes": 4, "class_names": ["a"], "image_size": 16,
            "ignore_index": 255}


def test_smaller_student_reads_fewer() -> None:
    line = det_lines(_metrics(8.0, 2.0))[-1]
    assert "8.0× fewer parameters" in line and "2.0× lower latency" in line


def test_larger_student_reads_more_not_fractional_fewer() -> None:
    # an SSDlite student (2.2 M) of a 0.43 M teacher: ratio 0.19 must not print "0.2× fewer"
    for lines in (det_lines, seg_lines):
        line = lines(_metrics(429153 / 2248100, 0.6))[-1]
        assert "5.2× more parameters" in line and "1.7× higher latency" in line, line
        assert "fewer" not in line and "lower" not in line
