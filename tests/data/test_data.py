"""Tests of data set discovery, loading, the search split, augmentation and batch serving."""

from __future__ import annotations

import errno
import pickle
import tempfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.utils
from fakedata import IMAGENET_CLASSES, write_cifar, write_idx, write_imagenet, write_mnist

import bayesnas.data.formats
import bayesnas.data.sources
from bayesnas.data import (
    DATASETS,
    DatasetInfo,
    FolderData,
    TensorData,
    augment,
    build_search_data,
    dataset_info,
    imagenet_folder,
    load_arrays,
    normalize,
    resolve_data_root,
    search_split,
)
from bayesnas.errors import UserError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = (0.5,), (0.25,)
devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _isolated(isolated_data_env: Path) -> Path:
    """Keep every test away from the real BAYESNAS_DATA and per-user cache."""
    return isolated_data_env


def test_real_cifar10_loads_with_known_labels_and_pixels(cifar10_root: Path) -> None:
    images, labels = load_arrays("cifar10", cifar10_root, train=True, download=False)
    assert images.shape == (50000, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64
    assert torch.bincount(labels).tolist() == [5000] * 10
    assert labels[:20].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3, 4, 7, 7, 2, 9, 9, 9, 3, 2, 6]
    # A CIFAR row is the R plane, then G, then B, each row-major: row 0 starts R[0, 0:3].
    assert images[0, 0, 0, :3].tolist() == [59, 43, 50]
    assert images[0, 2, 31, 29:].tolist() == [140, 84, 72]
    assert images[1, 0, 0, :3].tolist() == [154, 126, 105]
    assert images[1, 2, 31, 29:].tolist() == [139, 142, 144]
    assert images[9999, 0, 0, :3].tolist() == [62, 61, 60]
    assert images[10000, 0, 0, :3].tolist() == [35, 27, 25]
    assert images[10000, 2, 31, 29:].tolist() == [169, 168, 168]
    mean = images.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor(dataset_info("cifar10").mean), atol=1e-4)


