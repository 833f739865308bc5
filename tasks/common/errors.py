"""The one domain error type: the CLI turns it into a readable message and exit code 1."""


class RadflowError(Exception):
    """A user-facing failure (bad configuration, missing input, refused model) — never a traceback."""
