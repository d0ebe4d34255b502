"""Compression stages a user runs, end to end through the CLI on one tiny trained run (no monkeypatched gate).

One `edgedistill run recipes/compress.yaml` (digits, 16 px, a few hundred images, 1–2 epochs) is shared by
every test: `--strict` on a real failed budget, `qat` through `compress` (its parity gate passing on a good
file and rejecting a file with a broken activation scale), `finetune` taught by the recipe's teacher and by
nobody, `unstructured` zeros on disk, and `export` with TorchScript.
"""

import contextlib
import gzip
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import invoke

from edgedistill.deploy.budget import STRICT_EXIT_CODE

pytestmark = pytest.mark.slow

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "compress.yaml"
TINY_BUDGET = "deploy.budget.size_mb=0.000001"  # no file is this small: a budget that genuinely fails
TIMING = ["compress.latency_runs=2", "compress.warmup_runs=0"]


def cli(*args: str) -> tuple[int, str, str]:
    """The CLI in-process with its output redirected (capsys is function-scoped): usable from module fixtures."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = invoke(*args)
    return code, out.getvalue(), err.getvalue()


def stages_of(folder: Path) -> dict[str, dict]:
    """A compress folder's stage entries by stage name; a repeated name gets its index: `finetune#2`."""
    by: dict[str, dict] = {}
    for e in json.loads((folder / "stages.json").read_text())["stages"]:
        by[e["stage"] if e["stage"] not in by else f"{e['stage']}#{e['index']}"] = e
    return by


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The compress recipe at its smallest: a trained teacher and student, one export stage (the cheapest),
    a size budget no file meets. Run once with --strict, then resumed (everything reused) without it."""
    base = tmp_path_factory.mktemp("e2e")
    args = ["run", RECIPE, f"output.dir={base / 'runs'}", "data.max_train_samples=512",
            "data.max_val_samples=128",
            "teacher.model=cifar:resnet8", "teacher.epochs=1", "train.epochs=2", "train.batch_size=32",
            "eval.latency_runs=2", "eval.warmup_runs=0", "compress.stages=[{name: export}]",
            *TIMING, "compress.parity_images=16", TINY_BUDGET]
    strict = cli(*args, "--strict")
    again = cli(*args, "--resume")
    return SimpleNamespace(base=base, run=base / "runs" / "compress", strict=strict, again=again)


def test_run_strict_exits_3_on_a_failed_budget_and_0_without(trained):
    code, out, err = trained.strict
    assert code == STRICT_EXIT_CODE, err
    assert "budget failed" in err and "Traceback" not in err
    metrics = json.loads((trained.run / "metrics.json").read_text())
    rows = {b["budget"]: b for b in metrics["compress"]["budgets"]}
    assert rows["size_mb"]["passed"] is False and rows["size_mb"]["measured"] > 0.01
    assert metrics["compress"]["budgets_passed"] is False
    code, out, err = trained.again  # the same failed verdict, without --strict: exit 0
    assert code == 0, err
    assert "finished earlier" in out and "FAIL" in out
    assert json.loads((trained.run / "metrics.json").read_text())["compress"]["budgets_passed"] is False


@pytest.fixture(scope="module")
def qat_run(trained):
    """QAT of the run's student through `edgedistill compress FILE`, with a size budget no file meets."""
    out = trained.base / "qat"
    res = cli("compress", trained.run / "student" / "model.safetensors",
              "compress.stages=[{name: qat, epochs: 1}]", "data.max_train_samples=128", *TIMING,
              f"output.dir={out}", TINY_BUDGET, "--strict")
    return SimpleNamespace(res=res, dir=out / "run")


def test_qat_through_compress_passes_its_parity_gate_and_is_reported(qat_run):
    code, _, err = qat_run.res
    assert code == STRICT_EXIT_CODE, err  # compress --strict: the int8 file is reported, then fails size_mb
    result = json.loads((qat_run.dir / "stages.json").read_text())
    q = stages_of(qat_run.dir)["qat"]
    parity = q["info"]["qat_parity"]
    assert parity["passed"] and parity["images"] == 64 and parity["top1_agreement"] >= 0.9
    assert parity["against"] == "converted PyTorch int8 graph"
    assert q["reported"] and q["precision"] == "int8" and q["artifact"] == "1-qat/model.int8.onnx"
    assert q["info"]["terms"] == ["kd"] and q["info"]["teacher"] == "unpruned"
    assert result["final"] == "1-qat" and not result["budgets_passed"]
    assert [r["epoch"] for r in _history(qat_run.dir / "1-qat")] == [1]  # it trained its epoch before converting
    from edgedistill.compress.cpu import detect_cpu, target_of
    from edgedistill.compress.qat import qat_format
    from edgedistill.compress.quantize import read_quant_meta

    host = target_of(detect_cpu().machine, detect_cpu().flags)  # QAT trains for this CPU's int8 (deploy.target auto)
    assert q["info"]["qat_format"] == qat_format("auto", host) and q["info"]["target"] == host
    assert read_quant_meta(qat_run.dir / "1-qat" / "model.int8.onnx")["int8_format"] == q["info"]["qat_format"]


