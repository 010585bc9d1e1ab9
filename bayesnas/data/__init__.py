"""Data: data sets on disk (`sources`), image folders (`folders`), augmentation (`augment`),
the search split and batches (`batches`), and what a search reads (`loading`)."""

from bayesnas.data.augment import DEFAULT_AUGMENTATION, augment, normalize
from bayesnas.data.batches import TensorData, search_split, split_sizes
from bayesnas.data.folders import FolderData, count_images, imagenet_folder
from bayesnas.data.loading import Data, build_search_data, first_images, search_data
from bayesnas.data.sources import (
    DATASETS,
    DatasetInfo,
    cache_dir,
    dataset_info,
    load_arrays,
    resolve_data_root,
)

__all__ = [
    "DATASETS",
    "DEFAULT_AUGMENTATION",
    "Data",
    "DatasetInfo",
    "FolderData",
    "TensorData",
    "augment",
    "build_search_data",
    "cache_dir",
    "count_images",
    "dataset_info",
    "first_images",
    "imagenet_folder",
    "load_arrays",
    "normalize",
    "resolve_data_root",
    "search_data",
    "search_split",
    "split_sizes",
]
