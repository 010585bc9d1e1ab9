"""Progress bars of long work (search, train, prior, scoring): count, ETA and rate on stderr.

On a terminal a bar redraws in place; when stderr is a log file (nohup, SLURM, CI) each redraw,
at most every 30 s, is one plain line instead of carriage-return frames, so logs stay short and
readable while still saying how far a run is.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

LOG_INTERVAL = 30.0  # seconds between lines when stderr is not a terminal


class LogLines:
    """A log file's view of a bar: every redraw one line, no carriage returns."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def bar(total: int, desc: str | None, unit: str, show: bool = True, initial: int = 0) -> tqdm:
    """A bar over ``total`` items starting at ``initial``; off when ``show`` is False."""
    terminal = sys.stderr.isatty()
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not show,
        dynamic_ncols=terminal,
        file=sys.stderr if terminal else LogLines(sys.stderr),
        mininterval=1.0 if terminal else LOG_INTERVAL,
    )


def step_bar(total: int, initial: int, show: bool) -> tqdm:
    """The bar of a search's or training's steps."""
    return bar(total, None, "step", show, initial)