def test_qat_int8_onnx_has_metadata_dynamic_batch_and_predicts(qat_run, tmp_path):
    import onnx
    from PIL import Image
    from sklearn.datasets import load_digits

    from edgedistill.deploy.onnx_runtime import ort_predict, ort_session, read_onnx_meta

    path = qat_run.dir / "1-qat" / "model.int8.onnx"
    proto = onnx.load(str(path))
    assert sum(n.op_type == "QuantizeLinear" for n in proto.graph.node) > 5
    from onnx import TensorProto

    from edgedistill.models import create_model

    int8 = sum(int(np.prod(t.dims)) for t in proto.graph.initializer if t.data_type == TensorProto.INT8)
    assert int8 > 0.9 * sum(p.numel() for p in create_model("cifar:resnet8", 10).parameters()
                            if p.dim() > 1)  # conv and fc weights stored as int8 (the student is a ResNet-8)
    meta = read_onnx_meta(path)
    assert meta["class_names"] == [str(i) for i in range(10)] and meta["image_size"] == 16
    assert meta["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert meta["std"] == pytest.approx([0.229, 0.224, 0.225])
    session = ort_session(path)
    assert not isinstance(session.get_inputs()[0].shape[0], int)  # a named, dynamic batch dimension
    x = np.random.default_rng(0).standard_normal((5, 3, 16, 16)).astype(np.float32)
    five = ort_predict(session, x)
    assert five.shape == (5, 10)
    np.testing.assert_allclose(ort_predict(session, x[:1]), five[:1], atol=1e-5)

    digits = load_digits()
    images = []
    for i in range(3):
        images.append(tmp_path / f"digit{digits.target[i]}.png")
        Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).resize((32, 32)).save(images[-1])
    code, out, err = cli("predict", path, *images, "--top-k", "2")
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 3 and all(str(p) in line for p, line in zip(images, lines))
    for line in lines:
        labels_probs = line.split(": ", 1)[1].replace(",", "").split()
        assert labels_probs[0] in meta["class_names"]
        assert 0 < float(labels_probs[3]) <= float(labels_probs[1]) <= 1


def test_qat_parity_gate_rejects_a_file_with_a_broken_activation_scale(trained, tmp_path, monkeypatch):
    """The exported file, not the gate, is broken: the graph input's quantization scale is made 1000× too
    large, so every image quantizes to the zero point. The real gate must refuse it and keep it renamed."""
    import onnx
    from onnx import numpy_helper

    from edgedistill.compress import qat

    real = qat.export_qat_onnx

    def export_then_break_input_scale(converted, path, example, opset):
        real(converted, path, example, opset)
        proto = onnx.load(str(path))
        quant = next(n for n in proto.graph.node if n.op_type == "QuantizeLinear"
                     and n.input[0] == proto.graph.input[0].name)
        scale = next(t for t in proto.graph.initializer if t.name == quant.input[1])
        scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 1000, scale.name))
        onnx.save(proto, str(path))
        return path

    monkeypatch.setattr(qat, "export_qat_onnx", export_then_break_input_scale)
    out = tmp_path / "broken"
    code, stdout, err = cli("compress", trained.run / "student" / "model.safetensors",
                            "compress.stages=[{name: qat, epochs: 1}]", "data.max_train_samples=128", *TIMING,
                            f"output.dir={out}", TINY_BUDGET)
    assert code == 0, err  # the budget fails (on the input model), but without --strict that is exit 0
    run = out / "run"
    result = json.loads((run / "stages.json").read_text())
    q = stages_of(run)["qat"]
    parity = q["info"]["qat_parity"]
    assert parity["passed"] is False and parity["top1_agreement"] < 0.9
    assert not q["reported"] and q["artifact"] is None and q["top1"] is None
    assert (run / "1-qat" / "model.int8.parity-failed.onnx").is_file()
    assert not (run / "1-qat" / "model.int8.onnx").exists()
    assert q["info"]["kept_for_inspection"] == str(run / "1-qat" / "model.int8.parity-failed.onnx")
    # the student predicts many classes (top-1 well above what one class can score), so a constant output
    # cannot agree with it on 90% of images: the refusal is the broken scale's doing, not chance
    assert stages_of(run)["input"]["top1"] >= 25
    assert result["final"] == "0-input"  # the refused row is not the result
    assert result["budgets_passed"] is False
    assert "not reported" in stdout


@pytest.fixture(scope="module")
def chain(trained):
    """From the run folder (its teacher at hand): finetune taught by the teacher, then by nobody, then
    unstructured magnitude pruning, then the fp32 + TorchScript deliverable."""
    stages = ("compress.stages=[{name: finetune, epochs: 1, teacher: teacher}, {name: finetune, epochs: 1, "
              "teacher: none}, {name: unstructured, amount: 0.6}, {name: export, torchscript: true}]")
    # no --strict: the failed size budget is reported, the exit code stays 0
    res = cli("compress", trained.run, stages, "data.max_train_samples=128", *TIMING,
              "compress.parity_images=16", TINY_BUDGET)
    folder = next(p for p in trained.run.glob("compress-*")
                  if "unstructured" in (p / "plan.json").read_text())
    return SimpleNamespace(res=res, dir=folder)


