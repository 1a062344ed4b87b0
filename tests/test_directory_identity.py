"""A run directory is one experiment, its arms in the experiment file's order: the file's
first arm is the baseline (unless ``baseline`` says otherwise) in every table, claim,
comparison and rebuilt report; a different experiment run into it is refused, naming what
differs, while the same experiment grown with --runs or --arms resumes. Through the command
line, as a user meets it."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from sharpen.cli import main

# arms deliberately not in alphabetical order: plain is the file's first (the baseline)
ORDER = """
name = "order"
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
stack_seeds = 1

[arms.plain]

[arms.inverted]
lr = 0.001

[arms.middle]
lr = 0.002

[profiles.other]
epochs = 1

[[claims]]
claim = "middle beats plain"
arm = "middle"
op = ">"
than = "plain"
"""


@pytest.fixture(autouse=True)
def no_curves(monkeypatch):
    """The figures cost seconds per run; their arm order is the list given (tested here)."""
    from sharpen.reports import report

    drawn: list[list[str]] = []
    monkeypatch.setattr(report, "plot_curves", lambda run_dir, arms, **k: drawn.append(arms))
    return drawn


def run(args: list[str]) -> int:
    """``sharpen run ARGS --quiet`` in this process (a worker pool costs seconds to start)."""
    return main(["run", *args, "--quiet", "--workers", "1"])


def _file(tmp_path: Path, text: str = ORDER, name: str = "order.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _arms_of_table(text: str, section: str) -> list[str]:
    """The first column of the Markdown table under ``section`` in a report."""
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    return [line.split("|")[1].strip() for line in body.splitlines()
            if line.startswith("| ") and not line.startswith("| arm ")
            and not line.startswith("| claim ")]


def _check_file_order(out: Path, arms: list[str]) -> None:
    report = (out / "report.md").read_text()
    base = arms[0]
    assert f"## Paired comparisons with `{base}` (test acc" in report
    assert _arms_of_table(report, "## Results (final epoch)") == arms
    assert _arms_of_table(report, "## Paired comparisons with") == arms[1:]
    with open(out / "table.csv") as f:
        assert [r["arm"] for r in csv.DictReader(f)] == arms
    summary = json.loads((out / "summary.json").read_text())
    assert [r["arm"] for r in summary["arms"]] == arms


def test_the_files_first_arm_is_the_baseline_everywhere(tmp_path, capsys, no_curves):
    out = tmp_path / "r"
    assert run([str(_file(tmp_path)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out  # the terminal's table: its first column, then Δ
    table = printed.split("\narm ", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[0].split()[-3:] == ["Δ", "vs", "plain"]
    assert [line.split()[0] for line in table[1:]] == ["plain", "inverted", "middle"]
    _check_file_order(out, ["plain", "inverted", "middle"])
    assert json.loads((out / "config.json").read_text())["arm_order"] == \
        ["plain", "inverted", "middle"]
    assert no_curves[-1] == ["plain", "inverted", "middle"]  # the curves' legend order
    report = (out / "report.md").read_text()
    assert "middle − plain" in report  # the claim paired with the file's baseline

    # `sharpen report DIR` rebuilds the same report from the files alone
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == report
    # `sharpen compare DIR`: rows in the file's order, each compared with the baseline
    capsys.readouterr()
    assert main(["compare", str(out), "--format", "csv"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [r["row"] for r in rows] == ["plain", "inverted", "middle"]
    assert [r["vs"] for r in rows] == ["", "plain", "plain"]

    # a directory made before the order was recorded (sorted arms, no arm_order): the order
    # is read back from the experiment file copied into it; without one the report says the
    # arms are alphabetical and that the baseline is the alphabetically first, never silently
    cfg = json.loads((out / "config.json").read_text())
    del cfg["arm_order"]
    (out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == report

    (out / "experiment.toml").unlink()
    assert main(["report", str(out)]) == 0
    old = (out / "report.md").read_text()
    _check_file_order(out, ["inverted", "middle", "plain"])
    assert ("The arms are listed alphabetically: this directory was made before sharpen "
            "recorded the order of the arms in the experiment file" in old)
    assert "The baseline `inverted` is the alphabetically first arm with results" in old
    assert main(["report", str(out), "--baseline", "plain"]) == 0
    old = (out / "report.md").read_text()
    assert "## Paired comparisons with `plain`" in old and "The baseline `" not in old
    # run again with its file (nothing left to train): the file's order is recorded again
    assert run([str(_file(tmp_path)), "--out", str(out)]) == 0
    _check_file_order(out, ["plain", "inverted", "middle"])


def test_compare_pairs_with_the_directorys_baseline_key(tmp_path, capsys):
    out = tmp_path / "r"
    text = ORDER.replace('name = "order"', 'name = "order"\nbaseline = "middle"')
    assert run([str(_file(tmp_path, text)), "--out", str(out),
                 "--arms", "middle,plain"]) == 0
    assert "## Paired comparisons with `middle`" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["compare", str(out), "--format", "csv"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [r["row"] for r in rows] == ["plain", "middle"]
    assert [r["vs"] for r in rows] == ["middle", ""]


def test_arms_added_later_take_their_place_in_the_files_order(tmp_path):
    p, out = _file(tmp_path), tmp_path / "r"
    assert run([str(p), "--out", str(out), "--arms", "middle,inverted"]) == 0
    # plain not run yet: the first arm that ran is compared with
    assert "## Paired comparisons with `inverted`" in (out / "report.md").read_text()
    assert run([str(p), "--out", str(out), "--arms", "plain"]) == 0
    _check_file_order(out, ["plain", "inverted", "middle"])
    with open(out / "results.csv") as f:
        assert list(dict.fromkeys(r["arm"] for r in csv.DictReader(f))) == \
            ["plain", "inverted", "middle"]
    # `sharpen run DIR` (the experiment read back from config.json) keeps the recorded order
    (out / "report.md").unlink()
    assert run([str(out)]) == 0
    _check_file_order(out, ["plain", "inverted", "middle"])


def test_a_grids_cells_follow_the_files_arms_then_the_grids_values(tmp_path):
    text = ORDER.replace("runs = 2", 'runs = 1\ngrid = { batch_size = [30, 20] }') \
        .split("[[claims]]")[0]
    out = tmp_path / "g"
    assert run([str(_file(tmp_path, text)), "--out", str(out),
                 "--arms", "plain,inverted"]) == 0
    head = (out / "report.md").read_text().split("## Grid", 1)[1].splitlines()[2]
    assert [c.strip() for c in head.split("|")[1:-1]] == ["batch_size", "plain", "inverted"]
    rows = [r.split("|")[1].strip() for r in
            (out / "report.md").read_text().split("## Grid", 1)[1].splitlines()[4:6]]
    assert rows == ["30", "20"]  # the grid's order, not the text's


# --- a different experiment is refused -------------------------------------------------------


def test_a_different_experiment_into_a_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "q"
    assert run(["quickstart", "--profile", "smoke", "--set", "dataset=synthetic",
                 "--out", str(out)]) == 0
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert run(["sharpening-mnist", "--profile", "smoke", "--set", "dataset=synthetic",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"sharpen: error: {out} holds runs of another experiment (experiment "
                   "'quickstart' → 'sharpening-mnist'); use another --out for this one (or "
                   f"`sharpen run {out}` to continue that one)\n")
    # nor with --until-decided, whose design would be written into the directory first
    assert run(["sharpening-mnist", "--profile", "smoke", "--set", "dataset=synthetic",
                "--out", str(out), "--until-decided"]) == 2
    assert "holds runs of another experiment (experiment 'quickstart' → 'sharpening-mnist')" \
        in capsys.readouterr().err
    # nothing changed: quickstart's claim and name are still there
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["name"] == "quickstart" and len(cfg["claims"]) == 1

    # a changed profile (same arms, same keys) is refused, named
    assert run(["quickstart", "--profile", "quick", "--set", "dataset=synthetic",
                 "--set", "epochs=1", "--set", "runs=1", "--set", "train_size=600",
                 "--set", "val_size=100", "--set", "test_size=500", "--out", str(out),
                 "--quiet", "--workers", "1"]) == 2
    assert "another experiment (profile 'smoke' → 'quick')" in capsys.readouterr().err
    # the same experiment grown with more seeds resumes, and `sharpen run DIR` continues it
    assert run(["quickstart", "--profile", "smoke", "--set", "dataset=synthetic",
                 "--runs", "2", "--out", str(out)]) == 0
    assert run([str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["seeds"] == [0, 1]


def test_the_same_file_under_another_name_or_grid_is_another_experiment(tmp_path, capsys):
    p, out = _file(tmp_path, ORDER.replace("runs = 2", "runs = 1")), tmp_path / "r"
    assert run([str(p), "--out", str(out), "--arms", "plain"]) == 0
    renamed = _file(tmp_path, ORDER.replace('name = "order"', 'name = "other"'), "b.toml")
    assert run([str(renamed), "--out", str(out), "--arms", "inverted"]) == 2
    assert "another experiment (experiment 'order' → 'other')" in capsys.readouterr().err
    assert run([str(p), "--out", str(out), "--arms", "inverted",
                 "--axis", "batch_size=30,20"]) == 2
    assert re.search(r"another experiment \(grid axes \(no grid\) → \['batch_size'\]\)",
                     capsys.readouterr().err)
    assert run([str(p), "--out", str(out), "--profile", "other",
                 "--arms", "inverted"]) == 2
    assert "another experiment (profile (none) → 'other')" in capsys.readouterr().err
    # the same experiment grown by an arm joins it
    assert run([str(p), "--out", str(out), "--arms", "inverted"]) == 0
    _check_file_order(out, ["plain", "inverted"])


def test_the_published_table_lists_arms_in_the_files_order_not_config_jsons_sorted_one():
    """config.json stores ``published`` with sorted keys; the table follows the arms' rows."""
    from sharpen.reports.claims import Runs
    from sharpen.reports.tables import published_table

    published = {"alpha": {"test_acc": 0.9}, "zeta": {"test_acc": 0.8}, "mid": {"test_acc": 0.7}}
    rows = [{"arm": "zeta"}, {"arm": "mid"}, {"arm": "alpha"}]
    md = published_table(published, rows, Runs(), 0.01)
    listed = [ln.split("|")[1].strip() for ln in md.splitlines()[2:]]
    assert listed == ["zeta", "mid", "alpha"]


