"""Pruning that buys latency: round_to keeps pruned widths in multiples of the CPU's vector block in every
pruning path, targets are still met, `auto` resolves per CPU, bad values name round_to, and a prune step's
interleaved A/B record has its keys. Real Torch-Pruning on tiny nets; no timing thresholds."""

from types import SimpleNamespace

import pytest
import torch

from edgedistill.compress.chain import check_stages
from edgedistill.compress.iterative import step_kwargs
from edgedistill.compress.prune import prunable_layers, layer_width, prune_structured, rounded_keep
from edgedistill.compress.prune_ab import ab_latency, auto_round_to, pick_round_to
from edgedistill.deploy.ab_latency import ab_text
from edgedistill.deploy.profile import count_flops
from edgedistill.errors import UserError
from edgedistill.models import create_model
from edgedistill.recipe import build_recipe

X = torch.zeros(2, 3, 16, 16)
AB_KEYS = {"runtime", "batch", "threads", "rounds", "runs", "before_ms", "before_min_ms", "before_max_ms", "after_ms",
           "after_min_ms", "after_max_ms", "speedup", "speedup_min", "speedup_max", "faster_in_rounds"}


def _widths(model):
    return {n: layer_width(m) for n, m in prunable_layers(model) if n != "fc" and n != "classifier.3"}


def _assert_multiples(before, after, r):
    changed = {n: w for n, w in after.items() if w != before[n]}
    assert changed, "nothing was pruned"
    assert all(w % r == 0 for w in changed.values()), changed


def test_rounded_keep_takes_the_nearest_multiple_or_leaves_the_layer():
    assert rounded_keep(31, 64, 8) == 32 and rounded_keep(29, 64, 8) == 32 and rounded_keep(27, 64, 8) == 24
    assert rounded_keep(12, 16, 8) == 16 and rounded_keep(11, 16, 8) == 8  # a tie keeps more
    assert rounded_keep(5, 16, 16) == 16 and rounded_keep(3, 8, 16) == 8  # never empties, never grows a layer
    assert rounded_keep(22, 24, 16) == 24 and rounded_keep(19, 24, 16) == 16  # an unaligned width may stay
    assert rounded_keep(7, 16, None) == 7


