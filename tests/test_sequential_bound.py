"""A sequential design owns its seeds and its directory (issue 32's hostile pass): seeds
outside its looks (more of them, or others through `seed`) are refused; a design starts
only on a directory with no results seen; a refused start leaves no record behind;
`report --claims-from` adds no seeds and is not refused as if it did; a best/worst claim
without `than` counts the file's arms that --arms left out as rivals. Through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sharpen.cli import main

BASE = """
name = "h"
runs = 2
seed = 1
dataset = "synthetic"
train_size = 60
test_size = 40
model = "lenet5_dropout"
epochs = 1
batch_size = 30
optimizer = "adam"
lr = 0.003
threads = 1

[arms.zeta]

[arms.alpha]
lr = 0.001

[[claims]]
claim = "alpha beats zeta"
arm = "alpha"
op = ">"
than = "zeta"
"""


def _file(tmp_path: Path, text: str = BASE, name: str = "h.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _seq(p: Path, out: Path, *extra: str) -> int:
    return main(["run", str(p), "--out", str(out), "--until-decided", "--spend-anyway", "--step", "2",
                 "--max-runs", "4", "--quiet", "--workers", "1", *extra])


def _files(d: Path) -> dict[Path, bytes]:
    return {f: f.read_bytes() for f in d.rglob("*") if f.is_file()}


def test_a_design_binds_its_seeds_not_only_how_many(tmp_path, capsys):
    """`--set seed=50` trained seeds 50-53 into a finished design, judged at fixed n with
    no word; a plain run with another seed did the same."""
    p, out = _file(tmp_path), tmp_path / "s1"
    assert _seq(p, out) == 0
    before = _files(out)
    capsys.readouterr()
    assert _seq(p, out, "--set", "seed=50") == 2
    err = capsys.readouterr().err
    assert "seed (the first seed, `seed`: the looks' seeds are seed, seed + 1, …): 1 → 50" in err
    assert main(["run", str(p), "--out", str(out), "--set", "seed=50", "--runs", "4",
                 "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "seed 50 (the design's seeds start at 1) would add seed(s) 50, 51, 52, 53 after " \
           "its looks" in err
    assert _files(out) == before
    # the design's own seeds (trained 2 together, as its looks did): resuming is fine
    assert main(["run", str(p), "--out", str(out), "--runs", "4", "--set", "stack_seeds=2",
                 "--quiet", "--workers", "1"]) == 0
    # report --claims-from adds no seeds: a file asking for 10 runs is not refused for them
    more = _file(tmp_path, BASE.replace("runs = 2", "runs = 10"), "ten.toml")
    assert main(["report", str(out), "--claims-from", str(more)]) == 0


def test_a_design_starts_only_where_no_result_was_seen(tmp_path, capsys):
    """A design started on a directory whose 4 seeds per arm were already reported at fixed
    n counted them in its first look: optional stopping. It is refused, and writes nothing."""
    p, out = _file(tmp_path), tmp_path / "pre"
    assert main(["run", str(p), "--out", str(out), "--runs", "4", "--quiet",
                 "--workers", "1"]) == 0
    before = _files(out)
    capsys.readouterr()
    assert _seq(p, out) == 2
    err = capsys.readouterr().err
    assert f"{out} already holds 8 finished run(s) of this experiment, judged at fixed n" in err
    assert _files(out) == before and not (out / "sequential.json").exists()


def test_a_design_refused_at_its_first_look_leaves_no_record(tmp_path, capsys):
    """The first look's `sharpen run` refused (another configuration) after the design's
    record was written: the record stayed, and bound the directory to a design that never
    looked (every later run refused, "its looks ran 0 seeds per arm")."""
    p, out = _file(tmp_path), tmp_path / "d"
    assert main(["run", str(p), "--out", str(out), "--runs", "1", "--quiet",
                 "--workers", "1"]) == 0
    shutil.rmtree(out / "runs")  # a directory whose runs are gone: none seen, config kept
    capsys.readouterr()
    assert _seq(p, out, "--set", "epochs=2") == 2
    assert "holds runs of a different configuration" in capsys.readouterr().err
    assert not (out / "sequential.json").exists()
    assert main(["run", str(p), "--out", str(out), "--runs", "2", "--quiet",
                 "--workers", "1"]) == 0


BEST = BASE.split("[[claims]]")[0] + """
[arms.strong]
lr = 0.01

[[claims]]
claim = "zeta is best"
arm = "zeta"
op = "best"
"""


def test_best_without_than_counts_the_files_arms_that_did_not_run(tmp_path, capsys):
    """`--arms zeta,alpha` left `strong` out and "zeta is best" was judged against alpha
    alone (supported, where against every arm it was not): the file's arm is a rival, and
    without its runs the claim is untested, named."""
    p, out = _file(tmp_path, BEST, "best.toml"), tmp_path / "b"
    assert main(["run", str(p), "--out", str(out), "--arms", "zeta,alpha", "--quiet",
                 "--workers", "1"]) == 0
    (claim,) = json.loads((out / "summary.json").read_text())["claims"]
    assert claim["verdict"] == "untested (no test_acc for strong)"
    assert "**untested (no test_acc for strong)**" in (out / "report.md").read_text()
    # with every arm run the claim is judged against both rivals
    assert main(["run", str(p), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    (claim,) = json.loads((out / "summary.json").read_text())["claims"]
    assert not claim["verdict"].startswith("untested")


@pytest.mark.parametrize("grid", [False, True])
def test_until_decided_refuses_claims_naming_an_arm_the_run_leaves_out(tmp_path, capsys, grid):
    """`--arms alpha` with "alpha beats zeta" spent the whole budget judging nothing, and on
    a grid the summary read "not supported in 2 of 2 cells"; a best claim without `than`
    has every arm of the file as a rival. Refused before anything is written."""
    text = BASE + '\n[[claims]]\nclaim = "zeta is best"\narm = "zeta"\nop = "best"\n'
    if grid:
        text = text.replace('threads = 1\n', 'threads = 1\ngrid = { epochs = [1, 2] }\n')
    p = _file(tmp_path, text)
    for arms, claim, missing in [("alpha", "alpha beats zeta", "zeta"),
                                 ("zeta", "alpha beats zeta", "alpha")]:
        out = tmp_path / f"r-{arms}"
        capsys.readouterr()
        assert _seq(p, out, "--arms", arms) == 2
        err = capsys.readouterr().err
        assert f"claim {claim!r} names arm {missing!r}, which this run leaves out" in err, err
        assert not out.exists()
    # the best claim alone, run with one of its rivals left out
    p = _file(tmp_path, text.split("[[claims]]")[0] + "[[claims]]" + text.split("[[claims]]")[2],
              "best.toml")
    assert _seq(p, tmp_path / "b", "--arms", "zeta") == 2
    assert "claim 'zeta is best' names arm 'alpha', which this run leaves out" \
        in capsys.readouterr().err
