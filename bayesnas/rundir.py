"""The run directory: config.json, metrics.jsonl, checkpoint.pt, posterior.pt, and a lock.

Every write is atomic (temp file, fsync, rename), so a run killed at any instant leaves either
the old file or the new one, never a torn one; a full disk is one line naming the file and the
space it needs, and leaves the old file as it was. Files are written with the permissions the
umask allows, as ``open`` would. The ``.pt`` files are read as data only (``weights_only``):
a file that holds anything but tensors and plain Python data is refused, never run.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import pickle
import platform
import shutil
import sys
import tempfile
import warnings
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
STEPS, SAMPLES = "steps.jsonl", "samples.jsonl"
FORMAT_VERSION = 1
# what a search, `sample` and `plot` write into a run directory (``--force`` removes these)
RUN_FILES = {CONFIG, METRICS, CHECKPOINT, POSTERIOR, STEPS, SAMPLES, ".lock"}
RUN_FOLDERS = {"export", "plots", ".export-staging"}
RUN_FILES |= {"ensemble.json", "lookup.json"}  # `bayesnas ensemble` and `bayesnas lookup`
RUN_FOLDERS |= {"export-ensemble", ".export-ensemble-staging"}  # `export --ensemble`
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def note(message: str) -> None:
    """Tell the user something that is not an error: one line on stderr."""
    print(f"bayesnas: note: {message}", file=sys.stderr, flush=True)


def versions(device: torch.device) -> dict[str, str]:
    """Versions and device recorded with every run, for provenance."""
    from bayesnas import __version__

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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


class DiskFull(UserError):
    """A write that found no space left: the one-line error names the file and what it needs."""

    def __init__(self, message: str, path: Path, needed: int):
        super().__init__(message)
        self.path, self.needed = path, needed


def disk_full(
    path: Path,
    needed: int,
    exc: OSError | None = None,
    then: str = "free some space and run the command again",
) -> DiskFull:
    """The one-line error for a write that found no space: the path, what it needs, what is free."""
    try:
        free = f", {_size(shutil.disk_usage(Path(path).parent).free)} free"
    except OSError:
        free = ""
    why = exc.strerror if exc is not None and exc.strerror else "no space left on device"
    return DiskFull(
        f"cannot write {path}: {why[0].lower() + why[1:]} (it needs {_size(needed)}{free}); {then}",
        path,
        needed,
    )


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in _DISK_FULL


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to the new file ``path`` (fsynced, umask honoured); a full disk removes
    the partial file and raises the one-line error."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    except BaseException as exc:
        os.close(fd)
        Path(path).unlink(missing_ok=True)
        if isinstance(exc, OSError) and is_disk_full(exc):
            raise disk_full(path, len(data), exc) from None
        raise
    os.close(fd)


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(fileobj)``, then put what it wrote at ``path`` atomically: into a temp file
    beside it, fsynced, renamed over it. A full disk leaves ``path`` as it was (UserError)."""
    buffer = io.BytesIO()
    write(buffer)
    data = buffer.getvalue()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a run is read by others too
        _write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and is_disk_full(exc):
            raise disk_full(path, len(data), exc) from None
        raise


def save_torch(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(path, lambda f: torch.save(payload, f))


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


def _legacy_globals() -> list[Any]:
    """Plain data that bayesnas 0.1 pickled as classes: the torch version string and NumPy's
    RNG state (a uint32 array). Allowed so that its runs still load; nothing else is."""
    import numpy as np
    from torch.torch_version import TorchVersion

    core = getattr(np, "_core", None) or np.core
    return [TorchVersion, core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype("u4"))]


# what torch's weights-only unpickler says when a file asks for more than data (as opposed to
# a file that is merely corrupt): a global outside the allow-list, a call or object it refuses
_UNSAFE_SIGNS = ("GLOBAL", "allowlisted", "Trying to call reduce")


