"""Data: the data sets on disk (`sources`), augmentation (`augment`), split and batches."""

from bayesnas.data.augment import DEFAULT_AUGMENTATION, augment, normalize
from bayesnas.data.batches import (
    Data,
    FolderData,
    TensorData,
    build_search_data,
    first_images,
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
