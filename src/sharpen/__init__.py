"""sharpen: honest, repeatable experiments on how CNN image classifiers are trained."""

__version__ = "0.1.0"


class SharpenError(Exception):
    """A user-facing error: the message says what was wrong, where, and what is allowed."""
