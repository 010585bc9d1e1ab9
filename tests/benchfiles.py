"""Small benchmark files in the official NAS-Bench-201 and NATS-Bench formats, generated for
tests (the real files cannot be had here): distinct, recognisable numbers per architecture."""

import bz2
import pickle
from pathlib import Path

import torch

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
]
SETS = {  # the evaluation sets each data set is scored on in NAS-Bench-201
    "cifar10-valid": ("x-valid", "ori-test"),
    "cifar10": ("ori-test",),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}


def _accuracy(index: int, dataset: str, setname: str, epochs: int, seed: int) -> float:
    """A distinct, recognisable number per (architecture, data set, set, schedule, seed)."""
    base = {"cifar10-valid": 80, "cifar10": 90, "cifar100": 60, "ImageNet16-120": 30}[dataset]
    return base + index + (0.5 if setname == "x-test" else 0) + epochs / 1000 + seed / 1e4


def _results(index: int, arch: str, dataset: str, epochs: int, seed: int) -> dict:
    """ResultsCount.state_dict() of one trial, as the API stores it."""
    last = epochs - 1
    names = SETS[dataset]
    return {
        "name": dataset, "net_state_dict": None,
        "train_acc1es": {e: 50.0 for e in range(epochs)}, "train_acc5es": None,
        "train_losses": {e: 1.0 for e in range(epochs)}, "train_times": None,
        "arch_config": {"channel": 16, "num_cells": 5, "arch_str": arch, "class_num": 10},
        "params": 0.5, "flop": 70.0, "seed": seed, "epochs": epochs, "latency": None,
        "eval_names": list(names),
        "eval_acc1es": {
            f"{n}@{e}": _accuracy(index, dataset, n, epochs, seed) if e == last else 10.0
            for n in names for e in range(epochs)
        },
        "eval_times": {},
        "eval_losses": {f"{n}@{e}": 1.0 for n in names for e in range(epochs)},
    }  # fmt: skip


def _arch_results(index: int, arch: str, epochs: int) -> dict:
    """ArchResults.state_dict(): two seeds on every data set."""
    seeds = (777, 888)
    return {
        "arch_index": index,
        "arch_str": arch,
        "all_results": {(d, s): _results(index, arch, d, epochs, s) for d in SETS for s in seeds},
        "dataset_seed": {d: list(seeds) for d in SETS},
        "clear_net_done": True,
    }


def write_nb201(path: Path, archs: list[str] = ARCHS) -> Path:
    """A NAS-Bench-201 .pth: meta_archs, arch2infos {index: {less, full}}, evaluated_indexes."""
    data = {
        "meta_archs": archs,
        "arch2infos": {
            i: {"less": _arch_results(i, a, 12), "full": _arch_results(i, a, 200)}
            for i, a in enumerate(archs)
        },
        "evaluated_indexes": list(range(len(archs))),
        "total_archs": len(archs),
    }
    torch.save(data, path)
    return path


def write_nats(path: Path, payload=None) -> Path:
    """A NATS-Bench topology .pickle.pbz2: arch2infos {index: {'12': ..., '200': ...}}."""
    data = payload or {
        "meta_archs": ARCHS,
        "arch2infos": {
            i: {"12": _arch_results(i, a, 12), "200": _arch_results(i, a, 200)}
            for i, a in enumerate(ARCHS)
        },
        "evaluated_indexes": list(range(len(ARCHS))),
    }
    with bz2.open(path, "wb") as stream:
        pickle.dump(data, stream)
    return path
