"""The run directory: its file names, creating and replacing it, its lock, finding a run.

Writes go through ``rundir.atomic`` (temp file, fsync, rename: a run killed at any instant
leaves the old file or the new one, never a torn one; a full disk is one line) and ``.pt``
files are read as data only through ``rundir.torchfile``; both are re-exported here, so that
``rundir.save_torch`` and the rest are the one place callers look. In a data-parallel search
only rank 0 calls the writers.
"""

from __future__ import annotations

import fcntl
import json
import platform
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

import pyro
import torch

from bayesnas.errors import UserError
from bayesnas.rundir.atomic import (
    DiskFull,
    append_jsonl,
    atomic_write_bytes,
    disk_full,
    is_disk_full,
    note,
    read_jsonl,
    repair_tail,
    save_torch,
    truncate_jsonl,
    write_json,
    write_new,
)
from bayesnas.rundir.torchfile import FORMAT_VERSION, UnsafeFile, load_torch, not_a_file

__all__ = [
    "PLOT_FORMATS",
    "DiskFull",
    "FORMAT_VERSION",
    "UnsafeFile",
    "append_jsonl",
    "atomic_write_bytes",
    "disk_full",
    "is_disk_full",
    "load_torch",
    "not_a_file",
    "note",
    "read_jsonl",
    "repair_tail",
    "save_torch",
    "truncate_jsonl",
    "write_json",
    "write_new",
]

CONFIG, METRICS, CHECKPOINT, POSTERIOR = (
    "config.json",
    "metrics.jsonl",
    "checkpoint.pt",
    "posterior.pt",
)
STEPS, SAMPLES = "steps.jsonl", "samples.jsonl"
PLOT_FORMATS = ("png", "svg", "pdf")  # what a run's plots/ may hold (``bayesnas plot --format``)
_EXPORT = ("architecture.json", "weights.safetensors", "metrics.json", "model.onnx", "model.pt")
_ENSEMBLE = ("members.json", "model.onnx")
_FIGURES = ("index.html", *(f"[0-9][0-9]-*.{fmt}" for fmt in PLOT_FORMATS))
# what search, sample, plot, ensemble, lookup and export write into a run directory: each
# folder (relative to the run, ``*`` matching within one name) with the files written into it.
# ``--force`` removes exactly these, at any depth, and refuses on anything else
RUN_TREE: dict[str, tuple[str, ...]] = {
    ".": (CONFIG, METRICS, CHECKPOINT, POSTERIOR, STEPS, SAMPLES, ".lock", ".write-test")
    + ("best_of_k-*.json", "ensemble.json", "lookup.json")
    + ("result.json", *_EXPORT),  # `train` writes its network beside its result
    "export": (),
    "export/rank-*": _EXPORT,
    ".export-staging": (),  # `sample` builds export/ here, then renames it
    ".export-staging/rank-*": _EXPORT,
    "export-ensemble": _ENSEMBLE,  # `export --ensemble`
    "export-ensemble/member-*": _EXPORT,
    ".export-ensemble-staging": _ENSEMBLE,
    ".export-ensemble-staging/member-*": _EXPORT,
    "plots": _FIGURES,
    "plots/.plots-*": _FIGURES,  # `plot` writes its figures here, then renames them
}
_TEMPORARY = re.compile(r"\.(.+)\.\w+\.tmp")  # atomic_write_bytes's .NAME.XXXXXXXX.tmp


def versions(device: torch.device) -> dict[str, str]:
    """Versions and device recorded with every run, for provenance."""
    from bayesnas.version import __version__

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "bayesnas": __version__,
        "torch": str(torch.__version__),  # a plain str: TorchVersion is a class to unpickle
        "pyro": pyro.__version__,
        "python": platform.python_version(),
        "device": f"{device} ({name or platform.machine()})",
    }


def default_run_dir(dataset: str, space: str) -> Path:
    return Path("runs") / f"{dataset}-{space}-{datetime.now():%Y%m%d-%H%M%S}"


