"""Atomic, fsynced writes and append-only JSON lines, with a one-line error for a full disk.

Every write goes to a temp file beside its target, is fsynced and renamed over it, so a process
killed at any instant leaves either the old file or the new one, never a torn one; a full disk
is one line naming the file and the space it needs, and leaves the old file as it was. Files
are written with the permissions the umask allows, as ``open`` would.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from bayesnas.errors import UserError

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def note(message: str) -> None:
    """Tell the user something that is not an error: one line on stderr."""
    print(f"bayesnas: note: {message}", file=sys.stderr, flush=True)


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


def read_jsonl(path: Path, warn: Any = None) -> list[dict[str, Any]]:
    """JSON rows of ``path`` ([] if absent); a torn last line is skipped with ``warn(message)``.
    A line that is not UTF-8 JSON, other than the last, is a UserError naming it."""
    if not path.is_file():
        return []
    lines = path.read_bytes().splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line.decode()))
        except ValueError:  # not UTF-8 (UnicodeDecodeError) or not JSON (JSONDecodeError)
            if number != len(lines):
                raise UserError(
                    f"{path} line {number} is not JSON in UTF-8; repair or delete that line"
                ) from None
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
