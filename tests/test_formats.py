"""Data formats byte by byte: IDX and CIFAR writers against the specs, the restricted
unpickler's one allowed call, and tar extraction's every branch (written against the
mutants mutmut found alive; docs/mutation.md)."""

from __future__ import annotations

import codecs
import gzip
import io
import os
import pickle
import re
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sharpen import SharpenError
from sharpen.data.formats import (
    read_cifar_batch,
    read_idx,
    safe_extract,
    safe_unpickle,
    write_cifar_batch,
    write_idx,
)

# the IDX type codes of the spec (yann.lecun.com/exdb/mnist): 0x08 ubyte ... 0x0E double,
# multi-byte values big-endian
SPEC = [(np.uint8, 0x08, "u1"), (np.int8, 0x09, "i1"), (np.int16, 0x0B, ">i2"),
        (np.int32, 0x0C, ">i4"), (np.float32, 0x0D, ">f4"), (np.float64, 0x0E, ">f8")]


@pytest.mark.parametrize("dtype,code,big", SPEC)
def test_write_idx_every_type_code_big_endian_by_hand(tmp_path, dtype, code, big):
    a = (np.arange(12).reshape(3, 4) - 5).astype(dtype)
    write_idx(tmp_path / "a.idx", a, compress=False)
    raw = (tmp_path / "a.idx").read_bytes()
    want = bytes([0, 0, code, 2]) + struct.pack(">II", 3, 4) + a.astype(big).tobytes()
    assert raw == want
    back = read_idx(tmp_path / "a.idx")
    assert back.dtype == np.dtype(dtype) and np.array_equal(back, a)


def test_write_idx_compresses_reproducibly_and_refuses_other_dtypes(tmp_path):
    a = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", a)
    first = (tmp_path / "a.gz").read_bytes()
    assert first[:2] == b"\x1f\x8b" and first[4:8] == b"\x00\x00\x00\x00"  # gzip, mtime 0
    assert gzip.decompress(first) == bytes([0, 0, 8, 1, 0, 0, 0, 10]) + a.tobytes()
    write_idx(tmp_path / "b.gz", a)
    assert (tmp_path / "b.gz").read_bytes() == first  # same bytes every time: md5s stay put
    with pytest.raises(SharpenError, match="write_idx: dtype int64 has no IDX type code"):
        write_idx(tmp_path / "c", np.arange(3, dtype=np.int64))


def test_write_cifar_batch_is_the_official_layout(tmp_path):
    images = np.arange(2 * 3 * 32 * 32).reshape(2, 3, 32, 32) % 256  # int64 in, uint8 out
    write_cifar_batch(tmp_path / "b", images, [3, 7])
    raw = (tmp_path / "b").read_bytes()
    assert raw[:2] == b"\x80\x02"  # protocol 2, as the official Python-2 era files
    d = pickle.loads(raw, encoding="bytes")
    assert d[b"labels"] == [3, 7] and d[b"data"].dtype == np.uint8
    assert d[b"data"].shape == (2, 3072) and d[b"data"].flags.c_contiguous
    assert np.array_equal(d[b"data"][1], images[1].reshape(-1).astype(np.uint8))
    x, y = read_cifar_batch(tmp_path / "b", b"labels")
    assert np.array_equal(x, images.astype(np.uint8)) and list(y) == [3, 7]


class _Encode:
    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return codecs.encode, self.args


@pytest.mark.parametrize("encoding", ["latin1", "latin-1"])
def test_the_unpickler_allows_latin1_bytes_literals_only(tmp_path, encoding):
    p = tmp_path / "ok.pkl"
    p.write_bytes(pickle.dumps({b"k": _Encode("\xe9t\xe9", encoding)}, protocol=2))
    assert safe_unpickle(p) == {b"k": b"\xe9t\xe9"}


@pytest.mark.parametrize("args", [("abc", "utf-8"), (b"abc", "latin1"), (5, "latin1"),
                                  ("abc", "rot13")])
def test_the_unpickler_refuses_any_other_encode_call(tmp_path, args):
    p = tmp_path / "bad.pkl"
    p.write_bytes(pickle.dumps([_Encode(*args)], protocol=2))
    with pytest.raises(SharpenError, match=r"unsafe pickle, not loaded \(refused _codecs.encode "
                                           r"call that is not a latin-1 bytes literal\)"):
        safe_unpickle(p)


def _tar(path: Path, entries: list[tuple[str, bytes | None]]) -> Path:
    """entries: (name, content), content None for a directory; in this order."""
    with tarfile.open(path, "w:gz") as t:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.size = len(content)
                t.addfile(info, io.BytesIO(content))
    return path


