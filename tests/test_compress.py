import pytest
import torch

from edgedistill.compress.prune import load_pruned, prune_structured, save_pruned
from edgedistill.compress.unstructured import make_permanent, overall_sparsity, prune_unstructured, sparsity_report
from edgedistill.deploy.profile import count_flops, count_params
from edgedistill.errors import UserError
from edgedistill.models import create_model

X = torch.randn(2, 3, 16, 16)


@pytest.mark.parametrize("spec", ["cifar:resnet20", "torchvision:mobilenet_v2",
                                  "torchvision:mobilenet_v3_small", "timm:mobilenetv3_small_050"])
def test_structured_ratio_shrinks_and_keeps_classes(spec, tmp_path):
    torch.manual_seed(0)
    model = create_model(spec, 10).eval()
    before = count_params(model)
    prune_structured(model, X, ratio=0.5)
    model.eval()
    after = count_params(model)
    assert 0.1 * before < after < 0.6 * before  # half the channels: roughly a quarter of the weights
    with torch.no_grad():
        logits = model(X)
    assert logits.shape == (2, 10)
    path = save_pruned(tmp_path / "p.safetensors", model, {"model": spec, "num_classes": 10})
    again, meta = load_pruned(path)
    again.eval()
    assert meta["model"] == spec and count_params(again) == after
    with torch.no_grad():
        assert torch.equal(again(X), logits)


def test_structured_targets_and_taylor():
    model = create_model("cifar:resnet8", 10)
    target = count_params(model) // 2
    prune_structured(model, X, target_params=target)
    assert count_params(model) <= target
    model = create_model("cifar:resnet8", 10)
    flops = count_flops(model, (1, 3, 16, 16)) // 2
    prune_structured(model, X, target_flops=flops)
    assert count_flops(model, (1, 3, 16, 16)) <= flops
    model = create_model("cifar:resnet8", 10)
    batches = [(torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,)))]
    before = count_params(model)
    prune_structured(model, X, ratio=0.3, importance="taylor", calib_batches=batches, round_to=4)
    assert count_params(model) < before
    assert all(p.grad is None for p in model.parameters())


def test_structured_refusals_name_the_layer():
    model = create_model("cifar:resnet8", 10)
    with pytest.raises(UserError, match="conv1"):
        prune_structured(model, X, ratio=1.0)
    with pytest.raises(UserError, match="every channel of layer '"):
        prune_structured(model, X, ratio=0.97)  # 16-channel layers would keep int(0.48) = 0
    with pytest.raises(UserError, match="taylor"):
        prune_structured(model, X, ratio=0.3, importance="taylor")
    with pytest.raises(UserError, match="cannot reach"):
        prune_structured(model, X, target_params=10)
    assert count_params(model) > 0


def test_unstructured_layerwise_and_global():
    model = create_model("cifar:resnet8", 10)
    prune_unstructured(model, 0.6, "layerwise")
    rows = sparsity_report(model)
    assert {r["layer"] for r in rows} >= {"conv1", "fc"}
    assert all(abs(r["sparsity"] - 0.6) < 0.02 for r in rows)
    make_permanent(model)
    assert not any(n.endswith("_orig") or n.endswith("_mask") for n in model.state_dict())
    assert abs(overall_sparsity(model) - 0.6) < 0.02  # zeros survive removing the masks

    model = create_model("cifar:resnet8", 10)
    prune_unstructured(model, 0.7, "global")
    assert abs(overall_sparsity(model) - 0.7) < 0.01
    spread = {round(r["sparsity"], 2) for r in sparsity_report(model)}
    assert len(spread) > 1  # global ranking prunes layers unevenly
    with pytest.raises(UserError):
        prune_unstructured(model, 1.0)


def test_a_stage_whose_file_failed_its_check_is_measured_as_nothing():
    """QAT or PTQ output that failed parity leaves no model and no file: a row of Nones, not a crash."""
    from edgedistill.compress.measure import measure

    m = measure(images=torch.zeros(4, 3, 8, 8), labels=torch.zeros(4, dtype=torch.long), num_classes=2,
                onnx_path=None, model=None, runs=1, warmup=0, deploy_batch=1, deploy_threads=1,
                inherited={"params": 10, "flops": 20})
    assert m["top1"] is None and m["logits_argmax"] is None and m["latency"] == {}
    assert m["params"] == 10 and "not measurable here" in m["energy"]["reason"]
