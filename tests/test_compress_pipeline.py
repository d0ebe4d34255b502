"""The compression chain as a user drives it: recipe checks, budgets, an end-to-end run, torch-free predict."""

import importlib.util
import json
import subprocess
import sys

import pytest
import torch
from conftest import cli
from PIL import Image

from edgedistill.compress.chain import check_stages
from edgedistill.deploy.budget import STRICT_EXIT_CODE, check_budgets
from edgedistill.deploy.export import export_onnx
from edgedistill.errors import UserError
from edgedistill.models import create_model
from edgedistill.recipe import build_recipe


@pytest.mark.parametrize("override, fragments", [
    ("compress.stages=[{name: prunee, ratio: 0.5}]", ["compress.stages.0", "'prune'", "'quantize'"]),
    ("compress.stages=[{name: prune, ratio: 1.5}]", ["compress.stages.0.prune.ratio", "less than 1", "1.5"]),
    ("compress.stages=[{name: prune}]", ["exactly one of ratio, flops_ratio, target_params, target_flops"]),
    ("compress.stages=[{name: prune, ratioo: 0.5}]", ["ratioo", "did you mean 'ratio'"]),
    ("compress.stages=[{name: quantize}, {name: prune, ratio: 0.5}]", ["quantize or qat must be the last stage"]),
    ("compress.stages=[{name: quantize, calibration: kl}]", ["calibration", "'entropy'"]),
    ("deploy.budget.latency=3", ["deploy.budget.latency", "did you mean 'latency_ms'"]),
    ("deploy.budget.size_mb=-1", ["deploy.budget.size_mb", "greater than 0"]),
])
def test_bad_compress_recipes_name_key_and_allowed(override, fragments):
    with pytest.raises(UserError) as e:
        build_recipe({}, [override])
    for f in fragments:
        assert f in str(e.value), str(e.value)


def test_good_compress_recipe_parses():
    r = build_recipe({}, ["compress.stages=[{name: prune, ratio: 0.5, importance: bn_scale}, {name: finetune},"
                          " {name: quantize, mode: dynamic}]", "deploy.budget.params=1000", "deploy.threads=4"])
    assert [s.name for s in r.compress.stages] == ["prune", "finetune", "quantize"]
    assert r.compress.stages[0].importance == "bn_scale" and r.deploy.budget.params == 1000


def test_ratio_that_empties_a_layer_is_refused_before_work():
    recipe = build_recipe({}, ["data.image_size=16", "compress.stages=[{name: prune, ratio: 0.97}]"])
    with pytest.raises(UserError, match=r"compress.stages.0.ratio: .*every channel of layer '"):
        check_stages(recipe, create_model("cifar:resnet8", 10))


def test_budgets_pass_fail_and_not_measurable():
    r = build_recipe({}, ["deploy.budget.latency_ms=2", "deploy.budget.size_mb=0.5",
                          "deploy.budget.max_accuracy_drop=1", "deploy.budget.flops=10"])
    final = {"deploy_latency_ms": 1.5, "size_mb": 0.7, "top1": 90.0, "flops": None}
    rows = {b["budget"]: b for b in check_budgets(r.deploy.budget, final, {"top1": 90.5}, r.deploy)}
    assert rows["latency_ms"]["passed"] is True and rows["size_mb"]["passed"] is False
    assert rows["max_accuracy_drop"]["measured"] == pytest.approx(0.5) and rows["max_accuracy_drop"]["passed"]
    assert rows["flops"]["passed"] is None and "not measurable here" in rows["flops"]["note"]
    none = check_budgets(r.deploy.budget, None, {"top1": 90.5}, r.deploy)
    assert all(b["passed"] is None and "no artifact passed" in b["note"] for b in none)


