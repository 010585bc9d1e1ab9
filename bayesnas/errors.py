"""The one exception type the CLI turns into a one-line message and exit status 2."""


class UserError(Exception):
    """A problem with the user's input or environment; the CLI prints it as one line and exits 2."""