def load_torch(path: Path, what: str) -> dict[str, Any]:
    """Load a checkpoint or posterior as data only (``weights_only``): tensors and plain Python
    values. A file that asks for anything else (such as a pickled ``__reduce__`` that would run
    code) is refused unread; a corrupt or foreign one is a UserError too, never a traceback."""
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:  # a corrupt file makes torch warn too; the one-line error below says it all
        with torch.serialization.safe_globals(_legacy_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if any(sign in str(exc) for sign in _UNSAFE_SIGNS):
            raise UnsafeFile(path, what) from None
        raise _unreadable(path, what, exc) from None
    except Exception as exc:
        raise _unreadable(path, what, exc) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise UserError(f"{path} is not a bayesnas {what} of format {FORMAT_VERSION}")
    return payload


def _unreadable(path: Path, what: str, exc: Exception) -> UserError:
    return UserError(
        f"{path} is not a readable {what} ({type(exc).__name__}): delete it or point to another run"
    )


class UnsafeFile(UserError):
    """A .pt file that holds more than data: it was not loaded, as loading it could run code."""

    def __init__(self, path: Path, what: str):
        try:
            allowed = {f"{g.__module__}.{g.__qualname__}" for g in _legacy_globals()}
            names = [
                n
                for n in torch.serialization.get_unsafe_globals_in_checkpoint(path)
                if n not in allowed
            ]
        except Exception:  # the scan reads opcodes only; any failure just loses the detail
            names = []
        found = f" (it asks for {', '.join(names[:3])})" if names else ""
        super().__init__(
            f"{path} holds objects other than tensors and plain data{found}, so it was not "
            f"loaded: it could run code. Use a {what} from a source you trust, or start over"
        )


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


def _ours(path: Path) -> bool:
    """Whether ``path`` is something bayesnas writes into a run directory."""
    name = path.name
    if path.is_dir() and not path.is_symlink():
        return name in RUN_FOLDERS or name.startswith(".plots-")
    return (
        name in RUN_FILES
        or (name.startswith("best_of_k-") and name.endswith(".json"))
        or (name.startswith(".") and name.endswith(".tmp"))
        or name == ".write-test"
    )


def check_fresh(run_dir: Path, force: bool) -> None:
    """Refuse to start over an earlier run unless forced; when forced, remove all of it
    (export/, plots/, samples, everything), so that nothing of it is shipped as the new run's.
    Anything bayesnas did not write is never deleted: then even --force refuses, naming it."""
    earlier = sorted(p for p in run_dir.iterdir() if p.name != ".lock")
    visible = [p for p in earlier if not p.name.startswith(".")]
    if visible and not force:
        raise UserError(
            f"{run_dir} already holds files: resume with --resume {run_dir}, "
            "choose another --out, or pass --force to overwrite"
        )
    foreign = [p.name + ("/" if p.is_dir() else "") for p in earlier if not _ours(p)]
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


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True


def repair_tail(path: Path, warn: Any = note) -> None:
    """Make an append-only JSON-lines file end on a complete line before more is appended: a
    torn last line (a write cut short) is cut off, with ``warn(message)``; a complete JSON row
    that only lacks its newline gets it. Without this the torn line would end up mid-file."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    start = data.rfind(b"\n") + 1
    last = data[start:]
    if _is_json(last):
        with open(path, "ab") as f:
            f.write(b"\n")
        return
    os.truncate(path, start)
    if warn:
        warn(f"removed a torn last line ({len(last)} bytes) of {path}: an interrupted write")


def append_jsonl(path: Path, rows: list[dict[str, Any]], warn: Any = note) -> None:
    """Append rows to a JSON-lines file, after repairing its tail; a failed write (a full disk)
    is undone, so the file never ends in a torn line of ours."""
    repair_tail(path, warn)
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    size = os.fstat(fd).st_size
    try:
        _write_all(fd, data)
        os.fsync(fd)
    except OSError as exc:
        os.ftruncate(fd, size)
        if is_disk_full(exc):
            raise disk_full(path, len(data), exc) from None
        raise
    finally:
        os.close(fd)


def read_metrics(run_dir: Path, warn: Any = None) -> list[dict[str, Any]]:
    """The metrics lines; a torn last line (a run killed mid-write) is skipped with a warning."""
    return read_jsonl(run_dir / METRICS, warn)


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    append_jsonl(run_dir / METRICS, [row])


def truncate_jsonl(path: Path, keep: Any, warn: Any = note) -> None:
    """Keep only the rows for which ``keep(row)`` holds (a torn last line is dropped with a
    note); the file is rewritten atomically, and only when something changes."""
    if not path.is_file():
        return
    torn: list[str] = []
    rows = read_jsonl(path, torn.append)
    kept = [r for r in rows if keep(r)]
    if len(kept) == len(rows) and not torn:
        return
    if torn and warn:
        warn(f"removed a torn last line of {path}, left by an interrupted write")
    text = "".join(json.dumps(r) + "\n" for r in kept)
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


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