def test_safe_extract_builds_missing_parents_in_any_member_order(tmp_path):
    big = os.urandom((1 << 20) + 3)  # more than one read chunk
    arc = _tar(tmp_path / "a.tar.gz", [
        ("top/deep/er/f.bin", big),  # no directory members before it
        ("top/deep", None),  # a directory listed after a file inside it
        ("lone/a/b", None),  # a directory whose parents are not members
        ("second.txt", b"two"),
    ])
    dest = tmp_path / "out" / "not" / "yet"  # made as needed
    safe_extract(arc, dest)
    assert (dest / "top/deep/er/f.bin").read_bytes() == big
    assert (dest / "lone/a/b").is_dir() and (dest / "second.txt").read_bytes() == b"two"
    assert not list(dest.glob(".extract-*"))  # the staging folder is removed


def test_safe_extract_keeps_what_exists_and_moves_the_rest(tmp_path):
    kept = [f"k{i}.txt" for i in range(7)]  # whatever order the folder lists them in
    arc = _tar(tmp_path / "a.tar.gz", [("second.txt", b"2"), *((k, b"new") for k in kept)])
    dest = tmp_path / "out"
    dest.mkdir()
    for k in kept:
        (dest / k).write_bytes(b"old")
    stale = dest / f".extract-{os.getpid()}"  # left by an earlier crash of this very pid
    stale.mkdir()
    safe_extract(arc, dest)
    assert all((dest / k).read_bytes() == b"old" for k in kept)
    assert (dest / "second.txt").read_bytes() == b"2"
    assert not stale.exists()


def test_safe_extract_refuses_a_backslash_rooted_name(tmp_path):
    arc = _tar(tmp_path / "a.tar.gz", [("\\evil.txt", b"x")])
    with pytest.raises(SharpenError, match=r"refused unsafe member path '\\\\evil.txt'"):
        safe_extract(arc, tmp_path)


def test_safe_extract_names_a_truncated_archive_and_an_unwritable_destination(tmp_path):
    arc = _tar(tmp_path / "a.tar.gz", [("f.bin", os.urandom(50_000))])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(arc.read_bytes()[:20_000])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(SharpenError, match=r"cut.tar.gz: truncated or corrupt archive \("):
        safe_extract(cut, dest)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SharpenError, match=r"cannot extract .*a.tar.gz into .*file: Not a directory"):
        safe_extract(arc, blocker)


@pytest.mark.parametrize("make", [np.asfortranarray, lambda a: a.astype(">i4"),
                                  lambda a: a.astype("<f8"), lambda a: a.astype(np.uint8)])
def test_arrays_in_any_layout_and_byte_order_load_equal(tmp_path, make):
    a = make(np.arange(12).reshape(3, 4))
    p = tmp_path / "a.pkl"
    p.write_bytes(pickle.dumps({b"x": a, b"t": (a, [1, 2])}, protocol=2))
    d = safe_unpickle(p)
    assert np.array_equal(d[b"x"], a) and d[b"x"].dtype.newbyteorder("=") == a.dtype.newbyteorder("=")
    assert isinstance(d[b"t"], tuple) and np.array_equal(d[b"t"][0], a) and d[b"t"][1] == [1, 2]


@pytest.mark.parametrize("obj,match", [
    (np.dtype("int32"), "stray numpy object outside an array"),
    (np.array([b"ab", b"c"], dtype=object), "refused dtype 'O8': only plain numeric arrays"),
])
def test_numpy_objects_that_are_not_plain_arrays_are_refused(tmp_path, obj, match):
    p = tmp_path / "a.pkl"
    p.write_bytes(pickle.dumps([obj], protocol=2))
    with pytest.raises(SharpenError, match=match):
        safe_unpickle(p)


def test_a_pickle_with_a_persistent_id_is_refused(tmp_path):
    buf = io.BytesIO()

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "ext-1" if obj == "outside" else None

    P(buf, protocol=2).dump([1, "outside"])
    p = tmp_path / "pid.pkl"
    p.write_bytes(buf.getvalue())
    with pytest.raises(SharpenError, match=r"unsafe pickle, not loaded \(refused persistent id: "
                                           r"CIFAR files hold only plain data\)"):
        safe_unpickle(p)


MAGIC = r"wrong IDX magic number {}; expected 0000 then a type code in \['0x8', '0x9', '0xb', " \
        r"'0xc', '0xd', '0xe'\] and the number of dimensions$"


