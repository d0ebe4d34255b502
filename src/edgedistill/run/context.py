"""What every stage of a run needs: the recipe, the run folder, data, loaders and where to compute."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from ..data import DataBundle, make_loader
from ..data.device_loader import DeviceLoader
from ..engine import distributed as ddp
from ..recipe import Recipe
from ..track import Trackers


@dataclass
class Context:
    """What every stage needs: the recipe, the run folder, data, loaders and where to compute."""

    recipe: Recipe
    run_dir: Path
    data: DataBundle
    device: torch.device
    console: Console
    resume: bool
    tracks: Trackers = field(default_factory=Trackers)  # the run's experiment trackers (none until opened)
    _device_loader: Any = field(default=None, repr=False)

    def loader(self, split: str, keys: bool = False) -> Any:
        """Under torchrun each rank loads its shard; train.batch_size stays the global batch."""
        cfg, world = self.recipe, ddp.world_size()
        batch = cfg.train.batch_size // world
        if split == "train" and cfg.data.device_resident:
            if self._device_loader is None:  # decoded once, shared by every stage
                self._device_loader = DeviceLoader(self.data.train, cfg.data, batch, self.device,
                                                   seed=cfg.train.seed, num_replicas=world, rank=ddp.rank())
            return self._device_loader
        ds = self.data.train if split == "train" else self.data.held_out(split)
        return make_loader(ds, batch, train=split == "train", workers=cfg.data.workers, seed=cfg.train.seed,
                           device_type=self.device.type, num_replicas=world, rank=ddp.rank(), keys=keys)
