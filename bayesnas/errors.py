"""Exceptions the CLI turns into one line: user errors (exit 2) and interruptions (exit 128 +
the signal's number: 130 for Ctrl-C, 143 for SIGTERM)."""

from __future__ import annotations

import signal


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during a search: a checkpoint was written and the run can be resumed.

    ``args`` are (run directory, signal number); the run directory is None when a second signal
    stopped the search at once, before its checkpoint was written.
    """

    @property
    def run_dir(self):
        return self.args[0] if self.args else None

    @property
    def signum(self) -> int:
        return self.args[1] if len(self.args) > 1 else signal.SIGINT

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


class UserError(Exception):
    """A problem with the user's input or environment; the CLI prints it as one line and exits 2."""
