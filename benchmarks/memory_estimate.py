"""The memory check's training-step estimate against the measured peak RSS growth of two SGD steps on CPU.

    PYTHONPATH=src python benchmarks/memory_estimate.py cifar:resnet20 64 128
"""

import resource
import sys

import torch
import torch.nn.functional as F

from edgedistill.memory_estimate import activation_bytes, weight_bytes
from edgedistill.models import create_model

spec, size, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
m = create_model(spec, 10)
acts = activation_bytes(m, size)
opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
for _ in range(2):
    loss = F.cross_entropy(m(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
est = 3 * weight_bytes(m) + batch * (acts[0] + 2 * acts[1]) + x.numel() * 4
print(f"{spec} {size}px batch {batch}: measured {(peak - base) / 2**20:.0f} MiB, estimate {est / 2**20:.0f} MiB, "
      f"ratio {est / (peak - base):.2f}")
