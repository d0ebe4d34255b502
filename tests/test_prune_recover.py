"""Pruning that recovers: k steps of prune → distill to a FLOPs share, global ranking with a per-layer cap,
fine-tuning sized to the student's training, dry-run checks, and resume of a killed iterative stage."""

import json

import pytest
import torch
from test_compress_pipeline import _comparable, _digits_model, cli

from edgedistill.compress.chain import check_stages
from edgedistill.compress.iterative import step_kwargs
from edgedistill.compress.prune import prunable_layers, layer_width, prune_structured
from edgedistill.compress.recover import resolve_epochs, resolve_lr
from edgedistill.deploy.profile import count_flops
from edgedistill.errors import UserError
from edgedistill.models import create_model
from edgedistill.recipe import build_recipe

X = torch.zeros(2, 3, 16, 16)
# Pruning stops at the first tick of Torch-Pruning's schedule (TARGET_TICKS = 50 up to 95% of channels) at or
# under the target: on these nets one tick removes at most ~5% of the input's FLOPs, hence the tolerance.
FLOPS_TOL = 0.05
COMMON = ["compress.latency_runs=1", "compress.warmup_runs=0", "compress.parity_images=8", "train.batch_size=32"]


def test_epochs_and_lr_auto_resolve_from_the_students_training():
    assert resolve_epochs("auto", 0.5, 40) == 20 and resolve_epochs("auto", 0.25, 40) == 10
    assert resolve_epochs("auto", 0.1, 3) == 1 and resolve_epochs(7, 0.5, 40) == 7  # at least one; int kept
    assert resolve_lr("auto", 0.1) == pytest.approx(0.01) and resolve_lr(0.03, 0.1) == 0.03
    r = build_recipe({}, ["compress.stages=[{name: prune, flops_ratio: 0.5, steps: 3}, {name: finetune}]"])
    prune, ft = r.compress.stages
    assert (prune.step_epochs, prune.lr, prune.teacher, prune.scope) == ("auto", "auto", "unpruned", "uniform")
    assert (ft.epochs, ft.fraction, ft.lr, ft.schedule) == ("auto", 0.5, "auto", "cosine")


def test_step_targets_are_shares_of_the_way_and_end_on_the_target():
    flops = [step_kwargs("flops", 500, 1000, i, 4)["target_flops"] for i in range(1, 5)]
    assert flops == [875, 750, 625, 500]
    left = 1.0
    for i in range(1, 4):  # channel ratios compound to the stage's ratio
        left *= 1 - step_kwargs("ratio", 0.6, 0, i, 3)["ratio"]
    assert left == pytest.approx(0.4)


@pytest.mark.parametrize("override, fragments", [
    ("compress.stages=[{name: prune, flops_ratio: 0.5, ratio: 0.3}]",
     ["exactly one of ratio, flops_ratio, target_params, target_flops", "got ratio, flops_ratio"]),
    ("compress.stages=[{name: prune, flops_ratio: 1.0}]", ["compress.stages.0.prune.flops_ratio", "less than 1"]),
    ("compress.stages=[{name: prune, flops_ratio: 0}]", ["compress.stages.0.prune.flops_ratio", "greater than 0"]),
    ("compress.stages=[{name: finetune, epochs: often}]", ["compress.stages.0.finetune.epochs", "'auto'"]),
    ("compress.stages=[{name: prune, ratio: 0.5, steps: 0}]", ["compress.stages.0.prune.steps"]),
])
def test_bad_prune_and_finetune_keys_name_the_key(override, fragments):
    with pytest.raises(UserError) as e:
        build_recipe({}, [override])
    for f in fragments:
        assert f in str(e.value), str(e.value)


@pytest.mark.slow  # ~18 s on 2 idle cores: two Torch-Pruning dry runs to an unreachable target
def test_flops_share_out_of_reach_fails_the_dry_run_naming_the_key(tmp_path, capsys):
    stages = "compress.stages=[{name: prune, flops_ratio: 0.999, scope: global}]"
    recipe = build_recipe({}, ["data.image_size=16", stages])
    with pytest.raises(UserError, match=r"compress.stages.0.flops_ratio: .*cannot reach"):
        check_stages(recipe, create_model("cifar:resnet8", 10))
    model = _digits_model(tmp_path / "m.safetensors")  # the command exits 2 before any stage runs
    code, _, err = cli(capsys, "compress", str(model), "compress.stages=[{name: prune, flops_ratio: 0.999}, "
                         "{name: finetune}]", f"output.dir={tmp_path / 'runs'}", *COMMON)
    assert code == 2 and "compress.stages.0.flops_ratio" in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "run" / "1-prune").exists()


def test_global_flops_target_caps_every_layer_and_keeps_it_non_empty():
    """Global ranking prunes layers unevenly; max_layer_ratio is what stops it at a layer's floor."""
    widths = {}
    for cap in (0.75, 0.95):
        torch.manual_seed(0)
        model = create_model("cifar:resnet8", 10).eval()
        before = {n: layer_width(m) for n, m in prunable_layers(model)}
        target = int(0.2 * count_flops(model, (1, 3, 16, 16)))
        prune_structured(model, X, target_flops=target, global_pruning=True, max_layer_ratio=cap)
        after = widths[cap] = {n: layer_width(m) for n, m in prunable_layers(model)}
        assert count_flops(model, (1, 3, 16, 16)) <= target
        assert all(after[n] >= max(1, int(before[n] * (1 - cap))) for n in before), after
        assert after["fc"] == 10 and len({after[n] / before[n] for n in before if n != "fc"}) > 2  # uneven
    assert widths[0.75]["layer1.0.conv1"] == 4  # held at its floor, a quarter of 16 channels: the cap binds
    assert 1 <= widths[0.95]["layer1.0.conv1"] < 4  # a looser cap lets ranking take more, never all


