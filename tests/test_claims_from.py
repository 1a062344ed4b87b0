"""`sharpen report DIR --claims-from EXPERIMENT` adopts the claims of the directory's own
experiment only: another experiment's claims and published numbers (same arm names, another
protocol) would be judged on these runs without a word (issue 32, item 2's spirit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sharpen.cli import main
from tests.test_published import _rundir as _published_rundir

ACCS = {"a": [0.90, 0.91, 0.92, 0.93], "b": [0.80, 0.81, 0.80, 0.82]}


def _rundir(root: Path, name: str) -> Path:
    return _published_rundir(root, ACCS, name=name)


CLAIM = ('[[claims]]\nclaim = "a beats b"\narm = "a"\nop = ">"\nthan = "b"\n'
         "[published.a]\ntest_acc = 0.95\n")


def _exp(path: Path, name: str) -> Path:
    path.write_text(f'name = "{name}"\ndataset = "synthetic"\nepochs = 2\n'
                    f"[arms.a]\n[arms.b]\n{CLAIM}")
    return path


def test_claims_from_another_experiment_is_refused_and_the_directory_untouched(tmp_path,
                                                                               capsys):
    d = _rundir(tmp_path / "d", "mine")
    before = (d / "config.json").read_bytes()
    exp = _exp(tmp_path / "other.toml", "another-experiment")
    assert main(["report", str(d), "--claims-from", str(exp)]) != 0
    err = capsys.readouterr().err
    assert "another experiment" in err and "'mine'" in err and "'another-experiment'" in err
    assert (d / "config.json").read_bytes() == before  # nothing adopted
    assert not (d / "report.md").exists() or "a beats b" not in (d / "report.md").read_text()


def test_claims_from_the_directorys_own_experiment_are_adopted(tmp_path, capsys):
    d = _rundir(tmp_path / "d", "mine")
    assert main(["report", str(d), "--claims-from", str(_exp(tmp_path / "m.toml", "mine"))]) == 0
    capsys.readouterr()
    cfg = json.loads((d / "config.json").read_text())
    assert [c["claim"] for c in cfg["claims"]] == ["a beats b"]
    assert "| a beats b |" in (d / "report.md").read_text()


@pytest.mark.parametrize("value,metric", [("nan", "test_acc"), ("nan", "test_loss"),
                                          ("inf", "test_loss"), ("-inf", "test_loss")])
def test_a_claim_value_that_is_not_a_number_is_refused_naming_the_field(tmp_path, capsys,
                                                                        value, metric):
    # value = nan passed validation, was written into config.json, and every later
    # `sharpen report DIR` then died in statistics.stdev (a traceback, the directory stuck)
    d = _rundir(tmp_path / "d", "mine")
    before = (d / "config.json").read_bytes()
    exp = tmp_path / "m.toml"
    exp.write_text('name = "mine"\ndataset = "synthetic"\nepochs = 2\n[arms.a]\n[arms.b]\n'
                   f'[[claims]]\nclaim = "a above a bar"\narm = "a"\nop = ">"\n'
                   f'metric = "{metric}"\nvalue = {value}\n')
    assert main(["report", str(d), "--claims-from", str(exp)]) != 0
    err = capsys.readouterr().err
    assert "claims[0].value" in err and "is not a number" in err and "Traceback" not in err
    assert (d / "config.json").read_bytes() == before
