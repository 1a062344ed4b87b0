"""Readers and writers for the official on-disk formats: IDX (.gz) and CIFAR python pickles.

CIFAR pickles are read with a restricted unpickler that builds only plain containers and
scalars; any attempt to import or call something is refused before it runs.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import struct
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sharpen.errors import SharpenError

Reader = Callable[[list[Path]], tuple[np.ndarray, np.ndarray]]

# IDX type codes -> numpy dtypes (big-endian as the format requires)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_maybe_gzip(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SharpenError(f"cannot read {path}: {exc.strerror}") from exc
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise SharpenError(
            f"{path} is a truncated or corrupt gzip file ({exc}); delete it and fetch it again"
        ) from exc


def read_idx(path: str | os.PathLike[str], expect_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array."""
    path = Path(path)
    data = _read_maybe_gzip(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise SharpenError(
            f"{path}: wrong IDX magic number {data[:4].hex() or '(empty)'}; expected 0000 then "
            f"a type code in {sorted(hex(k) for k in _IDX_DTYPES)} and the number of dimensions"
        )
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    if expect_ndim is not None and ndim != expect_ndim:
        raise SharpenError(f"{path}: IDX file has {ndim} dimensions, expected {expect_ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise SharpenError(f"{path}: IDX header is truncated")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(shape)) if ndim else 1
    if len(data) - header != count * dtype.itemsize:
        raise SharpenError(
            f"{path}: IDX body has {len(data) - header} bytes, shape {shape} needs "
            f"{count * dtype.itemsize}; the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray, compress: bool = True) -> None:
    """Write ``array`` in IDX format (gzip-compressed when ``compress``)."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder(">") if np.dtype(v).itemsize > 1 else np.dtype(v): k
             for k, v in _IDX_DTYPES.items()}
    dt = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if dt not in codes:
        raise SharpenError(f"write_idx: dtype {array.dtype} has no IDX type code")
    header = bytes([0, 0, codes[dt], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = header + array.astype(dt).tobytes()
    Path(path).write_bytes(gzip.compress(body, mtime=0) if compress else body)


class _Refused(pickle.UnpicklingError):
    pass


# The official CIFAR pickles store b'data' as a numpy array. We never let numpy (or anything)
# run on the pickle's say-so: these stand-ins only record the array's shape, dtype and raw
# bytes, and the array is rebuilt afterwards with np.frombuffer from a whitelisted dtype.
_PLAIN_DTYPES = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8", "b1"}


class _NDArrayMarker:
    pass


class _DTypeStub:
    def __init__(self, name: str):
        self.name, self.order = name, "|"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.order = state[1]


class _ArrayStub:
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _ArrayStub:
    if cls is not _NDArrayMarker:
        raise _Refused("refused array reconstruction of a non-ndarray type")
    return _ArrayStub()


def _dtype(name: Any, align: Any = False, copy: Any = False) -> _DTypeStub:
    if isinstance(name, bytes):
        name = name.decode("latin1")
    if not isinstance(name, str) or name not in _PLAIN_DTYPES:
        raise _Refused(f"refused dtype {name!r}: only plain numeric arrays are allowed")
    return _DTypeStub(name)


def _latin1(text: Any, encoding: Any = "latin1") -> bytes:
    # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("refused _codecs.encode call that is not a latin-1 bytes literal")
    return text.encode("latin1")


_ALLOWED = {
    ("_codecs", "encode"): _latin1,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDArrayMarker,
    ("numpy", "dtype"): _dtype,
}


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _ArrayStub):
        st = obj.state
        if not (isinstance(st, tuple) and len(st) == 5 and isinstance(st[2], _DTypeStub)
                and isinstance(st[4], (bytes, bytearray))):
            raise _Refused("malformed array state")
        _, shape, dt, fortran, raw = st
        order = st[2].order if st[2].order in "<>" else "="
        arr = np.frombuffer(raw, dtype=np.dtype(order + dt.name if order != "=" else dt.name))
        return arr.reshape(tuple(shape), order="F" if fortran else "C")
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialise(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v) for v in obj)
    if isinstance(obj, (_DTypeStub, _NDArrayMarker)) or obj is _NDArrayMarker:
        raise _Refused("stray numpy object outside an array")
    return obj


class _RestrictedUnpickler(pickle.Unpickler):
    """Plain containers and scalars, plus numpy arrays rebuilt from raw bytes; nothing runs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise _Refused(
            f"refused to load global {module}.{name}: CIFAR files hold only plain data"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("refused persistent id: CIFAR files hold only plain data")


def safe_unpickle(path: str | os.PathLike[str]) -> Any:
    """Load a pickle that may contain only plain containers, bytes, str and numbers."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _materialise(_RestrictedUnpickler(f, encoding="bytes").load())
    except _Refused as exc:
        raise SharpenError(f"{path}: unsafe pickle, not loaded ({exc})") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, struct.error, IndexError) as exc:
        raise SharpenError(f"{path}: truncated or corrupt pickle ({exc})") from exc
    except OSError as exc:
        raise SharpenError(f"cannot read {path}: {exc.strerror}") from exc


def read_cifar_batch(path: str | os.PathLike[str], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python-version batch -> (uint8 N×3×32×32, int64 N)."""
    d = safe_unpickle(path)
    if not isinstance(d, dict) or b"data" not in d or label_key not in d:
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise SharpenError(f"{path}: not a CIFAR batch (need b'data' and {label_key!r}, got {keys})")
    data = d[b"data"]
    if isinstance(data, (bytes, bytearray)):
        data = np.frombuffer(data, dtype=np.uint8)
    data = np.asarray(data, dtype=np.uint8)
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.size != labels.size * 3072:
        raise SharpenError(
            f"{path}: {labels.size} labels but {data.size} bytes of pixels (need 3072 per image)"
        )
    return data.reshape(-1, 3, 32, 32), labels


def write_cifar_batch(path: str | os.PathLike[str], images: np.ndarray, labels: np.ndarray,
                      label_key: bytes = b"labels", extra: dict[bytes, Any] | None = None) -> None:
    """Write a batch in the official layout (protocol-2 pickle of a dict with byte keys)."""
    # like the official files: b'data' is a uint8 numpy array N×3072, labels a list of int
    data = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    d: dict[bytes, Any] = {b"data": data, label_key: [int(v) for v in labels]}
    d.update(extra or {})
    Path(path).write_bytes(pickle.dumps(d, protocol=2))


def safe_extract(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Extract a tar archive, refusing absolute paths, ``..``, links and device files."""
    archive, dest = Path(archive), Path(dest)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                p = Path(m.name)
                if p.is_absolute() or ".." in p.parts or m.name.startswith(("/", "\\")):
                    raise SharpenError(f"{archive}: refused unsafe member path {m.name!r}")
                if not (m.isfile() or m.isdir()):
                    raise SharpenError(
                        f"{archive}: refused member {m.name!r} (links and devices are not allowed)")
            tmp = dest / f".extract-{os.getpid()}"
            tmp.mkdir(parents=True, exist_ok=True)
            for m in members:
                if m.isdir():
                    (tmp / m.name).mkdir(parents=True, exist_ok=True)
                    continue
                target = tmp / m.name
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None
                with open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, (EOFError,)) and exc.errno:
            raise SharpenError(f"cannot extract {archive} into {dest}: {exc.strerror}") from exc
        raise SharpenError(f"{archive}: truncated or corrupt archive ({exc})") from exc
    # move top-level entries into place only once everything extracted cleanly
    for entry in tmp.iterdir():
        final = dest / entry.name
        if final.exists():
            continue
        os.replace(entry, final)
    _rmtree(tmp)


def _rmtree(p: Path) -> None:
    shutil.rmtree(p, ignore_errors=True)


def _idx_pair(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """An image idx file and its label idx file (MNIST, Fashion-MNIST): N×1×H×W, N."""
    images, labels = read_idx(paths[0], expect_ndim=3), read_idx(paths[1], expect_ndim=1)
    if len(images) != len(labels):
        raise SharpenError(f"{paths[0]} has {len(images)} images but {paths[1]} has "
                           f"{len(labels)} labels")
    return images[:, None], labels


def _cifar(label_key: bytes) -> Reader:
    def read(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        parts = [read_cifar_batch(p, label_key) for p in paths]
        return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])

    return read


# a catalog spec's ``format`` -> the reader of its files (in the order the spec lists them for
# one split), giving uint8 images N×C×H×W and integer labels N. A new file format is one entry.
READERS: dict[str, Reader] = {
    "idx": _idx_pair,
    "bundled": _idx_pair,  # the offline MNIST sample inside the package, in idx files
    "cifar10": _cifar(b"labels"),
    "cifar100": _cifar(b"fine_labels"),
}


__all__ = ["read_idx", "write_idx", "safe_unpickle", "read_cifar_batch", "write_cifar_batch",
           "safe_extract", "READERS", "Reader"]