def test_real_cifar10_test_split_and_extraction(cifar10_root: Path) -> None:
    images, labels = load_arrays("cifar10", cifar10_root, train=False, download=False)
    assert images.shape == (10000, 3, 32, 32)
    assert labels[:20].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    assert sorted(p.name for p in cifar10_root.iterdir()) == [
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
    ]
    assert resolve_data_root("cifar10", cifar10_root) == cifar10_root


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason=f"{DEBIAN_FASHION} absent")
def test_real_fashion_mnist_found_at_debian_path() -> None:
    root = resolve_data_root("fashion-mnist", None)
    assert root == DEBIAN_FASHION.parent
    images, labels = load_arrays("fashion-mnist", root, train=True, download=False)
    assert images.shape == (60000, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [6000] * 10
    assert load_arrays("fashion-mnist", root, train=False, download=False)[0].shape[0] == 10000


def test_dataset_info_knows_every_name_and_rejects_others() -> None:
    assert [dataset_info(name).name for name in DATASETS] == list(DATASETS)
    assert dataset_info("mnist").channels == 1 and dataset_info("imagenet").image_size == 224
    with pytest.raises(UserError, match="cifar10, cifar100, fashion-mnist, mnist, imagenet"):
        dataset_info("svhn")


def test_resolve_data_root_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given, env, cache = tmp_path / "given", tmp_path / "env", bayesnas.data.sources.cache_dir()
    assert cache == tmp_path / "xdg-cache" / "bayesnas"
    assert resolve_data_root("mnist", None) == cache
    monkeypatch.setenv("BAYESNAS_DATA", str(env))
    assert resolve_data_root("mnist", None) == env
    write_mnist(cache, layout="flat")
    assert resolve_data_root("mnist", None) == cache
    write_mnist(env, layout="named")
    assert resolve_data_root("mnist", None) == env
    # a given root is used as it is, never replaced by another that holds the data ...
    given.mkdir()
    assert resolve_data_root("mnist", given) == given
    write_mnist(given)
    assert resolve_data_root("mnist", given) == given
    # ... and one that does not exist is an error, not a fallback, and is not created
    with pytest.raises(UserError, match="--data-root .*missing does not exist"):
        resolve_data_root("mnist", tmp_path / "missing")
    assert not (tmp_path / "missing").exists()


def test_cache_dir_falls_back_to_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert bayesnas.data.sources.cache_dir() == tmp_path / "home" / ".cache" / "bayesnas"


def test_debian_root_is_a_candidate_for_fashion_mnist_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debian = tmp_path / "debian"
    monkeypatch.setattr(bayesnas.data.sources, "_DEBIAN_ROOT", debian)
    write_mnist(debian, name="fashion-mnist", layout="named")
    assert resolve_data_root("fashion-mnist", None) == debian
    write_mnist(debian, name="mnist", layout="named")
    assert resolve_data_root("mnist", None) == bayesnas.data.sources.cache_dir()


@pytest.mark.parametrize(
    ("name", "layout", "gz"),
    [
        ("mnist", "torchvision", True),
        ("mnist", "torchvision", False),
        ("mnist", "flat", True),
        ("mnist", "named", False),
        ("fashion-mnist", "torchvision", True),
        ("fashion-mnist", "flat", False),
        ("fashion-mnist", "named", True),
    ],
)
def test_fake_mnist_layouts_load(tmp_path: Path, name: str, layout: str, gz: bool) -> None:
    expected = write_mnist(tmp_path, name=name, layout=layout, gz=gz)
    for split, (images, labels) in expected.items():
        loaded = load_arrays(name, tmp_path, train=split == "train", download=False)
        assert loaded[0].shape == (len(labels), 1, 28, 28) and loaded[0].dtype == torch.uint8
        assert np.array_equal(loaded[0].numpy(), images)
        assert np.array_equal(loaded[1].numpy(), labels) and loaded[1].dtype == torch.int64


def test_truncated_idx_file_is_a_user_error(tmp_path: Path) -> None:
    write_mnist(tmp_path, layout="flat", gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(UserError, match="truncated"):
        load_arrays("mnist", tmp_path, train=True, download=False)


def test_fake_cifar100_loads(tmp_path: Path) -> None:
    expected = write_cifar(tmp_path, "cifar100", train=12, test=5)
    with (tmp_path / "cifar-100-python" / "train").open("rb") as stream:
        assert {b"data", b"fine_labels", b"coarse_labels"} <= set(
            pickle.load(stream, encoding="bytes")
        )
    for split, (images, labels) in expected.items():
        loaded = load_arrays("cifar100", tmp_path, train=split == "train", download=False)
        assert loaded[0].shape == (len(labels), 3, 32, 32)
        assert np.array_equal(loaded[0].numpy(), images)
        assert np.array_equal(loaded[1].numpy(), labels)


def test_fake_cifar10_loads(tmp_path: Path) -> None:
    images, labels = write_cifar(tmp_path, "cifar10", train=15, test=4)["train"]
    loaded = load_arrays("cifar10", tmp_path, train=True, download=False)
    assert np.array_equal(loaded[0].numpy(), images)
    assert np.array_equal(loaded[1].numpy(), labels)


def test_cifar_tarball_is_extracted_into_root(tmp_path: Path) -> None:
    images = write_cifar(tmp_path, "cifar100", train=6, test=3, tarball=True)["train"][0]
    assert resolve_data_root("cifar100", tmp_path) == tmp_path
    assert np.array_equal(load_arrays("cifar100", tmp_path, train=True)[0].numpy(), images)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cifar-100-python",
        "cifar-100-python.tar.gz",
    ]


def test_read_only_root_extracts_into_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_data_env: Path
) -> None:
    root = tmp_path / "read-only"
    images = write_cifar(root, "cifar100", train=6, test=3, tarball=True)["train"][0]
    mkdtemp = tempfile.mkdtemp
    calls = []

    def refuse_root(prefix: str, dir: Path) -> str:
        calls.append(Path(dir))
        if Path(dir) == root:
            raise PermissionError(errno.EACCES, "Permission denied", str(root))
        return mkdtemp(prefix=prefix, dir=dir)

    monkeypatch.setattr(bayesnas.data.formats.tempfile, "mkdtemp", refuse_root)
    for _ in range(2):
        assert np.array_equal(load_arrays("cifar100", root, train=True)[0].numpy(), images)
    assert calls == [root, isolated_data_env, root]
    assert (isolated_data_env / "cifar-100-python" / "meta").is_file()
    assert not (root / "cifar-100-python").exists()


