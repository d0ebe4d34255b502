"""`edgedistill predict` on segmentation and detection ONNX files: the task comes from the file's metadata.
Segmentation runs without torch and writes class-id mask PNGs; detection decodes with the chain's DetDecoder and
gives the same boxes as the PyTorch model, scaled to each image's own size; bad options exit 2 naming the key."""

import json
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from edgedistill.deploy.export import export_onnx
from tests.conftest import cli

FCOS = "det:fcos_mobilenet_v3_small@0.25"


def _bright_is_class_1(tmp_path):
    """A 1×1 conv segmenter: class 1 where the normalized pixel mean is above 0 (raw mean above 0.5)."""
    conv = torch.nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[1] = 1 / 3
        conv.bias.zero_()
    return export_onnx(conv.eval(), tmp_path / "seg.onnx", 16, ["dark", "bright"], [0.5] * 3, [0.5] * 3,
                       extra={"task": "segmentation", "ignore_index": "255", "output": "N×K×H×W logits"})


def test_segmentation_predict_writes_masks_and_shares_without_torch(tmp_path):
    path = _bright_is_class_1(tmp_path)
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, :5] = 255  # the left quarter is bright
    Image.fromarray(img).save(tmp_path / "a.png")
    code = ("import sys\nfrom edgedistill.cli import main\nsys.argv = ['edgedistill', 'predict', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('TORCH_LOADED' if 'torch' in sys.modules else 'NO_TORCH')\n")
    res = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "a.png"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[-1] == "NO_TORCH" and "dark 75.0%, bright 25.0%" in lines[0]
    mask = Image.open(tmp_path / "o" / "a.png")
    assert mask.mode == "P" and mask.size == (20, 10)
    want = np.zeros((10, 20), np.uint8)
    want[:, :5] = 1
    assert (np.asarray(mask) == want).all()  # class ids at the image's own size
    saved = json.loads((tmp_path / "o" / "predictions.json").read_text())
    assert saved["task"] == "segmentation" and saved["images"][0]["shares"] == {"dark": 75.0, "bright": 25.0}


def _detector(tmp_path, record_model=True):
    from edgedistill.tasks.det_graph import HeadGraph
    from edgedistill.tasks.detection import build_det_model

    torch.manual_seed(0)
    model = build_det_model(FCOS, 2, 64, None, "student.model").eval()
    with torch.no_grad():
        model.net.head.classification_head.cls_logits.bias.fill_(1.0)  # confident enough to give boxes
    extra = {"task": "detection", **({"model": FCOS} if record_model else {})}
    path = export_onnx(HeadGraph(model).eval(), tmp_path / "det.onnx", 64, ["a", "b"], [0.0] * 3, [1.0] * 3,
                       extra=extra)
    return model, path


def test_detection_predict_gives_the_pytorch_models_boxes_at_the_images_own_size(tmp_path, capsys):
    from edgedistill.deploy.onnx_segment import square_pixels
    from edgedistill.evaluate.detection import match_count

    model, path = _detector(tmp_path)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8))
    img.save(tmp_path / "scene.png")
    code, out, err = cli(capsys, "predict", str(path), str(tmp_path / "scene.png"), "--min-score", "0.3",
                         "--top-k", "2", "--out", str(tmp_path / "o"))
    assert code == 0, err
    got = json.loads((tmp_path / "o" / "predictions.json").read_text())["images"][0]["boxes"]
    with torch.no_grad():
        ref = model(torch.from_numpy(square_pixels(img, 64).transpose(2, 0, 1)).unsqueeze(0))[0]
    keep = ref["scores"] >= 0.3
    ref = {"boxes": ref["boxes"][keep] * torch.tensor([96 / 64, 80 / 64] * 2), "labels": ref["labels"][keep]}
    assert len(got) == len(ref["boxes"]) > 2
    top = got[:50]  # an untrained head scores many boxes alike: which make the 100-box cut is float noise
    mine = {"boxes": torch.tensor([b["box"] for b in top]), "labels": torch.tensor([["a", "b"].index(b["label"])
                                                                                    for b in top])}
    assert match_count(mine, ref, iou=0.9) >= 0.98 * len(top)  # the same boxes, at 96×80
    assert f"{len(got)} box(es) ≥ 0.3" in out and "more)" in out
    assert Image.open(tmp_path / "o" / "scene.png").size == (96, 80)  # drawn on the image itself


def test_predict_bad_input_exits_2_naming_the_key(tmp_path, capsys):
    _, path = _detector(tmp_path, record_model=False)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "file").write_text("")
    for args, key in ((["--min-score", "1.5"], "--min-score"), (["--top-k", "0"], "--top-k"),
                      (["--out", str(tmp_path / "file")], "--out"), ([], "MODEL")):
        code, out, err = cli(capsys, "predict", str(path), str(tmp_path / "a.png"), *args)
        assert code == 2 and key in err and "Traceback" not in err, (args, err)
    assert "does not record its detector" in err
    code, _, err = cli(capsys, "predict", str(_bright_is_class_1(tmp_path)), str(tmp_path / "file"))
    assert code == 2 and "cannot read image" in err
    untagged = export_onnx(torch.nn.Conv2d(3, 2, 1).eval(), tmp_path / "old.onnx", 16, ["a", "b"], [0.5] * 3,
                           [0.5] * 3)  # per-pixel outputs, no task recorded: not read as a classifier's scores
    code, _, err = cli(capsys, "predict", str(untagged), str(tmp_path / "a.png"))
    assert code == 2 and "[1, 2, 16, 16]" in err and "MODEL" in err
