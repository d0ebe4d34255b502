"""Give each use of a shared weight its own graph node before PT2E int8 quantization.

A module called more than once in one forward (a detection head applied to every FPN level) leaves one
`get_attr` weight node feeding several convolutions. The XNNPACK quantizer (and litert-torch's copy of it)
annotates a conv together with its weight node and skips a conv whose weight is already annotated, so only the
first level's convs were quantized: the others kept float weights on an int8 input, which ExecuTorch's XNNPACK
delegate refuses at load ("Failed to create convolution node … xnn_status_invalid_parameter"). One node per use
lets every level be annotated; the quantized weights are the same values (per-channel scales come from the
weights alone).

keep_float: litert-torch's converter gives every int8 concatenation the scale of its last input, so a detection
head's outputs (class logits, box values, centerness; five levels concatenated) all got P7 centerness's ±0.14
range and saturated (0% box agreement). Leaving the head's output convs and the concatenations unannotated keeps
them float; the PT2E graph itself was accurate.
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


def keep_float(gm: torch.fx.GraphModule, modules: tuple[str, ...]) -> int:
    """Mark the convs of modules whose path ends in one of `modules`, and every concatenation, as annotated with
    nothing, so PT2E quantizers leave them float; returns how many nodes were marked."""
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    marked = 0
    for n in gm.graph.nodes:
        if n.op != "call_function":
            continue
        paths = [str(v[0]) for v in n.meta.get("nn_module_stack", {}).values()]
        tail = "conv" in str(n.target) and any(p.endswith(m) for p in paths[-1:] for m in modules)
        if tail or n.target == torch.ops.aten.cat.default:
            n.meta["quantization_annotation"] = QuantizationAnnotation(_annotated=True)
            marked += 1
    return marked


__all__ = ["keep_float", "unshare_weights"]