def test_corrupt_tarball_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(UserError, match="cifar-10-python.tar.gz"):
        load_arrays("cifar10", tmp_path, train=True, download=False)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion-mnist"])
def test_missing_data_without_download_names_the_path(tmp_path: Path, name: str) -> None:
    root = tmp_path / "nothing-here"
    with pytest.raises(UserError) as caught:
        load_arrays(name, root, train=True, download=False)
    message = str(caught.value)
    assert str(root) in message and "downloading is off" in message and "\n" not in message
    assert ("apt-get install dataset-fashion-mnist" in message) == (name == "fashion-mnist")


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_failed_download_is_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    attempts = []

    def offline(url: str, *args: object, **kwargs: object) -> None:
        attempts.append(url)
        raise urllib.error.URLError("network blocked by the test")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    root = tmp_path / "empty"
    with pytest.raises(UserError) as caught:
        load_arrays(name, root, train=True, download=True)
    assert attempts and str(root) in str(caught.value) and "download failed" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_imagenet_folders(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=str(tmp_path)):
        imagenet_folder(tmp_path, "train")
    write_imagenet(tmp_path / "imagenet")
    found = (imagenet_folder(tmp_path, "train"), imagenet_folder(tmp_path, "val"))
    assert found == (tmp_path / "imagenet/train", tmp_path / "imagenet/val")
    with pytest.raises(UserError, match="in memory"):
        load_arrays("imagenet", tmp_path, train=True)


def test_search_split_is_disjoint_covering_and_seeded() -> None:
    train, val = search_split(101)
    assert len(train) == 51 and len(val) == 50
    assert sorted(torch.cat([train, val]).tolist()) == list(range(101))
    again = search_split(101)
    assert torch.equal(train, again[0]) and torch.equal(val, again[1])
    assert not torch.equal(train, search_split(101, seed=1)[0])
    assert len(search_split(100, val_fraction=0.2)[1]) == 20


def test_search_split_caps_come_from_the_same_permutation() -> None:
    full_train, full_val = search_split(1000, seed=3)
    train, val = search_split(1000, seed=3, train_size=100, val_size=40)
    assert len(train) == 100 and len(val) == 40
    assert set(train.tolist()) <= set(full_train.tolist())
    assert set(val.tolist()) <= set(full_val.tolist())
    assert torch.equal(search_split(1000, seed=3, train_size=100)[1], full_val)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_examples": 1},
        {"num_examples": 10, "val_fraction": 1.0},
        {"num_examples": 10, "train_size": 6},
        {"num_examples": 10, "val_size": 0},
    ],
)
def test_search_split_rejects_impossible_sizes(kwargs: dict) -> None:
    with pytest.raises(UserError):
        search_split(**kwargs)


def _images(batch: int, channels: int = 3, size: int = 8, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, channels, size, size)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("device", devices)
def test_augment_shape_dtype_device_and_identity(device: str) -> None:
    images = _images(16).to(device)
    out = augment(images, pad=2, flip=True, cutout=3, mean=MEAN * 3, std=STD * 3)
    assert out.shape == images.shape and out.dtype == torch.float32
    assert out.device == images.device
    plain = augment(images, pad=0, flip=False, cutout=0, mean=MEAN * 3, std=STD * 3)
    assert torch.equal(plain, normalize(images, MEAN * 3, STD * 3))
    expected = (images[0, 0, 0, 0].item() / 255 - 0.5) / 0.25
    assert plain[0, 0, 0, 0].item() == pytest.approx(expected, abs=1e-5)


