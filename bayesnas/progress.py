"""The progress bar of a long run (search, train): steps with ETA and rate, on stderr."""

from __future__ import annotations

import sys

from tqdm import tqdm


def step_bar(total: int, initial: int, show: bool) -> tqdm:
    """A bar over ``total`` steps starting at ``initial``; redrawn at most every 30 s when
    stderr is a log file rather than a terminal, so logs stay short."""
    return tqdm(
        total=total,
        initial=initial,
        unit="step",
        disable=not show,
        dynamic_ncols=True,
        file=sys.stderr,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
    )
