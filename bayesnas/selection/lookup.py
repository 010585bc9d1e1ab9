"""Benchmark lookups: an nb201 run's architectures in a NAS-Bench-201 or NATS-Bench (topology) file.

The file is read here as data only (``torch.load(weights_only=True)`` for NAS-Bench-201's .pth,
a bz2 pickle restricted to plain containers and NumPy scalars for NATS-Bench's .pickle.pbz2)
and handed as a dict to the official API (``nas_201_api.NASBench201API``,
``nats_bench.create(..., "tss")``), which reads the results. Every row names the file, its
version and the training schedule (hp 12 or 200 epochs). Results go to lookup.json in the run.
"""

from __future__ import annotations

import bz2
import io
import json
import math
import pickle
import re
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from bayesnas import rundir
from bayesnas.errors import UserError
from bayesnas.spaces import get_space

LOOKUP = "lookup.json"
HPS = ("12", "200")  # the benchmarks' training schedules, in epochs
DEFAULT_HP = "200"  # the full schedule, whose accuracies papers report
# (API data set, metric key of get_more_info, the column it becomes)
COLUMNS = (
    ("cifar10-valid", "valid-accuracy", "cifar10_valid"),
    ("cifar10", "test-accuracy", "cifar10_test"),
    ("cifar100", "valid-accuracy", "cifar100_valid"),
    ("cifar100", "test-accuracy", "cifar100_test"),
    ("ImageNet16-120", "valid-accuracy", "imagenet16_valid"),
    ("ImageNet16-120", "test-accuracy", "imagenet16_test"),
)
_DATA_CLASSES = {
    ("collections", "OrderedDict"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "dtype"),
}
INSTALL = "pip install 'bayesnas[benchmarks]' (nas-bench-201 and nats_bench)"