def test_augment_flips_some_images_whole() -> None:
    torch.manual_seed(0)
    images = _images(64)
    out = augment(images, pad=0, flip=True, cutout=0, mean=MEAN, std=STD)
    same = (out == normalize(images, MEAN, STD)).flatten(1).all(1)
    flipped = (out == normalize(images.flip(-1), MEAN, STD)).flatten(1).all(1)
    assert bool((same | flipped).all()) and 10 < int(flipped.sum()) < 54


def test_augment_crops_stay_within_the_padding() -> None:
    torch.manual_seed(0)
    images = torch.arange(1, 37, dtype=torch.uint8).view(1, 1, 6, 6).expand(200, 1, 6, 6)
    out = augment(images, pad=2, flip=False, cutout=0, mean=MEAN, std=STD)
    padded = normalize(torch.nn.functional.pad(images[:1], (2, 2, 2, 2)), MEAN, STD)[0, 0]
    offsets = set()
    for image in out[:, 0]:
        matches = [
            (top, left)
            for top in range(5)
            for left in range(5)
            if torch.equal(padded[top : top + 6, left : left + 6], image)
        ]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 15


def test_augment_cutout_zeroes_a_clipped_square() -> None:
    torch.manual_seed(0)
    images = torch.full((100, 2, 10, 10), 255, dtype=torch.uint8)
    out = augment(images, pad=0, flip=False, cutout=4, mean=MEAN * 2, std=STD * 2)
    holes = out == 0
    assert torch.equal(holes[:, 0], holes[:, 1]) and bool((out[~holes] == 2.0).all())
    full_squares = 0
    for hole in holes[:, 0]:
        rows, cols = hole.any(1).nonzero()[:, 0], hole.any(0).nonzero()[:, 0]
        assert 2 <= len(rows) <= 4 and 2 <= len(cols) <= 4
        assert rows.tolist() == list(range(rows[0], rows[-1] + 1))
        assert cols.tolist() == list(range(cols[0], cols[-1] + 1))
        assert int(hole.sum()) == len(rows) * len(cols)
        full_squares += int(hole.sum()) == 16
    assert full_squares > 20


@pytest.mark.parametrize("device", devices)
def test_augment_follows_the_global_rng(device: str) -> None:
    images = _images(32).to(device)

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return augment(images, pad=4, flip=True, cutout=4, mean=MEAN * 3, std=STD * 3)

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def _tensor_data(device: str = "cpu", augmentation: dict | None = None) -> TensorData:
    info = DatasetInfo("fake", 10, 1, 8, MEAN, STD)
    return TensorData(_images(103, channels=1), torch.arange(103), info, device, augmentation)


@pytest.mark.parametrize("device", devices)
def test_tensor_data_epochs_are_seeded_permutations(device: str) -> None:
    data = _tensor_data(device)
    assert len(data) == 103 and data.steps_per_epoch(10) == 10

    def labels(epoch: int, seed: int, start_step: int = 0) -> list[int]:
        batches = data.train_batches(10, epoch=epoch, seed=seed, start_step=start_step)
        return [label for _, batch_labels in batches for label in batch_labels.tolist()]

    first = labels(0, 7)
    assert len(first) == 100 == len(set(first))
    torch.manual_seed(123)
    assert labels(0, 7) == first
    assert labels(0, 7, start_step=4) == first[40:]
    assert labels(0, 7, start_step=10) == []
    assert labels(1, 7) != first and labels(0, 8) != first
    images, _ = next(data.train_batches(10, epoch=0, seed=7))
    assert images.shape == (10, 1, 8, 8) and images.device.type == device


def test_tensor_data_resumes_augmented_batches_exactly() -> None:
    data = _tensor_data(augmentation={"pad": 2, "flip": True, "cutout": 3})
    torch.manual_seed(5)
    batches = data.train_batches(16, epoch=2, seed=1)
    head = [next(batches) for _ in range(3)]
    state = torch.get_rng_state()
    tail = list(batches)
    torch.set_rng_state(state)
    resumed = list(data.train_batches(16, epoch=2, seed=1, start_step=3))
    assert len(head) + len(tail) == data.steps_per_epoch(16) == 6
    for (images, labels), (again, again_labels) in zip(tail, resumed, strict=True):
        assert torch.equal(images, again) and torch.equal(labels, again_labels)
    plain = _tensor_data()
    torch.manual_seed(5)
    assert not torch.equal(head[0][0], next(plain.train_batches(16, epoch=2, seed=1))[0])


