"""Files sharpen writes get the mode any program's new file gets (0666 less the umask): the
atomic writers' temporary files were 0600, so a run directory shared with a group (or copied
to a web server) held results only their writer could read."""

from __future__ import annotations

import os
import stat

import pytest

from sharpen.io import atomic_write_csv, atomic_write_json, atomic_write_npz


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_files_get_0666_less_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        atomic_write_csv(tmp_path / "b.csv", [{"x": 1}], ["x"])
        atomic_write_npz(tmp_path / "c.npz", {"x": [1, 2]})
        with open(tmp_path / "plain", "w") as f:  # what open() gives, for comparison
            f.write("")
    finally:
        os.umask(old)
    want = 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == want
    for name in ("a.json", "b.csv", "c.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.csv", "c.npz", "plain"]
