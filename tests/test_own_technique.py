"""docs/own-technique.md, done as a user would: every file of the page written out, the
package registered as `pip install` registers it, and each command printing what the page
shows (issue 34 D)."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).parents[1] / "docs" / "own-technique.md"
SHARPEN = str(Path(sys.executable).with_name("sharpen"))


def _blocks(kind: str) -> list[tuple[str, str, str]]:
    """(argument, output filter, body) of each block preceded by ``<!-- kind: argument -->``."""
    pat = (rf"<!-- {kind}: (.+?) -->\n(?:<!-- output: (.+?) -->\n)?```\w*\n(.*?)```")
    return [(m.group(1), m.group(2) or "", m.group(3))
            for m in re.finditer(pat, PAGE.read_text(), re.S)]


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("own-technique")
    for name, _, body in _blocks("file"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body)
    # what `pip install -e ./pixelnoise` leaves behind: the module on the path and the
    # distribution's entry points (pip itself would need the network for build isolation)
    site = root / "site"
    dist = site / "sharpen_pixelnoise-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sharpen-pixelnoise\n"
                                   "Version: 0.1\n")
    project = (root / "pixelnoise" / "pyproject.toml").read_text()
    (group, entry), = re.findall(r'\[project\.entry-points\."(.+?)"\]\n(.+?)\n', project)
    entry = entry.replace('"', "")  # TOML's quoted value, as entry_points.txt spells it
    (dist / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), str(root / "pixelnoise" / "src"), os.environ.get("PYTHONPATH", "")])}
    return root, env


def test_the_page_has_its_files_and_commands() -> None:
    assert {n for n, _, _ in _blocks("file")} == {"pixelnoise/src/pixelnoise.py",
                                                 "pixelnoise/pyproject.toml", "noise.toml"}
    assert len(_blocks("command")) == 3


@pytest.mark.parametrize("command, shown, expected", _blocks("command"),
                         ids=[c for c, _, _ in _blocks("command")])
def test_each_command_prints_what_the_page_shows(user, command: str, shown: str,
                                                 expected: str) -> None:
    root, env = user
    args = command.split()
    assert args[0] == "sharpen"
    r = subprocess.run([SHARPEN, *args[1:]], cwd=root, env=env, capture_output=True, text=True)
    if shown == "stderr":
        assert r.returncode == 2 and r.stderr == expected, r.stderr
        return
    assert r.returncode == 0, r.stderr
    out = r.stdout
    if shown.startswith("the entry of "):  # the key's line and its indented continuation
        key, entry = shown.removeprefix("the entry of "), []
        for line in out.splitlines():
            if line.startswith(key + " ") or (entry and line.startswith(" ")):
                entry.append(line + "\n")
            elif entry:
                break
        out = "".join(entry)
    assert out == expected


def test_a_run_applies_the_plan_it_records(user) -> None:
    root, env = user
    out = root / "run"
    r = subprocess.run([SHARPEN, "run", "noise.toml", "--out", str(out), "--quiet",
                        "--set", "epochs=2", "--set", "train_size=600", "--set", "val_size=100",
                        "--set", "test_size=200"], cwd=root, env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    rows = {arm: list(csv.DictReader((out / "runs" / arm / "seed-0" / "metrics.csv").open()))
            for arm in ("baseline", "noise")}
    assert [float(x["noise_std"]) for x in rows["noise"]] == [0.4, 0.0]
    assert "noise_std" not in rows["baseline"][0]
    # the noise reached the batches: the first epoch's training loss moved, and with
    # noise_std 0 in epoch 2 the technique idles (no draw changes other streams)
    assert rows["noise"][0]["train_loss"] != rows["baseline"][0]["train_loss"]