def test_tensor_data_eval_batches_and_errors() -> None:
    data = _tensor_data(augmentation={"pad": 2})
    batches = list(data.eval_batches(10))
    assert [len(labels) for _, labels in batches] == [10] * 10 + [3]
    assert torch.cat([labels for _, labels in batches]).tolist() == list(range(103))
    assert torch.equal(batches[-1][0], normalize(data.images[100:], MEAN, STD))
    assert len(list(data.eval_batches(500))) == 1
    for bad in (0, 104):
        with pytest.raises(UserError):
            data.steps_per_epoch(bad)
    with pytest.raises(ValueError):
        data.train_batches(10, epoch=0, seed=0, start_step=11)
    with pytest.raises(UserError, match="unknown augmentation"):
        _tensor_data(augmentation={"mixup": 1})


def test_build_search_data_splits_the_training_set(tmp_path: Path) -> None:
    write_cifar(tmp_path, "cifar100", train=40, test=5)
    train, val, info, _ = build_search_data("cifar100", tmp_path, device="cpu", train_size=15)
    assert isinstance(train, TensorData) and isinstance(val, TensorData)
    assert (len(train), len(val), info.num_classes) == (15, 20, 100)
    assert train.augmentation == {"pad": 4, "flip": True, "cutout": 16}
    assert val.augmentation is None
    build_search_data("cifar100", tmp_path, device="cpu", augmentation={"cutout": 0})
    with pytest.raises(UserError, match="image_size"):
        build_search_data("cifar100", tmp_path, device="cpu", image_size=64)


def test_build_search_data_uses_bayesnas_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_mnist(tmp_path, name="mnist", layout="torchvision", train=30)
    monkeypatch.setenv("BAYESNAS_DATA", str(tmp_path))
    train, val, info, _ = build_search_data("mnist", None, device="cpu", download=False)
    assert (len(train), len(val), info.channels) == (15, 15, 1)
    assert train.augmentation == {"pad": 2, "flip": False, "cutout": 0}
    images, labels = next(train.train_batches(5, epoch=0, seed=0))
    assert images.shape == (5, 1, 28, 28) and labels.dtype == torch.int64


@pytest.mark.parametrize("workers", [0, 2])
def test_folder_data_serves_fake_imagenet(tmp_path: Path, workers: int) -> None:
    write_imagenet(tmp_path)
    train, val, info, _ = build_search_data(
        "imagenet", tmp_path, device="cpu", workers=workers, image_size=32
    )
    assert isinstance(train, FolderData) and isinstance(val, FolderData)
    assert (len(train), len(val), info.num_classes) == (6, 6, len(IMAGENET_CLASSES))
    batches = list(train.train_batches(2, epoch=0, seed=0))
    assert len(batches) == train.steps_per_epoch(2) == 3
    for images, labels in batches:
        assert images.shape == (2, 3, 32, 32) and images.dtype == torch.float32
        assert labels.dtype == torch.int64 and int(labels.max()) < info.num_classes
    evaluated = list(val.eval_batches(4))
    assert [images.shape[0] for images, _ in evaluated] == [4, 2]
    again = list(val.eval_batches(4))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(evaluated, again, strict=True))
    order = torch.cat([labels for _, labels in train.train_batches(2, epoch=0, seed=0)])
    assert torch.equal(order, torch.cat([labels for _, labels in batches]))


def test_imagenet_search_data_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=str(tmp_path)):
        build_search_data("imagenet", tmp_path, device="cpu")
    write_imagenet(tmp_path)
    with pytest.raises(UserError, match="pad"):
        build_search_data("imagenet", tmp_path, device="cpu", augmentation={"pad": 4})


def test_write_idx_header(tmp_path: Path) -> None:
    write_idx(tmp_path / "x-idx1-ubyte", np.arange(3, dtype=np.uint8))
    assert (tmp_path / "x-idx1-ubyte").read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2])