@pytest.mark.parametrize("scope", ["uniform", "global"])
@pytest.mark.parametrize("target", ["ratio", "flops", "params"])
def test_round_to_keeps_pruned_widths_multiples_and_meets_the_target(scope, target):
    torch.manual_seed(0)
    model = create_model("cifar:resnet20", 10).eval()
    before, flops0 = _widths(model), count_flops(model, (1, 3, 16, 16))
    kw = {"ratio": {"ratio": 0.5}, "flops": {"target_flops": flops0 // 2},
          "params": {"target_params": sum(p.numel() for p in model.parameters()) // 2}}[target]
    prune_structured(model, X, round_to=8, global_pruning=scope == "global", **kw)
    _assert_multiples(before, _widths(model), 8)
    if target == "flops":
        assert count_flops(model, (1, 3, 16, 16)) <= flops0 // 2
    if target == "params":
        assert sum(p.numel() for p in model.parameters()) <= kw["target_params"]


def test_round_to_holds_across_iterative_steps_with_a_layer_cap():
    """Steps re-rank an already rounded network; global ranking's per-layer floor is trimmed to a multiple too."""
    torch.manual_seed(0)
    model = create_model("cifar:resnet8", 10).eval()
    before, flops0 = _widths(model), count_flops(model, (1, 3, 16, 16))
    goal = int(0.5 * flops0)
    floors = {n: max(1, int(w * 0.25)) for n, w in before.items()}
    for i in (1, 2):
        prune_structured(model, X, round_to=8, global_pruning=True, max_layer_ratio=0.75, min_channels=floors,
                         **step_kwargs("flops", goal, flops0, i, 2))
        _assert_multiples(before, _widths(model), 8)
    assert count_flops(model, (1, 3, 16, 16)) <= goal


def test_round_to_on_depthwise_and_squeeze_excitation_blocks():
    torch.manual_seed(0)
    model = create_model("torchvision:mobilenet_v3_small", 10).eval()
    before = _widths(model)
    prune_structured(model, X, ratio=0.5, round_to=16)
    _assert_multiples(before, _widths(model), 16)
    assert model(X).shape == (2, 10)


@pytest.mark.parametrize("bad", [0, -8, 1000])
def test_bad_round_to_names_round_to_not_the_ratio(bad):
    model = create_model("cifar:resnet8", 10)
    with pytest.raises(UserError) as e:
        prune_structured(model, X, ratio=0.5, round_to=bad)
    assert f"round_to {bad}" in str(e.value) and "ratio" not in str(e.value), str(e.value)


def test_bad_round_to_in_a_recipe_names_its_key():
    with pytest.raises(UserError, match=r"compress.stages.0.prune.round_to: round_to 0 .*allowed"):
        build_recipe({}, ["compress.stages=[{name: prune, ratio: 0.5, round_to: 0}]"])
    recipe = build_recipe({}, ["data.image_size=16", "compress.stages=[{name: prune, flops_ratio: 0.5, round_to: 1000}]"])
    with pytest.raises(UserError, match=r"compress.stages.0.round_to: round_to 1000 leaves no layer prunable"):
        check_stages(recipe, create_model("cifar:resnet8", 10))


def test_auto_is_the_nchwc_block_of_the_target_and_steps_down_when_a_target_is_missed():
    assert auto_round_to("x86-avx2")[0] == 8 and auto_round_to("x86-vnni")[0] == 16 and auto_round_to("arm64")[0] == 8
    assert auto_round_to("auto")[0] in (8, 16)
    assert pick_round_to("off", "x86-avx2", lambda r: True) == (None, "off") and pick_round_to(None, "x", None)[0] is None
    assert pick_round_to(16, "x86-avx2", lambda r: False)[0] == 16  # an explicit value is the user's choice
    tried = []
    got, why = pick_round_to("auto", "x86-vnni", lambda r: tried.append(r) or r == 8)
    assert (got, tried) == (8, [16, 8]) and "so 8" in why

    def refuse(r):
        raise UserError("cannot reach")
    assert pick_round_to("auto", "x86-avx2", refuse)[0] is None


def test_auto_falls_back_on_a_narrow_resnet_the_dry_run_check():
    """ResNet-8's 16-channel layers cannot shrink in multiples of 16, so half its FLOPs needs 8 or none;
    the dry-run check picks that instead of refusing a target the user never tied to round_to."""
    recipe = build_recipe({}, ["data.image_size=16", "deploy.target=x86-vnni",
                               "compress.stages=[{name: prune, flops_ratio: 0.5, round_to: auto}]"])
    assert build_recipe({}, ["compress.stages=[{name: prune, ratio: 0.5}]"]).compress.stages[0].round_to == "off"
    check_stages(recipe, create_model("cifar:resnet8", 10))  # does not raise


def test_prune_step_ab_record_has_its_keys():
    recipe = build_recipe({}, ["data.image_size=16", "compress.latency_runs=2", "compress.warmup_runs=0"])
    job = SimpleNamespace(ctx=SimpleNamespace(recipe=recipe), meta={"class_names": [str(i) for i in range(10)]})
    torch.manual_seed(0)
    before = create_model("cifar:resnet8", 10).eval()
    after = prune_structured(create_model("cifar:resnet8", 10).eval(), X, ratio=0.5, round_to=8)
    ab = ab_latency(job, before, after)
    assert set(ab) == AB_KEYS
    assert (ab["runtime"], ab["batch"], ab["threads"], ab["runs"]) == ("onnxruntime", 1, 1, 20)  # at least 20
    assert ab["before_ms"] > 0 and ab["after_ms"] > 0 and ab["speedup_min"] <= ab["speedup"] <= ab["speedup_max"]
    assert 0 <= ab["faster_in_rounds"] <= ab["rounds"] and "→" in ab_text(ab)
    # the report says what the step did to latency, and says "slower" only when the pruned file is slower
    from edgedistill.report.stages import prune_notes

    entry = {"index": 1, "stage": "prune", "info": {"round_to": {"value": 8, "asked": 8, "why": "recipe"},
                                                     "latency_ab": {"steps": [], "overall": ab}}}
    notes = "\n".join(prune_notes(entry))
    assert "multiples of 8" in notes and ab_text(ab) in notes
    assert ("slower than its input" in notes) == (ab["speedup"] < 1)
    slow = {**ab, "speedup": 0.8, "speedup_min": 0.7, "speedup_max": 0.9}
    assert "slower than its input" in "\n".join(prune_notes({**entry, "info": {**entry["info"], "latency_ab": {
        "steps": [], "overall": slow}}}))