@pytest.mark.slow  # ~40 s on 2 idle cores: 3 prune steps with recovery, then fine-tuning
def test_iterative_prune_reaches_the_flops_share_then_finetune_auto(tmp_path, capsys):
    """prune (half the FLOPs, 3 steps, 1 epoch of distillation between steps) → finetune epochs: auto."""
    model = _digits_model(tmp_path / "m.safetensors")
    code, _, err = cli(capsys, "compress", str(model), "compress.stages=[{name: prune, flops_ratio: 0.5, "
                         "steps: 3, step_epochs: 1}, {name: finetune, teacher: none}]", "train.epochs=4",
                         "train.lr=0.05", f"output.dir={tmp_path / 'runs'}", *COMMON)
    assert code == 0, err
    run = tmp_path / "runs" / "run"
    by = {e["stage"]: e for e in json.loads((run / "stages.json").read_text())["stages"]}
    flops0, prune, ft = by["input"]["flops"], by["prune"], by["finetune"]
    assert (1 - 0.5 - FLOPS_TOL) * flops0 <= prune["flops"] <= 0.5 * flops0
    steps = prune["info"]["steps"]
    assert [s["step"] for s in steps] == [1, 2, 3] and steps[-1]["flops"] == prune["flops"]
    assert all(s["flops"] <= s["target_flops"] for s in steps)
    assert steps[0]["flops"] > steps[1]["flops"] > steps[2]["flops"]
    assert [("top1_recovered" in s, s.get("epochs")) for s in steps] == [(True, 1), (True, 1), (False, None)]
    assert prune["info"]["flops_removed"] >= 0.5 and prune["info"]["teacher"] == "unpruned"
    ab = prune["info"]["latency_ab"]  # every step timed against the network it was cut from, and the stage overall
    assert [a["step"] for a in ab["steps"]] == [1, 2, 3] and all(a["runtime"] == "onnxruntime" for a in ab["steps"])
    assert {"before_ms", "after_ms", "speedup", "speedup_min", "speedup_max"} <= set(ab["overall"])
    assert ab["steps"][0]["after_ms"] == steps[0]["latency_ab"]["after_ms"] and prune["info"]["round_to"]["value"] is None
    for i in (1, 2):  # each finished step keeps its network, not its optimizer state
        d = run / "1-prune" / f"step-{i}"
        assert (d / "model.safetensors").is_file() and (d / "step.json").is_file() and not (d / "last.pt").exists()
    assert (ft["info"]["epochs"], ft["info"]["lr"], ft["info"]["schedule"]) == (2, pytest.approx(0.005), "cosine")
    assert len((run / "2-finetune" / "metrics.jsonl").read_text().splitlines()) == 2
    assert ft["flops"] == prune["flops"]


@pytest.mark.slow
def test_killed_iterative_prune_resumes_inside_its_steps(tmp_path, capsys, monkeypatch):
    """Kill the second step's recovery after its first epoch; --resume reloads step 1, reloads step 2's pruned
    network (no re-pruning), continues its last.pt, and ends where an uninterrupted run ends."""
    import edgedistill.engine
    from edgedistill.compress import iterative

    model = _digits_model(tmp_path / "m.safetensors")
    args = ["compress", str(model), "compress.stages=[{name: prune, flops_ratio: 0.4, steps: 3, step_epochs: 2}]",
            f"output.dir={tmp_path / 'runs'}", *COMMON]
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    reference = json.loads((tmp_path / "runs" / "run" / "stages.json").read_text())

    real_fit, real_prune = edgedistill.engine.fit, iterative.prune_structured
    fits, prunes = [], []

    def killing_fit(*a, on_epoch_end=None, **kw):  # the pipeline's hook (trackers) still runs
        fits.append(a[3].name)

        def stop(epoch, record):
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
            if len(fits) == 2 and epoch == 1:
                raise KeyboardInterrupt  # step 2's recovery, after its epoch-1 last.pt is written
        return real_fit(*a, **kw, on_epoch_end=stop)

    def counted_prune(*a, **kw):
        if "calib_batches" in kw:  # a stage's step (dry runs of the check and of round_to: auto pass none)
            prunes.append(kw)
        return real_prune(*a, **kw)

    monkeypatch.setattr(edgedistill.engine, "fit", killing_fit)
    monkeypatch.setattr(iterative, "prune_structured", counted_prune)
    code, out, err = cli(capsys, *args)
    assert code == 130 and fits == ["step-1", "step-2"] and len(prunes) == 2
    run = tmp_path / "runs" / "run-2"
    assert (run / "1-prune" / "step-1" / "step.json").is_file() and (run / "1-prune" / "step-2" / "last.pt").is_file()

    code, out, err = cli(capsys, *args, "--resume")
    assert code == 0, err
    assert "resuming from epoch 1/2" in out
    assert fits == ["step-1", "step-2", "step-2"] and len(prunes) == 3  # only step 3 pruned anew
    result = json.loads((run / "stages.json").read_text().replace(str(run), str(tmp_path / "runs" / "run")))
    assert _comparable(result["stages"]) == _comparable(reference["stages"])