def test_predict_uses_no_torch(tmp_path):
    torch.manual_seed(0)
    names = [f"digit{i}" for i in range(10)]
    path = export_onnx(create_model("cifar:resnet8", 10).eval(), tmp_path / "m.onnx", 16, names,
                       [0.5] * 3, [0.25] * 3)
    imgs = []
    for i, color in enumerate([(255, 0, 0), (0, 90, 200)]):
        imgs.append(tmp_path / f"img{i}.png")
        Image.new("RGB", (40, 30), color).save(imgs[-1])
    code = ("import sys\nfrom edgedistill.cli import main\nsys.argv = ['edgedistill', 'predict', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('TORCH_LOADED' if 'torch' in sys.modules else 'NO_TORCH')\n")
    res = subprocess.run([sys.executable, "-c", code, str(path), *map(str, imgs), "--top-k", "2"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[-1] == "NO_TORCH"
    assert sum("digit" in line and str(imgs[0]) in line for line in lines) == 1
    probs = [float(w) for w in lines[0].replace(",", " ").split()[2::2]]
    assert len(probs) == 2 and 0 < probs[1] <= probs[0] <= 1


@pytest.mark.parametrize("command", [["demo"], ["run", "RECIPE"]])
def test_strict_on_run_and_demo_exits_3_only_when_a_budget_failed(command, tmp_path, capsys, monkeypatch):
    import edgedistill.pipeline

    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {source: digits}\n")
    args = [str(recipe) if a == "RECIPE" else a for a in command]
    for passed in (True, False):
        run_dir = tmp_path / f"run-{passed}"
        run_dir.mkdir()
        (run_dir / "metrics.json").write_text(json.dumps({"compress": {"budgets_passed": passed}}))
        monkeypatch.setattr(edgedistill.pipeline, "run", lambda recipe, console, d=run_dir: d)
        assert cli(capsys, *args, "--strict")[0] == (0 if passed else STRICT_EXIT_CODE)
        assert cli(capsys, *args)[0] == 0


@pytest.mark.slow
def test_end_to_end_compress_run_budgets_and_strict(tiny_overrides, tmp_path, capsys):
    stages = "compress.stages=[{name: prune, ratio: 0.5}, {name: finetune, epochs: 1}, {name: quantize, calib_samples: 32}]"
    timing = ["compress.latency_runs=3", "compress.warmup_runs=1", "compress.parity_images=16"]
    code, out, err = cli(capsys, "demo", *tiny_overrides, "eval.baseline=false", "teacher.epochs=1", "train.epochs=1",
                         stages, *timing, "deploy.budget.latency_ms=10000", "deploy.budget.max_accuracy_drop=100")
    assert code == 0, err
    run = next((tmp_path / "runs").iterdir())
    comp = run / "compress"
    for rel in ("0-input/model.onnx", "1-prune/model.safetensors", "1-prune/model.onnx", "2-finetune/model.onnx",
                "3-quantize/model.int8.onnx", "stages_accuracy_latency.png", "stages_size.png"):
        assert (comp / rel).is_file(), rel
    metrics = json.loads((run / "metrics.json").read_text())
    by = {e["stage"]: e for e in metrics["stages"]}
    assert list(by) == ["teacher", "input", "prune", "finetune", "quantize"]
    assert by["prune"]["params"] < 0.5 * by["input"]["params"]
    assert all(by[s]["info"]["parity"]["passed"] and by[s]["info"]["parity"]["max_abs_diff"] < 1e-4
               for s in ("input", "prune", "finetune"))
    q = by["quantize"]
    assert q["precision"] == "int8" and q["reported"] and 0 <= q["agreement_fp32"] <= 100
    assert q["size_mb"] < 0.6 * by["finetune"]["size_mb"] and q["params"] == by["finetune"]["params"]
    lat = q["latency"]
    assert {"ort_b1_t1", "ort_b32_t1"} <= set(lat) and "torch_b1_t1" in by["finetune"]["latency"]
    assert q["energy"]["j_per_image"] > 0 and q["energy"]["kind"] in ("measured", "estimated")
    assert by["teacher"]["pcr"]["size"] == pytest.approx(1.0) and q["pcr"]["size"] > by["input"]["pcr"]["size"]
    student = metrics["models"]["student"]
    teacher = metrics["models"]["teacher"]
    assert student["energy"]["label"].startswith(student["energy"]["kind"]) and student["pcr"]["flops"] == \
        pytest.approx((student["top1"] / teacher["top1"]) / (student["flops"] / teacher["flops"]))
    assert (run / "accuracy_energy.png").is_file() and (comp / "stages_accuracy_energy.png").is_file()
    # the deployable is the int8 file unless it ran slower than its fp32 source here (then fp32 ships, and says so)
    shipped = "2-finetune" if metrics["compress"].get("shipped_note") else "3-quantize"
    assert metrics["compress"]["budgets_passed"] and metrics["compress"]["final"] == shipped
    report = (run / "report.md").read_text()
    assert "## Compression stages" in report and "(compress/stages_size.png)" in report and "## Budgets" in report
    assert "## Performance-Cost Ratio" in report and "(accuracy_energy.png)" in report and "mJ (" in report
    # every reported file, teacher and int8 included, also ran in OpenVINO (the test extra installs it)
    ov_installed = importlib.util.find_spec("openvino") is not None
    for e in metrics["stages"]:
        ov = e["runtimes"]["openvino"]
        assert e["runtimes"]["onnxruntime"]["status"] == "measured"
        qoperator = e.get("info", {}).get("graph") == "qoperator"  # ORT's com.microsoft ops: OpenVINO lacks them
        assert ov["status"] == ("not installed" if not ov_installed else "failed" if qoperator else "checked"), \
            (e["stage"], ov)
        if qoperator and ov_installed:
            assert "No conversion rule found for operations: com.microsoft." in ov["error"]  # says which ops
        elif ov_installed:
            assert 0 <= ov["agreement"] <= 1 and ov["images"] == 16
            assert e["precision"] == "int8" or ov["agreement"] == 1.0
    assert "| checked on |" in report and "OpenVINO" in report

    # --strict: an impossible size budget fails with exit code 3; the same budget without --strict exits 0
    args = ["compress", str(run), "compress.stages=[{name: quantize, mode: dynamic}]", *timing,
            "deploy.budget.size_mb=0.000001"]
    code, out, err = cli(capsys, *args, "--strict")
    assert code == STRICT_EXIT_CODE and "FAIL" in out
    assert (run / "compress-2" / "1-quantize" / "model.int8.onnx").is_file()
    assert cli(capsys, *args)[0] == 0

    # a model file whose export fails parity: kept for inspection, never reported, budgets not measurable,
    # which --strict cannot call kept
    code, out, err = cli(capsys, "compress", str(run / "student" / "model.safetensors"), "compress.stages=[{name: export}]",
                         *timing, "compress.atol=1e-12", "compress.rtol=0", f"output.dir={tmp_path / 'c'}",
                         "deploy.budget.size_mb=0.000001", "--strict")
    assert code == STRICT_EXIT_CODE and "budget not measurable here: size_mb" in err, err
    out_dir = next((tmp_path / "c").iterdir())
    result = json.loads((out_dir / "stages.json").read_text())
    assert not any(e["reported"] for e in result["stages"]) and result["final"] is None
    assert (out_dir / "1-export" / "model.parity-failed.onnx").is_file() and not (out_dir / "1-export" / "model.onnx").exists()
    assert "refused: the row's file failed its check" in out  # the terminal table marks the refused rows
    assert all("runtimes" not in e for e in result["stages"])  # a refused file is run in no second runtime
    assert result["budgets"][0]["passed"] is None


def _digits_model(path, spec="cifar:resnet8", image_size=16):
    """An untrained `spec` saved as an edgedistill model file whose metadata names a tiny digits split."""
    from edgedistill.data import class_names_of
    from edgedistill.models import save_model

    recipe = build_recipe({}, [f"data.image_size={image_size}", "data.max_train_samples=128",
                               "data.max_val_samples=64", "data.workers=0"])
    d = recipe.data
    torch.manual_seed(0)
    model = create_model(spec, 10)
    meta = {"model": spec, "num_classes": 10, "class_names": class_names_of(d), "image_size": d.image_size,
            "mean": list(d.mean), "std": list(d.std), "data": d.model_dump(mode="json")}
    return save_model(path, model, meta)


def _comparable(stages):
    """A stage entry without what varies between two runs of the same chain: timings, memory, energy, and the
    Performance-Cost Ratios that divide by them (size and FLOPs ones stay)."""
    varying = {"latency", "latency_ms_median", "latency_ms_p90", "deploy_latency_ms", "energy", "peak_mem_mb",
               "ort_peak_rss_mb"}
    out = []
    for e in stages:
        e = {k: v for k, v in e.items() if k not in varying}
        if isinstance(e.get("pcr"), dict):
            e["pcr"] = {k: v for k, v in e["pcr"].items() if k not in ("latency", "energy")}
        if isinstance(e.get("info"), dict) and "int8_choice" in e["info"]:  # the int8 candidates' timings
            e["info"] = {k: v for k, v in e["info"].items() if k != "int8_choice"}
        if isinstance(e.get("info"), dict) and "latency_ab" in e["info"]:  # a prune stage's A/B timings
            info = {k: v for k, v in e["info"].items() if k != "latency_ab"}
            info["steps"] = [{k: v for k, v in s.items() if k != "latency_ab"} for s in info.get("steps", [])]
            e["info"] = info
        out.append(e)
    return out


@pytest.mark.slow
def test_killed_compress_resumes_where_it_stopped(tmp_path, capsys, monkeypatch):
    """Kill fine-tuning after its first epoch, then quantization; each --resume reuses the finished stages,
    fine-tuning continues from its last.pt, and the final stages.json equals an uninterrupted run's."""
    import edgedistill.engine
    from edgedistill.compress.cpu import detect_cpu, resolve
    from edgedistill.compress.stages import STAGES

    model = _digits_model(tmp_path / "m.safetensors")
    fmt = resolve("auto", "auto", detect_cpu())["format"]  # pinned: a timed choice may differ between two runs
    args = ["compress", str(model), "compress.stages=[{name: prune, ratio: 0.5}, {name: finetune, epochs: 2},"
            f" {{name: quantize, calib_samples: 32, format: {fmt}, graph: qdq, ship: int8}}]",
            "compress.latency_runs=2", "compress.warmup_runs=0",
            "compress.parity_images=16", "train.batch_size=32", f"output.dir={tmp_path / 'runs'}"]
    code, out, err = cli(capsys, *args)  # the uninterrupted reference: runs/run
    assert code == 0, err
    reference = json.loads((tmp_path / "runs" / "run" / "stages.json").read_text())

    calls = {"prune": 0, "finetune": 0, "quantize": 0}
    kill = {"finetune_epoch": 1, "quantize": True}
    for name in calls:
        real = STAGES.get(name)

        def counted(job, cfg, stage_dir, real=real, name=name):
            calls[name] += 1
            if name == "quantize" and kill["quantize"]:
                kill["quantize"] = False
                raise KeyboardInterrupt  # what Ctrl-C (or a kill turned into one) does mid-stage
            return real(job, cfg, stage_dir)

        monkeypatch.setattr(STAGES.entry(name), "obj", counted)
    real_fit = edgedistill.engine.fit

    def killing_fit(*a, on_epoch_end=None, **kw):  # the pipeline's hook (trackers) still runs
        def stop(epoch, record):
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
            if epoch == kill["finetune_epoch"]:
                kill["finetune_epoch"] = None
                raise KeyboardInterrupt  # after the epoch's last.pt is written
        return real_fit(*a, **kw, on_epoch_end=stop)

    monkeypatch.setattr(edgedistill.engine, "fit", killing_fit)

    code, out, err = cli(capsys, *args)  # a new folder, runs/run-2, killed in fine-tuning epoch 2
    assert code == 130
    run = tmp_path / "runs" / "run-2"
    assert (run / "2-finetune" / "last.pt").is_file() and not (run / "stages.json").exists()
    assert json.loads((run / "1-prune" / "entry.json").read_text())["entry"]["stage"] == "prune"
    prune_mtime = (run / "1-prune" / "model.safetensors").stat().st_mtime_ns

    code, out, err = cli(capsys, *args, "--resume")  # fine-tuning continues, then quantization is killed
    assert code == 130
    assert "resuming" in out and str(run) in out.replace("\n", "")
    assert "resuming from epoch 1/2" in out
    assert calls == {"prune": 1, "finetune": 2, "quantize": 1}
    assert (run / "2-finetune" / "entry.json").is_file() and not (run / "2-finetune" / "last.pt").exists()

    code, out, err = cli(capsys, *args, "--resume")
    assert code == 0, err
    assert calls == {"prune": 1, "finetune": 2, "quantize": 2}  # only the unfinished stage ran again
    assert (run / "1-prune" / "model.safetensors").stat().st_mtime_ns == prune_mtime
    assert not (tmp_path / "runs" / "run-3").exists()
    # the same numbers as the uninterrupted run, up to timings and the folder's name in file paths
    result = json.loads((run / "stages.json").read_text().replace(str(run), str(tmp_path / "runs" / "run")))
    assert [e["stage"] for e in result["stages"]] == ["input", "prune", "finetune", "quantize"]
    assert _comparable(result["stages"]) == _comparable(reference["stages"])
    assert {k: v for k, v in result.items() if k not in ("stages", "dir")} == \
        {k: v for k, v in reference.items() if k not in ("stages", "dir")}


def test_resume_with_other_stages_is_refused(tmp_path, capsys):
    model = _digits_model(tmp_path / "m.safetensors")
    common = [f"output.dir={tmp_path / 'runs'}", "compress.latency_runs=1", "compress.warmup_runs=0",
              "compress.parity_images=8"]
    code, out, err = cli(capsys, "compress", str(model), "compress.stages=[{name: export}]", *common)
    assert code == 0, err
    code, out, err = cli(capsys, "compress", str(model), "compress.stages=[{name: quantize, mode: dynamic}]",
                         *common, "--resume")
    assert code == 2 and "compress.stages" in err and "differ" in err and "export" in err
    assert not (tmp_path / "runs" / "run-2").exists()
    code, out, err = cli(capsys, "compress", str(model), "compress.stages=[{name: export}]", *common,
                         "--resume")
    assert code == 0 and "finished earlier" in out



@pytest.mark.slow
@pytest.mark.parametrize("spec", ["timm:mobilenetv3_small_050", "torchvision:resnet18"])
def test_timm_and_torchvision_models_prune_and_quantize_end_to_end(spec, tmp_path, capsys):
    """timm's MobileNetV3 (depthwise convs, squeeze-excitation gates, hard-swish) and torchvision's ResNet
    through prune → static int8 via the compress command: widths, reload, ONNX parity, the int8 stage.

    The nets are untrained (seconds, not minutes): their near-flat logits make int8-vs-fp32 top-1
    agreement a coin toss, so the gate is lowered to 30%; what is checked is that the int8 graph
    builds, runs and is reported, not its accuracy.
    """
    from edgedistill.compress.prune import load_pruned, prune_structured
    from edgedistill.models.heads import head_name

    model = _digits_model(tmp_path / "m.safetensors", spec, image_size=32)
    code, out, err = cli(capsys, "compress", str(model), "compress.stages=[{name: prune, ratio: 0.5}, "
                         "{name: quantize, calib_samples: 32}]", "compress.latency_runs=1",
                         "compress.warmup_runs=0", "compress.parity_images=16", "compress.min_int8_agreement=0.3",
                         f"output.dir={tmp_path / 'runs'}")
    assert code == 0, err
    run = tmp_path / "runs" / "run"
    by = {e["stage"]: e for e in json.loads((run / "stages.json").read_text())["stages"]}
    assert by["prune"]["params"] < 0.5 * by["input"]["params"]
    assert all(by[s]["reported"] and by[s]["info"]["parity"]["passed"] for s in ("input", "prune"))
    q = by["quantize"]
    assert q["precision"] == "int8" and q["reported"] and q["artifact"] == "2-quantize/model.int8.onnx"
    assert q["size_mb"] < 0.75 * by["prune"]["size_mb"] and q["params"] == by["prune"]["params"]

    pruned, meta = load_pruned(run / "1-prune" / "model.safetensors")
    head = pruned.get_submodule(head_name(pruned))
    assert head.out_features == 10 and meta["model"] == spec
    round_to = by["prune"]["info"]["round_to"]["value"]  # what round_to: auto took on this CPU
    again = prune_structured(load_pruned(model)[0].eval(), torch.zeros(2, 3, 32, 32), ratio=0.5,
                             round_to=round_to).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(pruned.eval()(x), again(x))  # the saved file is the network pruning made


def test_run_resume_with_other_compress_stages_fails_before_training(tiny_overrides, tmp_path, capsys):
    run = tmp_path / "runs" / "demo" / "compress"
    run.mkdir(parents=True)
    (run / "plan.json").write_text(json.dumps({"stages": [{"name": "export", "torchscript": False}]}))
    code, out, err = cli(capsys, "demo", *tiny_overrides, "output.name=demo",
                         "compress.stages=[{name: quantize, mode: dynamic}]", "train.resume=true")
    assert code == 2 and "compress.stages" in err and "export" in err
    assert not (tmp_path / "runs" / "demo" / "teacher").exists()  # refused before any training
