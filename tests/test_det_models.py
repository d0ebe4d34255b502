"""det: models: built offline, one training step gives torchvision's losses, eval gives boxes with class ids
0..K-1 (the background offset of SSD / Faster R-CNN undone), and a user weights file loads strictly."""

import pytest
import torch

from edgedistill.errors import UserError
from edgedistill.models import create_model, save_model
from edgedistill.tasks.detection import build_det_model

X = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
BOXES = [torch.tensor([[2.0, 2.0, 30.0, 30.0]]), torch.tensor([[8.0, 4.0, 60.0, 44.0]])]
LABELS = [torch.tensor([2]), torch.tensor([0])]


@pytest.mark.parametrize("spec", ["det:fcos_mobilenet_v3_small@0.25", "det:retinanet_mobilenet_v3_small@0.25",
                                  "det:ssdlite320_mobilenet_v3_large", "det:fasterrcnn_mobilenet_v3_large_fpn"])
def test_detector_trains_a_step_and_predicts_class_ids(spec):
    torch.manual_seed(0)
    m = build_det_model(spec, 3, 64, None, "student.model").train()
    losses, fpn, head = m.train_outputs(X, BOXES, LABELS)
    assert all(torch.isfinite(v) for v in losses.values()) and len(fpn) >= 3
    assert (head is not None) == spec.startswith(("det:fcos", "det:retinanet"))
    sum(losses.values()).backward()
    m.eval()
    with torch.no_grad():
        out = m(X)
    assert len(out) == 2 and all(d["boxes"].shape[-1] == 4 for d in out)
    labels = torch.cat([d["labels"] for d in out])
    assert len(labels) == 0 or (labels.min() >= 0 and labels.max() < 3)


def test_weights_file_loads_and_a_wrong_one_is_refused(tmp_path):
    m = build_det_model("det:fcos_mobilenet_v3_small@0.25", 3, 64, None, "student.model")
    save_model(tmp_path / "m.safetensors", m, {"model": "det:fcos_mobilenet_v3_small@0.25", "num_classes": 3})
    again = build_det_model("det:fcos_mobilenet_v3_small@0.25", 3, 64, str(tmp_path / "m.safetensors"),
                            "student.weights")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), again.state_dict().values()))
    torch.save(m.state_dict(), tmp_path / "m.pth")
    with pytest.raises(UserError):
        build_det_model("det:fcos_mobilenet_v3_small@0.5", 3, 64, str(tmp_path / "m.pth"), "student.weights")


def test_width_only_on_mobilenet_detectors():
    with pytest.raises(UserError, match="@WIDTH is a MobileNetV3 width multiplier"):
        create_model("det:fcos_resnet50_fpn@0.5", 3)
    with pytest.raises(UserError, match="fcos_mobilenet_v3_small"):
        create_model("det:fcos_nope", 3)