def _history(stage_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]


def test_finetune_with_the_recipe_teacher_and_with_none(chain):
    code, out, err = chain.res
    assert code == 0, err
    assert json.loads((chain.dir / "stages.json").read_text())["budgets_passed"] is False and "FAIL" in out
    by = stages_of(chain.dir)
    taught, alone = by["finetune"], by["finetune#2"]
    assert taught["info"]["teacher"] == "teacher" and taught["info"]["terms"] == ["kd"]
    assert all(h["kd"] > 0 for h in _history(chain.dir / "1-finetune"))
    assert alone["info"]["teacher"] == "none" and alone["info"]["terms"] == []
    for h in _history(chain.dir / "2-finetune"):  # cross-entropy alone: the loss is the CE term, nothing else
        assert "kd" not in h and h["loss"] == pytest.approx(h["ce"])
    assert taught["reported"] and alone["reported"] and alone["info"]["parity"]["passed"]

    from edgedistill.compress.prune import load_pruned

    a = load_pruned(chain.dir / "1-finetune" / "model.safetensors")[0].state_dict()
    b = load_pruned(chain.dir / "2-finetune" / "model.safetensors")[0].state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())  # it trained


def test_teacher_stage_without_a_trained_teacher_exits_2_before_work(trained, tmp_path):
    out = tmp_path / "c"
    code, _, err = cli("compress", trained.run / "student" / "model.safetensors",
                       "compress.stages=[{name: finetune, epochs: 1, teacher: teacher}]", f"output.dir={out}")
    assert code == 2 and "Traceback" not in err
    assert "compress.stages.0.teacher" in err and "no trained teacher" in err and "'unpruned'" in err
    assert not out.exists()  # refused before any stage ran
    # `run` with teacher-free distillation (no teacher is trained): refused before any training
    code, _, err = cli("run", RECIPE, f"output.dir={out}", "distill.terms=[{name: tf_kd_reg}]",
                       "compress.stages=[{name: qat, teacher: teacher}]")
    assert code == 2 and "compress.stages.0.teacher" in err and "no trained teacher" in err
    assert not out.exists()


def test_unstructured_zeros_are_in_the_saved_weights_and_gzip_smaller(chain):
    from safetensors.torch import load_file

    assert chain.res[0] == 0, chain.res[2]
    by = stages_of(chain.dir)
    u, dense = by["unstructured"], by["finetune#2"]
    info = u["info"]
    weights = {k: v for k, v in load_file(str(chain.dir / "3-unstructured" / "model.safetensors")).items()
               if k.endswith(".weight") and v.dim() > 1}  # Conv and Linear weights
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    total = sum(w.numel() for w in weights.values())
    assert info["sparsity"] == pytest.approx(zeros / total) and 0.59 <= info["sparsity"] <= 0.61
    assert all(row["sparsity"] >= 0.59 for row in info["sparsity_layers"])
    assert {f"{row['layer']}.weight" for row in info["sparsity_layers"]} == set(weights)
    before = load_file(str(chain.dir / "2-finetune" / "model.safetensors"))
    assert sum(int((before[k] == 0).sum()) for k in weights) < 0.01 * total  # the zeros are the stage's doing
    assert u["info"]["parity"]["passed"] and u["reported"] and u["params"] == dense["params"]
    for name in ("model.onnx", "model.safetensors"):  # dense storage: same bytes raw, far fewer gzipped
        raw_u = (chain.dir / "3-unstructured" / name).read_bytes()
        raw_d = (chain.dir / "2-finetune" / name).read_bytes()
        assert abs(len(raw_u) - len(raw_d)) < 0.02 * len(raw_d)
        assert len(gzip.compress(raw_u)) < 0.8 * len(gzip.compress(raw_d)), name
    assert u["size_gz_mb"] < 0.8 * dense["size_gz_mb"]


def test_export_torchscript_loads_and_matches_pytorch(chain):
    from edgedistill.compress.prune import load_pruned

    assert chain.res[0] == 0, chain.res[2]
    e = stages_of(chain.dir)["export"]
    ts_path = chain.dir / "4-export" / "model.ts"
    assert e["info"]["torchscript"] == str(ts_path) and e["reported"] and e["info"]["parity"]["passed"]
    scripted = torch.jit.load(str(ts_path))
    model = load_pruned(chain.dir / "4-export" / "model.safetensors")[0].eval()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), atol=1e-5, rtol=1e-4)
    dense = sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1)
    assert sum(int((p == 0).sum()) for p in scripted.parameters()) > 0.5 * dense  # the sparse model, traced