def create(run_dir: Path) -> None:
    """Make the run directory, or say in one line why it cannot be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"cannot write to {run_dir}: {exc.strerror}; choose another --out"
        ) from None


def _folder(relative: PurePosixPath) -> str | None:
    """The RUN_TREE folder that ``relative`` (a folder inside the run) is, or None."""
    for pattern in RUN_TREE:
        parts = PurePosixPath(pattern).parts
        if len(parts) == len(relative.parts) and all(map(fnmatchcase, relative.parts, parts)):
            return pattern
    return None


def _foreign(run_dir: Path, relative: PurePosixPath) -> list[str]:
    """What bayesnas did not write in folder ``relative`` of the run, at any depth: files as
    paths relative to the run, and folders (ending in /) that are empty or cannot be read. A
    symbolic link is never followed."""
    folder = _folder(relative)
    try:
        entries = sorted((run_dir / relative).iterdir())
    except OSError:
        return [f"{relative}/"]
    found: list[str] = []
    for path in entries:
        inner = relative / path.name
        if path.is_dir() and not path.is_symlink():
            found += _foreign(run_dir, inner)
            continue
        temporary = _TEMPORARY.fullmatch(path.name)
        name = temporary.group(1) if temporary else path.name
        if folder is None or not any(fnmatchcase(name, p) for p in RUN_TREE[folder]):
            found.append(str(inner))
    return found if entries or folder else [f"{relative}/"]


def check_fresh(run_dir: Path, force: bool) -> None:
    """Refuse to start over an earlier run unless forced; when forced, remove all of it
    (export/, plots/, samples, everything), so that nothing of it is shipped as the new run's.
    Anything bayesnas did not write, at any depth, is never deleted: then even --force refuses,
    naming it."""
    earlier = sorted(p for p in run_dir.iterdir() if p.name != ".lock")
    visible = [p for p in earlier if not p.name.startswith(".")]
    if visible and not force:
        raise UserError(
            f"{run_dir} already holds files: resume with --resume {run_dir}, "
            "choose another --out, or pass --force to overwrite"
        )
    foreign = _foreign(run_dir, PurePosixPath())
    if foreign and force:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        shown = ", ".join(foreign[:5]) + more
        raise UserError(
            f"--force replaces only a bayesnas run, and {run_dir} also holds {shown}: "
            "move those away or choose another --out"
        )
    for path in earlier:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run for a whole search or training; a second is refused."""
    with open(run_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another search or training is running in {run_dir}; wait for it "
                "or use another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def posterior_remedy(run_dir: Path) -> str:
    """What to do about a posterior.pt that is there but cannot be read: the search that wrote
    it writes it again (from its last checkpoint, or from the start)."""
    return f"move it away, then `bayesnas search --resume {run_dir}` writes it again"


def read_metrics(run_dir: Path, warn: Any = None) -> list[dict[str, Any]]:
    """The metrics lines; a torn last line (a run killed mid-write) is skipped with a warning."""
    return read_jsonl(run_dir / METRICS, warn)


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    append_jsonl(run_dir / METRICS, [row])


def truncate_metrics(run_dir: Path, epochs_done: int) -> None:
    """Drop metric rows of epochs that a resume will run again."""
    truncate_jsonl(run_dir / METRICS, lambda r: r.get("epoch", 0) <= epochs_done)


def find_run(run: Path | None) -> Path:
    """``run`` itself, or the newest run directory under ./runs."""
    if run is not None:
        if not (run / CONFIG).is_file():
            raise UserError(f"{run} is not a bayesnas run (no {CONFIG})")
        return run
    runs = [p for p in Path("runs").glob(f"*/{CONFIG}") if not _is_training_run(p)]
    runs.sort(key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UserError("no run found under ./runs: start one with `bayesnas search` or pass --run")
    return runs[-1].parent


def _is_training_run(config_file: Path) -> bool:
    """Whether ``config_file`` is a `bayesnas train` run's (not a search's) config.json."""
    try:
        return json.loads(config_file.read_text()).get("command") == "train"
    except (OSError, ValueError, AttributeError):
        return False
