"""Data: the data sets on disk (`sources`) and their split, augmentation and batches (`batches`)."""

from bayesnas.data.batches import (
    DEFAULT_AUGMENTATION,
    Data,
    FolderData,
    TensorData,
    augment,
    build_search_data,
    first_images,
    normalize,
    search_data,
    search_split,
    split_sizes,
)
from bayesnas.data.sources import (
    DATASETS,
    DatasetInfo,
    cache_dir,
    dataset_info,
    imagenet_folder,
    imagenet_folders,
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
    "dataset_info",
    "first_images",
    "imagenet_folder",
    "imagenet_folders",
    "load_arrays",
    "normalize",
    "resolve_data_root",
    "search_data",
    "search_split",
    "split_sizes",
]
