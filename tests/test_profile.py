import copy

import pytest
import torch
from torch import nn

from edgedistill.deploy import (
    count_flops,
    count_macs,
    count_params,
    measure_latency,
    peak_memory_mb,
    profile_model,
    weights_size_bytes,
)


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
    assert out["macs"] == out["flops"] // 2 == count_macs(conv_net(), (1, 3, 32, 32))
    assert set(out) == {"params", "flops", "macs", "size_mb", "latency_ms_median", "latency_ms_p90", "latency_ms_min",
                        "runs", "threads", "peak_mem_mb"}
    assert out["params"] == count_params(model)
    # measured on a float32 copy: 4 bytes a parameter, plus BN buffers (2·8 floats + an int64) and the header
    assert 4 * out["params"] + 72 < out["size_mb"] * 1e6 < 4 * out["params"] + 72 + 2048


class _SdpaAttention(nn.Module):
    """Multi-head self-attention through F.scaled_dot_product_attention, or eager matmuls when eager=True."""

    def __init__(self, dim: int, heads: int, eager: bool = False):
        super().__init__()
        self.qkv, self.proj, self.heads, self.eager = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), heads, eager

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if self.eager:
            o = ((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(-1) @ v
        else:
            o = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(o.transpose(1, 2).reshape(b, n, c))


def test_sdpa_flops_counted_by_hand():
    # FlopCounterMode alone counts 0 FLOPs for CPU SDPA; the hand count is QKᵀ and attn·V: 2·B·H·N²·d each.
    b, n, dim, heads = 2, 17, 24, 3
    d = dim // heads
    linear = 2 * b * n * dim * 3 * dim + 2 * b * n * dim * dim
    attention = 2 * (2 * b * heads * n * n * d)
    fused, eager = _SdpaAttention(dim, heads), _SdpaAttention(dim, heads, eager=True)
    assert count_flops(fused, (b, n, dim)) == linear + attention
    assert count_flops(eager, (b, n, dim)) == linear + attention


def test_timm_vit_flops_match_hand_count_and_eager_attention():
    import timm

    n, dim, depth, classes = (32 // 8) ** 2 + 1, 192, 2, 10  # 16 patches + the class token
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=depth,
                              num_classes=classes)
    patch = 2 * (n - 1) * dim * 3 * 8 * 8
    block = 2 * n * dim * dim * (3 + 1 + 4 + 4) + 2 * (2 * n * n * dim)  # qkv, proj, fc1, fc2; QKᵀ, attn·V
    head = 2 * dim * classes
    fused = count_flops(model, (1, 3, 32, 32))
    assert fused == patch + depth * block + head
    for blk in model.blocks:
        blk.attn.fused_attn = False  # timm's own eager path: explicit matmuls FlopCounterMode always counted
    assert count_flops(model, (1, 3, 32, 32)) == fused


def test_macs_match_torch_pruning():
    """count_macs against Torch-Pruning's MAC counter: equal on convs and linears (grouped and strided too);
    with biases, BatchNorm, ReLU and pooling, tp adds one MAC per element of those, which FLOPs/2 leaves out."""
    import torch_pruning as tp

    x = torch.zeros(1, 3, 12, 12)
    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Conv2d(8, 16, 3, stride=2, bias=False),
                          nn.Conv2d(16, 16, 3, groups=4, bias=False), nn.Flatten(), nn.Linear(16 * 3 * 3, 10, bias=False))
    tp_macs, _ = tp.utils.count_ops_and_params(plain.eval(), x)
    assert count_macs(plain, tuple(x.shape)) == tp_macs == (8 * 12 * 12 * 27 + 16 * 5 * 5 * 72 + 16 * 3 * 3 * 36
                                                            + 144 * 10)
    full = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    tp_macs, _ = tp.utils.count_ops_and_params(full, x)
    a1, a2 = 8 * 12 * 12, 16 * 5 * 5  # output elements of the two convs
    elementwise = a1 + 2 * a1 + a1 + a2 + a2 + 10  # conv1 bias, BN (scale+shift), ReLU, conv2 bias, pool, fc bias
    assert count_macs(full, tuple(x.shape)) + elementwise == tp_macs


def test_hf_vit_flops_include_attention():
    transformers = pytest.importorskip("transformers")
    cfg = {"image_size": 32, "patch_size": 8, "hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 3,
           "intermediate_size": 96, "num_labels": 10}
    n, dim, inter = (32 // 8) ** 2 + 1, 48, 96
    hand = (2 * (n - 1) * dim * 3 * 8 * 8 + 2 * (2 * n * dim * dim * 4 + 2 * n * dim * inter * 2 + 2 * 2 * n * n * dim)
            + 2 * dim * 10)
    counts = {}
    for impl in ("sdpa", "eager"):
        model = transformers.ViTForImageClassification(transformers.ViTConfig(**cfg, attn_implementation=impl))
        counts[impl] = count_flops(_Logits(model), (1, 3, 32, 32))
    assert counts["sdpa"] == counts["eager"] == hand


class _Logits(nn.Module):
    """HF models return an output object; FLOPs only need the forward to run."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(pixel_values=x).logits
