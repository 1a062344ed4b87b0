"""Crash-safe file output: every file is either its old complete version or its new one."""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tomllib
import yaml

from sharpen.errors import SharpenError


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600: a run directory shared with a group, or served, would
        # hold files only their writer can read; give it the mode open() would (0666 − umask)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES):
            raise SharpenError(f"cannot write {path}: {exc.strerror}") from exc
        raise


def _umask() -> int:
    """The process's umask, read from /proc (setting it to read it, os.umask's only way,
    would race with other threads' files); 0o022 where /proc does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_csv(
    path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]], columns: Sequence[str]
) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: _fmt(row.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def atomic_write_npz(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> None:
    """Numpy arrays as an uncompressed .npz (``numpy.load`` reads it) with fixed zip
    timestamps, so the same arrays give the same bytes."""
    import zipfile

    import numpy as np

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(arrays):
            arr = io.BytesIO()
            np.save(arr, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, arr.getvalue())
    atomic_write_bytes(path, buf.getvalue())


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v)  # round-trips exactly, so re-reading gives the same numbers
    return "" if v is None else v


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class DirLock:
    """An exclusive, non-blocking lock on a run directory, held on its lock file ``path``
    (:meth:`sharpen.rundir.RunDir.lock` names it); released when the process dies."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> DirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SharpenError(
                f"run directory {self.path.parent} is in use by another sharpen process; "
                "wait for it to finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def check_writable(directory: str | os.PathLike[str]) -> None:
    """Fail before training starts if the output folder cannot take files."""
    d = Path(directory)
    if d.exists() and not d.is_dir():  # mkdir says only "File exists"
        raise SharpenError(f"output directory {d} is a file, not a directory; give another "
                           "--out")
    try:
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(d / ".write-test", b"ok")
        (d / ".write-test").unlink()
    except OSError as exc:
        raise SharpenError(f"output directory {d} is not writable: {exc.strerror}") from exc


def read_file(path: Path) -> dict[str, Any]:
    """An experiment file (TOML, or YAML by its suffix) as a dict; a syntax error names the
    file and the line."""
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        if "line" not in msg:  # tomllib says only "end of document" there
            msg += f" (at line {text.count(chr(10)) + 1})"
        raise SharpenError(f"{path}: TOML syntax error: {msg}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SharpenError(f"{path}: YAML syntax error{where}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise SharpenError(f"{path}: the top level must be a table of keys, got {type(data).__name__}")
    return data
