"""ExecuTorch rows: a `.pte` program with the XNNPACK delegate, fp32 and int8 (PT2E, XNNPACKQuantizer).

The program is exported with a dynamic batch dimension (1 … MAX_BATCH), so one file serves batch 1 and
batch 32; it runs in ExecuTorch's own Python runtime (`executorch.runtime`), not in PyTorch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .backend import Backend, Runner, Source, quiet
from .shared_weights import unshare_weights

MAX_BATCH = 64
EXAMPLE_BATCH = 32


class ExecuTorch(Backend):
    """XNNPACK-delegated program; its thread pool is process-wide, so a runner sets it when made."""

    name, label, extra, package = "executorch", "ExecuTorch", "executorch", "executorch"
    modules = ("executorch.runtime", "executorch.backends.xnnpack")
    run_modules = ("torch", "executorch.runtime", "executorch.extension.pybindings.portable_lib")

    def build(self, source: Source, precision: str, folder: Path) -> tuple[Path, dict[str, Any]]:
        """torch.export → (PT2E int8) → to_edge_transform_and_lower(XnnpackPartitioner) → .pte."""
        import copy

        import torch
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        model = copy.deepcopy(source.model).cpu().float().eval()
        # The example batch must be large: from a small one (2, 8) ExecuTorch 1.5 plans memory for 15 images,
        # whatever the Dim's max, and a batch of 32 then fails with error 0x10 (measured on resnet8).
        x = torch.from_numpy(np.resize(source.calib, (EXAMPLE_BATCH, *source.calib.shape[1:]))).float()
        dims = ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)
        info: dict[str, Any] = {"delegate": "XNNPACK", "max_batch": MAX_BATCH}
        if precision == "int8":
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

            graph = torch.export.export(model, (x,), dynamic_shapes=dims).module()
            unshare_weights(graph)  # a head shared by FPN levels: quantize every level's convs
            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            graph = prepare_pt2e(graph, quantizer)
            with torch.no_grad():
                for i in range(0, len(source.calib), 32):
                    graph(torch.from_numpy(source.calib[i:i + 32]).float())
            model = convert_pt2e(graph)
            info.update(quantizer="XNNPACKQuantizer symmetric per-channel (PT2E)", calib_images=len(source.calib))
        program = to_edge_transform_and_lower(torch.export.export(model, (x,), dynamic_shapes=dims),
                                              partitioner=[XnnpackPartitioner()]).to_executorch()
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / ("model.pte" if precision == "fp32" else "model.int8.pte")
        out.write_bytes(program.buffer)
        return out, info

    def runner(self, path: Path, threads: int) -> Runner:
        import torch
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        from executorch.runtime import Runtime

        with quiet():  # the runtime's C++ log lines (thread pool, cpuinfo) would flood the console
            _unsafe_reset_threadpool(int(threads))
            method = Runtime.get().load_program(str(path)).load_method("forward")
        if method is None:
            raise RuntimeError(f"{path} has no forward method")
        return lambda x: method.execute([torch.from_numpy(x)])[0].numpy()
