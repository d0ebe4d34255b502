"""Datasets by name, their transforms and loaders: everything between a recipe's data section and a batch."""

from .base import DATA_SOURCES, RawSplits
from . import digits, hf_disk, imagefolder, torchvision_source  # noqa: F401  (register the sources)
from . import seg_masks, seg_shapes  # noqa: F401  (task=segmentation sources)
from . import det_folders, det_shapes, det_voc  # noqa: F401  (task=detection sources)
from .build import DataBundle, build_data, class_names_of, make_loader
from .dataset import EpochSampler, TransformedDataset
from .transforms import build_transform

__all__ = [
    "DATA_SOURCES", "DataBundle", "EpochSampler", "RawSplits", "TransformedDataset",
    "build_data", "build_transform", "class_names_of", "make_loader",
]