class _DataUnpickler(pickle.Unpickler):
    """Plain containers, numbers, strings and NumPy scalars; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _DATA_CLASSES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused {module}.{name}: not plain data")


@dataclass
class Benchmark:
    """An opened benchmark file: the official API object and what every row must name."""

    api: Any
    file: str
    version: str
    kind: str  # "NAS-Bench-201" or "NATS-Bench-tss"


def _check_benchmark_file(path: Path) -> None:
    """Refuse, in one line saying what to do, a benchmark path that is not a file."""
    if not path.is_file():
        state = "is not a file" if path.exists() else "does not exist"
        raise UserError(
            f"benchmark file {path} {state}: download NAS-Bench-201-v1_1-096897.pth or "
            "NATS-tss-v1_0-3ffb9.pickle.pbz2 (docs/benchmarks.md says where) and pass its path"
        )


def open_benchmark(path: Path) -> Benchmark:
    """Read ``path`` as data and open it with its official API; UserError on any defect."""
    path = Path(path)
    _check_benchmark_file(path)
    version = (re.search(r"v\d+_\d+", path.name) or [None])[0] or "unknown"
    try:
        if path.name.endswith(".pth"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = torch.load(path, map_location="cpu", weights_only=True)
            kind = "NAS-Bench-201"
        elif path.name.endswith(".pickle.pbz2"):
            with bz2.open(path, "rb") as stream:
                data = _DataUnpickler(io.BytesIO(stream.read())).load()
            kind = "NATS-Bench-tss"
        else:
            raise UserError(
                f"{path.name}: expected a NAS-Bench-201 .pth or a NATS-Bench "
                "topology .pickle.pbz2 file"
            )
    except UserError:
        raise
    except Exception as exc:
        asks = _unsafe_globals(path) if isinstance(exc, pickle.UnpicklingError) else []
        if asks:
            raise UserError(
                f"{path} holds objects other than tensors and plain data (it asks for "
                f"{', '.join(asks[:3])}), so it was not loaded, as loading it could run code; "
                "download the official file (docs/benchmarks.md says where)"
            ) from None
        raise _unreadable(path, exc) from None
    return Benchmark(_api(data, kind, path), path.name, version, kind)


def _unreadable(path: Path, exc: Exception) -> UserError:
    """One line for a corrupt or foreign benchmark file, with the first line of ``exc`` that
    does not advise loading with ``weights_only=False`` (torch's message does, six lines)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    detail = next((line for line in lines if line and "weights_only" not in line), "")
    reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return UserError(f"{path} is not a readable benchmark file ({reason})")


def _unsafe_globals(path: Path) -> list[str]:
    """The globals outside torch's weights-only allow-list that a .pth file asks for, read from
    its opcodes without running them; none if they cannot be read."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # the scan only tells a payload from a corrupt file; failing, say corrupt
        return []


def _api(data: Any, kind: str, path: Path) -> Any:
    try:
        if kind == "NAS-Bench-201":
            from nas_201_api import NASBench201API

            return NASBench201API(data, verbose=False)
        import nats_bench

        return nats_bench.create(data, "tss", fast_mode=False, verbose=False)
    except ImportError:
        raise UserError(f"reading {kind} files needs its official API: {INSTALL}") from None
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is not in the {kind} format ({exc})") from None


def look_up(bench: Benchmark, architecture: str, hp: str) -> dict[str, Any]:
    """The benchmark's mean accuracies (%) of one NAS-Bench-201 string under schedule ``hp``."""
    index = bench.api.query_index_by_arch(architecture)
    if index < 0:
        raise UserError(f"architecture {architecture} is not in {bench.file}")
    row: dict[str, Any] = {"architecture": architecture, "index": index}
    for dataset, key, column in COLUMNS:
        try:
            info = bench.api.get_more_info(index, dataset, hp=hp, is_random=False)
            row[column] = None if info.get(key) is None else float(info[key])
        except (KeyError, ValueError, AssertionError):  # not trained on it under this hp
            row[column] = None
    return row | {"file": bench.file, "version": bench.version, "kind": bench.kind, "hp": hp}


def run_architectures(run_dir: Path) -> list[tuple[str, str, float | None]]:
    """(architecture, source, our validation accuracy) of each distinct sampled or exported
    architecture of an nb201 run, best first; UserError if there are none."""
    space = _searched_space(run_dir)
    if space != "nb201":
        raise UserError(f"lookup covers NAS-Bench-201 cells; {run_dir} searched space {space!r}")
    rows = rundir.read_jsonl(run_dir / rundir.SAMPLES, rundir.note)
    best: dict[Any, dict[str, Any]] = {}  # each architecture's best row in samples.jsonl
    for row in sorted(rows, key=lambda r: -_number(r.get("val_acc"))):
        best.setdefault(row.get("architecture"), row)
    seen: dict[str, tuple[str, str, float | None]] = {}
    for file in sorted((run_dir / "export").glob("rank-*/architecture.json"), key=_rank):
        arch = _exported_architecture(file)
        if isinstance(arch, str):  # an export is a sampled row: ours is that row's accuracy
            seen.setdefault(arch, (arch, file.parent.name, best.get(arch, {}).get("val_acc")))
    for arch, row in best.items():
        if isinstance(arch, str) and arch not in seen:
            seen[arch] = (arch, f"sampled ({row.get('sampler')})", row.get("val_acc"))
    if not seen:
        raise UserError(
            f"{run_dir} has no sampled or exported architectures: run `bayesnas sample` first"
        )
    return list(seen.values())


def _number(value: Any) -> float:
    """A row's accuracy for sorting; a damaged one (missing, not a number) sorts last."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return -math.inf


def _rank(file: Path) -> tuple[int, str]:
    """export/rank-K/architecture.json in the order of K (rank-2 before rank-10)."""
    suffix = file.parent.name.removeprefix("rank-")
    return (int(suffix) if suffix.isdigit() else 1 << 62, suffix)


def _exported_architecture(file: Path) -> Any:
    """The architecture an export names; None (with a note) when its file is unreadable."""
    try:
        record = json.loads(file.read_text())
        return record.get("architecture") if isinstance(record, dict) else None
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        rundir.note(f"skipping {file}: not readable JSON ({type(exc).__name__})")
        return None


def _searched_space(run_dir: Path) -> Any:
    """The space in the run's config.json: under "config" as search writes it, or at the top
    level as bayesnas 0.1 wrote it."""
    file = run_dir / rundir.CONFIG
    try:
        record = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(
            f"{file} is not readable JSON ({type(exc).__name__}); pass another --run"
        ) from None
    config = record.get("config", record) if isinstance(record, dict) else None
    return config.get("space") if isinstance(config, dict) else None


def lookup(run: Path | None, arch: str | None, benchmark: Path, hp: str = DEFAULT_HP) -> dict:
    """Look the run's (or one) architectures up; writes lookup.json into the run."""
    if hp not in HPS:
        raise UserError(f"--hp must be {' or '.join(HPS)} (training epochs), got {hp!r}")
    if arch is not None and run is not None:
        raise UserError("pass --run or --arch, not both")
    _check_benchmark_file(Path(benchmark))  # before reading the run: a missing file is not hidden
    if arch is not None:
        try:
            _read_cell(arch)
        except ValueError as exc:
            raise UserError(f"--arch is not a NAS-Bench-201 cell: {exc}") from None
        targets: list[tuple[str, str, float | None]] = [(arch, "--arch", None)]
        run_dir = None
    else:
        run_dir = rundir.find_run(run)
        targets = run_architectures(run_dir)
    bench = open_benchmark(benchmark)
    rows = [
        {"source": source, "val_acc": val} | look_up(bench, a, hp) for a, source, val in targets
    ]
    result = {
        "benchmark": {"file": bench.file, "version": bench.version, "kind": bench.kind},
        "hp": hp,
        "rows": rows,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if run_dir is not None:
        rundir.write_json(run_dir / LOOKUP, result)
        result["path"] = str(run_dir / LOOKUP)
    return result


def _read_cell(arch: str) -> str:
    """The canonical string of a NAS-Bench-201 cell (the tables' space); ValueError if not."""
    recipe = get_space("nb201").recipe
    assert recipe is not None
    return recipe.parse(arch)[0]
