"""Exceptions the CLI turns into one line: user errors (exit 2) and interruptions (exit 130)."""


class Interrupted(Exception):
    """Ctrl-C during a search: a checkpoint was written and the run can be resumed."""


class UserError(Exception):
    """A problem with the user's input or environment; the CLI prints it as one line and exits 2."""
