"""The one exception a user sees (``sharpen.SharpenError``): it lives in its own module so
that every part of the package can raise it without importing the package's front door."""

from __future__ import annotations


class SharpenError(Exception):
    """A user-facing error: the message says what was wrong, where, and what is allowed."""