@pytest.mark.parametrize("raw,shown", [
    (b"", "(empty)"), (b"\x00\x00\x08", "000008"), (b"\x01\x00\x08\x01\x00\x00\x00\x00", "01000801"),
    (b"\x00\x01\x08\x01\x00\x00\x00\x00", "00010801"), (b"\x00\x00\x07\x01\x00\x00\x00\x00", "00000701"),
])
def test_read_idx_magic_checks_each_byte_and_shows_four(tmp_path, raw, shown):
    p = tmp_path / "x.idx"
    p.write_bytes(raw)
    with pytest.raises(SharpenError, match=f"x.idx: {MAGIC.format(re.escape(shown))}"):
        read_idx(p)


def test_read_idx_header_and_body_sizes(tmp_path):
    p = tmp_path / "x.idx"
    p.write_bytes(b"\x00\x00\x08\x00\x07")  # zero dimensions: one value
    assert read_idx(p).tolist() == 7 and read_idx(p).shape == ()
    p.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")  # one axis of length 0: header only
    assert read_idx(p).shape == (0,)
    p.write_bytes(b"\x00\x00\x08\x02\x00\x00\x00\x02")  # the second size is missing
    with pytest.raises(SharpenError, match=r"x.idx: IDX header is truncated$"):
        read_idx(p)
    p.write_bytes(b"\x00\x00\x0c\x01\x00\x00\x00\x03" + b"\x00" * 10)  # int32 × 3 needs 12
    with pytest.raises(SharpenError, match=r"x.idx: IDX body has 10 bytes, shape \(3,\) needs 12; "
                                           r"the file is truncated or corrupt$"):
        read_idx(p)


def _batch(tmp_path: Path, d) -> Path:
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps(d, protocol=2))
    return p


def test_read_cifar_batch_says_what_it_found(tmp_path):
    with pytest.raises(SharpenError, match=r"not a CIFAR batch \(need b'data' and b'labels', got "
                                           r"list\)$"):
        read_cifar_batch(_batch(tmp_path, [1, 2]), b"labels")
    for d in ({b"data": b"x"}, {b"labels": [1]}):
        with pytest.raises(SharpenError, match=rf"got \[{re.escape(repr(next(iter(d))))}\]\)$"):
            read_cifar_batch(_batch(tmp_path, d), b"labels")
    raw = bytes(range(256)) * 24  # two images as raw bytes (not an array)
    x, y = read_cifar_batch(_batch(tmp_path, {b"data": raw, b"labels": [1, 2]}), b"labels")
    assert x.dtype == np.uint8 and x.shape == (2, 3, 32, 32) and y.dtype == np.int64
    assert x.reshape(-1).tolist() == list(raw)
    with pytest.raises(SharpenError, match=r": 3 labels but 6144 bytes of pixels \(need 3072 per "
                                           r"image\)$"):
        read_cifar_batch(_batch(tmp_path, {b"data": raw, b"labels": [1, 2, 3]}), b"labels")


def test_unreadable_files_and_non_archives_are_named(tmp_path):
    d = tmp_path / "adir"
    d.mkdir()
    with pytest.raises(SharpenError, match=r"^cannot read .*adir: Is a directory$"):
        read_idx(d)
    with pytest.raises(SharpenError, match=r"^cannot read .*adir: Is a directory$"):
        safe_unpickle(d)
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not an archive at all" * 20)
    with pytest.raises(SharpenError, match=r"junk.tar.gz: truncated or corrupt archive \("):
        safe_extract(junk, tmp_path / "out")
    p = tmp_path / "s.pkl"
    p.write_bytes(pickle.dumps([np.dtype("int32")], protocol=2))
    with pytest.raises(SharpenError, match=r"\(stray numpy object outside an array\)$"):
        safe_unpickle(p)


def test_a_four_byte_idx_file_is_a_scalar_without_its_value(tmp_path):
    p = tmp_path / "x.idx"
    p.write_bytes(b"\x00\x00\x08\x00")  # valid magic, zero dimensions, the one value missing
    with pytest.raises(SharpenError, match=r"IDX body has 0 bytes, shape \(\) needs 1;"):
        read_idx(p)


def test_read_cifar_batch_converts_other_integer_arrays(tmp_path):
    data = (np.arange(2 * 3072) % 256).astype(np.int16)
    x, y = read_cifar_batch(_batch(tmp_path, {b"data": data, b"labels": np.array([4, 5], np.int32)}),
                            b"labels")
    assert x.dtype == np.uint8 and y.dtype == np.int64 and y.tolist() == [4, 5]
    assert np.array_equal(x.reshape(-1), data.astype(np.uint8))


def test_every_catalog_format_with_files_has_its_reader():
    from sharpen.data.catalog import CATALOG
    from sharpen.data.formats import READERS

    for spec in CATALOG.values():
        assert spec.format in READERS or (not spec.files and spec.format.startswith(
            "synthetic")), f"{spec.name}: no reader for format {spec.format!r}"
