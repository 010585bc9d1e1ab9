"""The run directory: config.json, metrics.jsonl, checkpoint.pt, posterior.pt, and a lock.

Every write is atomic (temp file, fsync, rename), so a run killed at any instant leaves either
the old file or the new one, never a torn one.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pyro
import torch

from bayesnas.errors import UserError

CONFIG, METRICS, CHECKPOINT, POSTERIOR = (
    "config.json",
    "metrics.jsonl",
    "checkpoint.pt",
    "posterior.pt",
)
FORMAT_VERSION = 1


def versions(device: torch.device) -> dict[str, str]:
    """Versions and device recorded with every run, for provenance."""
    from bayesnas import __version__

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "bayesnas": __version__,
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "python": platform.python_version(),
        "device": f"{device} ({name or platform.machine()})",
    }


def default_run_dir(dataset: str, space: str) -> Path:
    return Path("runs") / f"{dataset}-{space}-{datetime.now():%Y%m%d-%H%M%S}"


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(fileobj)`` into a temp file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(path, lambda f: torch.save(payload, f))


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


def load_torch(path: Path, what: str) -> dict[str, Any]:
    """Load a checkpoint or posterior; UserError (never a traceback) if it is corrupt or foreign."""
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise UserError(
            f"{path} is not a readable {what} ({type(exc).__name__}): delete it or "
            "point to another run"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise UserError(f"{path} is not a bayesnas {what} of format {FORMAT_VERSION}")
    return payload


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


def check_fresh(run_dir: Path, force: bool) -> None:
    """Refuse to start over an earlier run unless forced; when forced, clear its results."""
    earlier = [p for p in run_dir.iterdir() if not p.name.startswith(".")]
    if earlier and not force:
        raise UserError(
            f"{run_dir} already holds files: resume with --resume {run_dir}, "
            "choose another --out, or pass --force to overwrite"
        )
    for path in earlier:
        if path.is_file():
            path.unlink()


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run for a whole search; a second search is refused."""
    with open(run_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another search is running in {run_dir}; wait for it or use another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_jsonl(path: Path, warn: Any = None) -> list[dict[str, Any]]:
    """JSON rows of ``path`` ([] if absent); a torn last line is skipped with ``warn(message)``."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise UserError(f"{path} line {number} is not JSON; repair or delete it") from None
            if warn:
                warn(f"skipping the truncated last line of {path}")
    return rows


def read_metrics(run_dir: Path, warn: Any = None) -> list[dict[str, Any]]:
    """The metrics lines; a torn last line (a run killed mid-write) is skipped with a warning."""
    return read_jsonl(run_dir / METRICS, warn)


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    with open(run_dir / METRICS, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_metrics(run_dir: Path, epochs_done: int) -> None:
    """Drop metric rows of epochs that a resume will run again."""
    rows = [r for r in read_metrics(run_dir) if r.get("epoch", 0) <= epochs_done]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    atomic_write_bytes(run_dir / METRICS, lambda f: f.write(text.encode()))