def test_an_arm_renamed_in_the_file_is_refused_not_kept_as_a_rival(tmp_path, capsys):
    """Renaming an arm between runs left the old arm's runs in the directory: in every table
    and as a rival of best/worst claims that no longer name it. The run is refused, naming
    the arm; narrowing with --arms (the arm still in the file) is not that."""
    text = ORDER.replace("runs = 2", "runs = 1").split("[[claims]]")[0]
    p, out = _file(tmp_path, text), tmp_path / "r"
    assert run([str(p), "--out", str(out), "--arms", "plain,inverted"]) == 0
    files = {f: f.read_bytes() for f in out.rglob("*") if f.is_file()}
    capsys.readouterr()
    renamed = _file(tmp_path, text.replace("[arms.inverted]", "[arms.flipped]"))
    assert run([str(renamed), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} holds runs of arm 'inverted' that {renamed} no longer has (its arms: " \
           "plain, flipped, middle)" in err and "use another --out" in err
    assert {f: f.read_bytes() for f in out.rglob("*") if f.is_file()} == files
    # the file as it was, narrowed to one arm, resumes; `sharpen run DIR` continues it
    _file(tmp_path, text)
    assert run([str(p), "--out", str(out), "--arms", "middle"]) == 0
    assert run([str(out)]) == 0
    _check_file_order(out, ["plain", "inverted", "middle"])


def test_arms_on_a_run_directory_is_refused_naming_arms_not_a_set(tmp_path, capsys):
    """It said `--set "select_arms='plain'": on a run directory give a run key=value`: a
    flag the user never gave."""
    from sharpen.io import atomic_write_json

    out = tmp_path / "r"
    atomic_write_json(out / "config.json", {
        "name": "order", "profile": "", "runs": 1, "seed": 0, "arm_order": ["plain", "b"],
        "arms": {"plain": {"dataset": "synthetic", "epochs": 1},
                 "b": {"dataset": "synthetic", "epochs": 1, "lr": 0.01}}})
    assert run([str(out), "--arms", "plain"]) == 2
    err = capsys.readouterr().err
    assert err == (f"sharpen: error: --arms plain: a run directory runs all its arms; to run "
                   f"only some, give its experiment file: sharpen run EXPERIMENT --arms plain "
                   f"--out {out}\n")
    assert not (out / "runs").exists()


def _finished_dir(tmp_path):
    """A finished one-arm, two-seed directory of a tiny experiment, and its file."""
    exp = tmp_path / "e.toml"
    exp.write_text('name = "e"\ndataset = "synthetic"\ntrain_size = 100\ntest_size = 50\n'
                   'epochs = 1\nruns = 2\n[arms.a]\n')
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 0
    return exp, out


@pytest.mark.parametrize("damage", ["missing", "cut", "foreign"])
def test_finished_runs_without_a_readable_configuration_are_refused_in_one_line(
        tmp_path, capsys, damage):
    """Without config.json nothing says which configuration trained the runs: a changed
    file resumed into them would pool runs of two configurations (a hostile pass found it)."""
    exp, out = _finished_dir(tmp_path)
    cfg = out / "config.json"
    if damage == "missing":
        cfg.unlink()
    elif damage == "cut":
        cfg.write_text(cfg.read_text()[:100])
    else:
        cfg.write_text('{"x": 1}')
    shutil.rmtree(out / "runs" / "a" / "seed-1")
    exp.write_text(exp.read_text().replace("epochs = 1", "epochs = 1\nlr = 0.02"))
    capsys.readouterr()
    assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sharpen: error: ") and "config.json" in err[0]
    assert not (out / "runs" / "a" / "seed-1").exists()  # nothing trained into it


@pytest.mark.parametrize("text", ['[{"id": "x"', '{"a": 1}'])
def test_an_unreadable_history_is_one_line_naming_it(tmp_path, capsys, text):
    exp, out = _finished_dir(tmp_path)
    (out / "history.json").write_text(text)
    capsys.readouterr()
    assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "history.json" in err[0] and "move it aside" in err[0]
