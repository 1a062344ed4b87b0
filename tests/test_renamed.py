""""Seed" means a random seed only; the five source reports are papers (issue 24, item 4).
Files and run directories written with the old key names still load, with one notice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sharpen import SharpenError, renamed
from sharpen.experiments import load_experiment, run_experiment
from sharpen.reports import write_report

RESULTS = Path(__file__).parents[1] / "docs" / "results"

OLD = '''name = "old"
seed_paper = "004 (an old file)"
dataset = "synthetic"
train_size = 100
test_size = 50
epochs = 1
runs = 2

[arms.a]
[arms.b]
lr = 0.05

[[claims]]
claim = "b beats a"
seed_says = "+1 pp"
arm = "b"
op = ">"
than = "a"
'''


@pytest.fixture(autouse=True)
def _fresh_notices(monkeypatch):
    monkeypatch.setattr(renamed, "_told", set())


def test_an_old_experiment_file_loads_under_the_new_names_with_one_notice(tmp_path, capsys):
    p = tmp_path / "old.toml"
    p.write_text(OLD)
    exp = load_experiment(str(p))
    assert exp.paper == "004 (an old file)" and exp.claims[0].paper_says == "+1 pp"
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"sharpen: {p}: key 'seed_paper' is now called 'paper'; read as paper (rename it to "
        "silence this notice)",
        f"sharpen: {p}: key 'claims.seed_says' is now called 'claims.paper_says'; read as "
        "claims.paper_says (rename it to silence this notice)"]
    load_experiment(str(p))  # once per file and key in a process
    assert capsys.readouterr().err == ""
    # the new names load silently; both at once is refused by name
    p.write_text(OLD.replace("seed_paper", "paper").replace("seed_says", "paper_says"))
    assert load_experiment(str(p)).paper == "004 (an old file)"
    assert capsys.readouterr().err == ""
    p.write_text(OLD.replace('seed_paper = "004 (an old file)"',
                             'seed_paper = "x"\npaper = "y"'))
    with pytest.raises(SharpenError, match=r"unknown key 'seed_paper'"):
        load_experiment(str(p))


def test_a_run_directory_written_with_the_old_keys_resumes_and_rebuilds(tmp_path, capsys):
    # a directory as sharpen wrote it before the renames: the stored folder, its config.json
    # put back to the old keys (the folder itself was re-judged since, under the new ones)
    stored = RESULTS / "pairs-sublenet-quick"
    src = tmp_path / "old"
    shutil.copytree(stored, src)
    cfg = json.loads((src / "config.json").read_text())
    cfg["seed_paper"] = cfg.pop("paper")
    for c in cfg["claims"]:
        c["seed_says"] = c.pop("paper_says")
    (src / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    d = tmp_path / "r"
    shutil.copytree(src, d)
    exp = load_experiment(str(d))
    assert exp.paper.startswith("004") and any(c.paper_says for c in exp.claims)
    assert "key 'seed_paper' is now called 'paper'" in capsys.readouterr().err
    before = (d / "results.csv").read_bytes()
    out, results = run_experiment(exp, d, quiet=True)  # every run finished: nothing trains
    assert all(r["status"] == "ok" for r in results)
    # the same rows (in the experiment's arm order: the folder was made arm by arm)
    assert sorted((d / "results.csv").read_text().splitlines()) == \
        sorted(before.decode().splitlines())
    report = (d / "report.md").read_text()  # rewritten by the resume (one more invocation)
    fresh = tmp_path / "rebuilt"
    shutil.copytree(src, fresh)
    write_report(fresh)  # a rebuild gives the stored report, byte for byte
    for f in ("report.md", "summary.json", "table.csv"):
        assert (fresh / f).read_bytes() == (stored / f).read_bytes(), f
    assert "the paper says" in report and "the seed says" not in report
    assert "Reproduces: 004" in report
