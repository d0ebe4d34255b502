import copy

import torch
from torch import nn

from edgedistill.deploy import (count_flops, count_params, measure_latency, peak_memory_mb, profile_model,
                                weights_size_bytes)


def conv_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def test_params_and_flops_of_linear():
    lin = nn.Linear(10, 5)
    assert count_params(lin) == 55
    assert count_flops(lin, (1, 10)) == 100  # 2 · 10 · 5: a multiply-add is 2 FLOPs, bias not counted
    assert count_flops(lin, (4, 10)) == 400


def test_conv_flops_by_formula():
    # conv: 2 · Cout · Hout · Wout · Cin · k²; BN, ReLU and pooling are not counted.
    expected = 2 * 8 * 32 * 32 * 3 * 9 + 2 * 16 * 16 * 16 * 8 * 9 + 2 * 16 * 10
    assert count_flops(conv_net(), (1, 3, 32, 32)) == expected


def test_tied_params_count_once():
    emb = nn.Embedding(7, 4)
    head = nn.Linear(4, 7, bias=False)
    head.weight = emb.weight
    assert count_params(nn.ModuleList([emb, head])) == 28


def test_size_is_float32_weights_plus_header():
    lin = nn.Linear(100, 50)
    size = weights_size_bytes(lin)
    assert 4 * count_params(lin) < size < 4 * count_params(lin) + 512
    tied = nn.Linear(8, 8)
    model = nn.ModuleDict({"a": tied, "b": tied})  # shared storage: safetensors needs the clones
    assert weights_size_bytes(model) > 2 * 4 * 72


def test_latency_and_thread_restore():
    before = torch.get_num_threads()
    out = measure_latency(nn.Linear(64, 64), (8, 64), runs=7, warmup=2, threads=1)
    assert torch.get_num_threads() == before
    assert out["threads"] == 1 and out["runs"] == 7
    assert 0 < out["latency_ms_min"] <= out["latency_ms_median"] <= out["latency_ms_p90"]


def test_peak_memory_grows_with_batch():
    model = conv_net().eval()
    one, four, sixteen = (peak_memory_mb(model, (b, 3, 64, 64)) for b in (1, 4, 16))
    assert None not in (one, four, sixteen)
    assert one >= 1 * 8 * 64 * 64 * 4 / 1e6  # at least the largest activation (first conv's output)
    # Batch 1 may take a batch-independent path (im2col workspace), so check linearity from 4 to 16.
    assert one < four and 3.0 * four < sixteen < 5.0 * four


def test_profile_model_leaves_model_untouched():
    model = conv_net().double().train()
    state = copy.deepcopy(model.state_dict())
    out = profile_model(model, (1, 3, 32, 32), runs=3, warmup=1)
    assert model.training and next(model.parameters()).dtype == torch.float64
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
    assert set(out) == {"params", "flops", "size_mb", "latency_ms_median", "latency_ms_p90", "latency_ms_min",
                        "runs", "threads", "peak_mem_mb"}
    assert out["params"] == count_params(model)
    # measured on a float32 copy: 4 bytes a parameter, plus BN buffers (2·8 floats + an int64) and the header
    assert 4 * out["params"] + 72 < out["size_mb"] * 1e6 < 4 * out["params"] + 72 + 2048
