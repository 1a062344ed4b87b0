"""Output that can never stop an experiment.

A closed pipe (``sharpen run … | head``), a terminal that went away or a full disk behind
a redirected stdout must not decide whether training goes on: :func:`protect_output` wraps
stdout and stderr so that a failed write silently turns that stream off, and ignores the
hang-up signal a closing terminal sends. SIGTERM becomes KeyboardInterrupt, so a terminated
experiment stops the way Ctrl-C stops it: finished runs kept, worker processes shut down.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import textwrap
from typing import Any, TextIO


class SafeStream:
    """A text stream whose writes stop (instead of raising) once the reader is gone."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self.closed_by_reader = False

    def write(self, s: str) -> int:
        if self.closed_by_reader:
            return len(s)
        try:
            return self._stream.write(s)
        except (BrokenPipeError, ConnectionResetError, OSError, ValueError):
            self._off()
            return len(s)

    def flush(self) -> None:
        if self.closed_by_reader:
            return
        try:
            self._stream.flush()
        except (BrokenPipeError, ConnectionResetError, OSError, ValueError):
            self._off()

    def _off(self) -> None:
        self.closed_by_reader = True
        try:  # point the file descriptor at /dev/null: nothing, not even the interpreter's
            # final flush, writes into the dead pipe again
            fd = self._stream.fileno()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def isatty(self) -> bool:
        try:
            return not self.closed_by_reader and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def protect_output() -> None:
    """Make stdout/stderr safe, ignore SIGHUP, and turn SIGTERM into KeyboardInterrupt."""
    if not isinstance(sys.stdout, SafeStream):
        sys.stdout = SafeStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, SafeStream):
        sys.stderr = SafeStream(sys.stderr)  # type: ignore[assignment]
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _terminate)
    except (ValueError, AttributeError):  # not the main thread, or no such signal here
        pass


def fitted(line: str, indent: str = "", hang: str = "    ") -> str:
    """``line`` as stdout shows it: on a terminal wrapped at its width between words (a
    terminal breaks mid-word), continuation lines under ``indent + hang``; whole elsewhere
    (a pipe or a log keeps one line per thing said)."""
    if not sys.stdout.isatty():
        return indent + line
    return textwrap.fill(line, shutil.get_terminal_size().columns - 1, initial_indent=indent,
                         subsequent_indent=indent + hang, break_long_words=False,
                         break_on_hyphens=False)
