"""benchmarks/bccd_data.py: a box outside the image is clipped and an empty one dropped, each counted and named."""

import sys
from pathlib import Path
from xml.etree import ElementTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bccd_data import boxes_of, voc_xml  # noqa: E402


def _obj(name: str, x1: float, y1: float, x2: float, y2: float) -> str:
    return (f"<object><name>{name}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
            f"<ymax>{y2}</ymax></bndbox></object>")


def test_boxes_are_clipped_dropped_and_logged_then_written_scaled():
    xml = ("<annotation>" + _obj("RBC", 11, 21, 40, 50) + _obj("WBC", 600, 400, 700, 490) +
           _obj("Platelets", 650, 10, 660, 20) + _obj("cell", 1, 1, 5, 5) + "</annotation>").encode()
    log = {"clipped": [], "dropped_empty": [], "dropped_unknown_class": []}
    kept = boxes_of(xml, "img", 640, 480, log)
    assert kept == [("RBC", [10.0, 20.0, 40.0, 50.0]), ("WBC", [599.0, 399.0, 640.0, 480.0])]
    assert len(log["clipped"]) == 1 and "img object 1 WBC" in log["clipped"][0]
    assert len(log["dropped_empty"]) == 1 and "object 2 Platelets" in log["dropped_empty"][0]
    assert len(log["dropped_unknown_class"]) == 1 and "'cell'" in log["dropped_unknown_class"][0]
    root = ElementTree.fromstring(voc_xml("img.jpg", 320, 240, kept, 0.5))
    wbc = root.findall("object")[1].find("bndbox")
    # VOC is 1-based: the det-voc source subtracts 1 from xmin/ymin and gets back the scaled 0-based box
    assert [float(wbc.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")] == [300.5, 200.5, 320.0, 240.0]
