"""A conv module applied twice in one forward (a detection head on every FPN level): after unshare_weights every
application gets its weight quantized by the XNNPACK quantizer; without it the second stays float on an int8 input
(what ExecuTorch's XNNPACK delegate refused to load)."""

import pytest
import torch
from torch import nn

from edgedistill.deploy.shared_weights import unshare_weights


class TwoLevels(nn.Module):
    """One head conv on two maps, as torchvision's FCOS/RetinaNet head runs on each FPN level."""

    def __init__(self):
        super().__init__()
        self.stem, self.head = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        f = torch.relu(self.stem(x))
        return torch.cat([self.head(f).flatten(1), self.head(f[:, :, ::2, ::2]).flatten(1)], 1)


def _quantized_weights(unshare: bool) -> list[bool]:
    pytest.importorskip("executorch")
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    x = torch.rand(2, 3, 16, 16)
    graph = torch.export.export(TwoLevels().eval(), (x,)).module()
    if unshare:
        assert unshare_weights(graph) == 2  # the head's weight and bias each get a second node
        assert unshare_weights(graph) == 0  # nothing shared is left
    graph = prepare_pt2e(graph, XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True)))
    graph(x)
    graph = convert_pt2e(graph)
    convs = [n for n in graph.graph.nodes if n.op == "call_function" and "conv" in str(n.target)]
    return [w.op == "call_function" and "dequantize" in str(w.target) for w in (c.args[1] for c in convs)]


def test_every_application_of_a_shared_conv_is_quantized():
    assert _quantized_weights(unshare=False) == [True, True, False]  # the quantizer's skip this fixes
    assert _quantized_weights(unshare=True) == [True, True, True]
