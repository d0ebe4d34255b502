"""Give each use of a shared weight its own graph node before PT2E int8 quantization.

A module called more than once in one forward (a detection head applied to every FPN level) leaves one
`get_attr` weight node feeding several convolutions. The XNNPACK quantizer (and litert-torch's copy of it)
annotates a conv together with its weight node and skips a conv whose weight is already annotated, so only the
first level's convs were quantized: the others kept float weights on an int8 input, which ExecuTorch's XNNPACK
delegate refuses at load ("Failed to create convolution node … xnn_status_invalid_parameter"). One node per use
lets every level be annotated; the quantized weights are the same values (per-channel scales come from the
weights alone).
"""

from __future__ import annotations

import torch


def unshare_weights(gm: torch.fx.GraphModule) -> int:
    """Split every `get_attr` node used by more than one op into one node per use; returns how many were added."""
    added = 0
    for node in list(gm.graph.nodes):
        if node.op != "get_attr" or len(node.users) < 2:
            continue
        for user in list(node.users)[1:]:
            with gm.graph.inserting_before(user):
                twin = gm.graph.get_attr(node.target)
            twin.meta.update(node.meta)
            user.replace_input_with(node, twin)
            added += 1
    if added:
        gm.graph.lint()
        gm.recompile()
    return added


__all__ = ["unshare_weights"]
