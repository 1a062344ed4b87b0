"""The figures read back (issue 34 E): what a reader sees in curves.png and schedule.png,
from the matplotlib objects the product draws (tick labels, lines, error bars, legend
entries, texts), against the numbers computed here from the run files."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sharpen.cli import main
from sharpen.reports import curves, figures

ONE_EPOCH = """
name = "one-epoch"
runs = 3
seed = 5
dataset = "synthetic"
train_size = 100
val_size = 20
test_size = 40
model = "lenet5_dropout"
epochs = 1
batch_size = 50
optimizer = "adam"
lr = 0.003
threads = 1
stack_seeds = 3

[arms.a]

[arms.b]
blur_n = 3

[arms.boom]
optimizer = "sgd"
lr = 1e30
"""


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory) -> Path:
    """Three arms trained one epoch on 3 seeds through the CLI; every run of 'boom' diverges."""
    d = tmp_path_factory.mktemp("fig")
    (d / "one.toml").write_text(ONE_EPOCH)
    assert main(["run", str(d / "one.toml"), "--out", str(d / "r"), "--quiet",
                 "--workers", "1"]) == 0
    return d


@pytest.fixture
def drawn(monkeypatch) -> list:
    """The figures the product draws, kept open instead of written."""
    figs: list = []
    monkeypatch.setattr(curves, "save_figure", lambda fig, path: figs.append(fig) or path)
    monkeypatch.setattr(figures, "save_png", lambda fig, path, dpi=100: figs.append(fig) or path)
    return figs


def _seed_values(run: Path, arm: str, key: str) -> list[float]:
    out = []
    for seed in sorted((run / "runs" / arm).iterdir()):
        with open(seed / "metrics.csv") as f:
            out.append(float(next(csv.DictReader(f))[key]))
    return out


def test_one_epoch_runs_are_points_with_their_interval_on_an_epoch_tick(one_epoch, drawn):
    run = one_epoch / "r"
    curves.plot_curves(run, ["a", "b", "boom"])
    fig = drawn[-1]
    fig.canvas.draw()
    acc = fig.axes[0]
    ticks = [t.get_text() for t in acc.get_xticklabels()
             if acc.get_xlim()[0] <= t.get_position()[0] <= acc.get_xlim()[1]]
    assert ticks == ["1"]  # not 0.945 … 1.050
    bars = acc.containers  # one error bar per arm that has a curve
    assert len(bars) == 2
    xs = []
    for bar, arm in zip(bars, ["a", "b"]):
        v = 100 * np.array(_seed_values(run, arm, "test_acc"))
        half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
        (x,), (y,) = bar.lines[0].get_data()
        seg = bar.lines[2][0].get_segments()[0]  # the vertical bar: (x, lo), (x, hi)
        assert y == pytest.approx(v.mean())
        assert (seg[0][1], seg[1][1]) == pytest.approx(
            (max(v.mean() - half, 0), min(v.mean() + half, 100)))
        lo, hi = acc.get_ylim()
        assert lo <= seg[0][1] and seg[1][1] <= hi  # the interval is inside the panel
        xs.append(x)
    assert xs[0] != xs[1] and all(0.5 < x < 1.5 for x in xs)  # side by side, over epoch 1


def test_an_arm_whose_runs_all_diverged_is_named_in_the_figure_and_the_report(one_epoch,
                                                                                drawn):
    run = one_epoch / "r"
    curves.plot_curves(run, ["a", "b", "boom"])
    fig = drawn[-1]
    legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert legend == ["a", "b", "boom: no curve (3 diverged)"]
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "boom: no curve: all 3 runs diverged" in texts
    assert main(["report", str(run)]) == 0
    report = (run / "report.md").read_text()
    section = report.split("## Curves", 1)[1].split("\n## ", 1)[0]
    assert "- boom: no curve: all 3 runs diverged" in section


def test_loss_axes_read_plain_numbers(one_epoch, drawn):
    curves.plot_curves(one_epoch / "r", ["a", "b", "boom"])
    fig = drawn[-1]
    fig.canvas.draw()
    loss = next(ax for ax in fig.axes if ax.get_ylabel() == "training loss")
    assert loss.get_yscale() == "log"
    labels = [t for t in loss.get_yticklabels() + loss.get_yticklabels(minor=True)
              if t.get_text()]
    assert labels  # the panel is labelled
    for t in labels:  # "2.25", never "2.2×10⁰" or "$\\mathdefault{...}$"
        assert re.fullmatch(r"[0-9.e+-]+", t.get_text()), t.get_text()
        assert float(t.get_text()) == pytest.approx(t.get_position()[1])


def _runs(values: list[float]) -> list[list[dict[str, str]]]:
    """One run per value: three epochs of test accuracy, gap and loss around it."""
    return [[{"epoch": str(e), "test_acc": str(v + 0.01 * e), "gap": "0.01",
              "train_loss": str(1.0 / e)} for e in (1, 2, 3)] for v in values]


def test_identical_grid_cells_are_drawn_once_labelled_shared(tmp_path, drawn):
    same = _runs([0.80, 0.82, 0.81])
    per_arm = {"base__k-1": same, "base__k-2": [list(r) for r in same],
               "base__k-3": [list(r) for r in same], "sharp__k-1": _runs([0.7, 0.9, 0.8])}
    curves.plot_curves(tmp_path, list(per_arm), per_arm=per_arm)
    fig = drawn[-1]
    legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert legend == ["base, 3 cells (same runs)", "sharp__k-1"]
    assert len(fig.axes[0].get_lines()) == 2  # one line each, none hidden under another
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "base__k-1, base__k-2, base__k-3: the same numbers in every run" in texts
    # cells that differ in one seed's number are not merged
    per_arm["base__k-3"] = _runs([0.80, 0.82, 0.8100001])
    curves.plot_curves(tmp_path, list(per_arm), per_arm=per_arm)
    legend = [t.get_text() for leg in drawn[-1].legends for t in leg.get_texts()]
    assert legend == ["base, 2 cells (same runs)", "base__k-3", "sharp__k-1"]


def test_the_schedule_shows_every_arm_and_gives_the_last_epoch_its_width(tmp_path, drawn):
    from sharpen.experiments import load_experiment
    from sharpen.techniques import schedule_rows

    toml = tmp_path / "g.toml"
    toml.write_text(ONE_EPOCH.replace("epochs = 1", "epochs = 4").replace(
        "[arms.a]\n\n[arms.b]\nblur_n = 3\n\n[arms.boom]\noptimizer = \"sgd\"\nlr = 1e30\n",
        'grid = { blur_stages = [1, 2, 3] }\n\n[arms.base]\n\n[arms.sharp]\n'
        'blur_n = "stages"\nstage_epochs = 1\n'))
    exp = load_experiment(str(toml))
    plans = {a: schedule_rows(c) for a, c in exp.arms.items()}
    figures.schedule_plot(plans, tmp_path / "schedule.png")
    fig = drawn[-1]
    panels = {ax.get_title().split(" ")[0]: ax for ax in fig.axes}
    blur = panels["blur_n"]
    assert blur.get_title() == "blur_n (3 of 6 arms; the others have none)"
    assert [t.get_text() for t in blur.get_legend().get_texts()] == [
        "sharp__blur_stages-1", "sharp__blur_stages-2", "sharp__blur_stages-3"]
    for line, cell in zip(blur.get_lines(), ("sharp__blur_stages-1", "sharp__blur_stages-2",
                                             "sharp__blur_stages-3")):
        want = [r["blur_n"] for r in plans[cell]]
        x, y = line.get_data()
        assert list(x) == [0.5, 1.5, 2.5, 3.5, 4.5]  # epoch e from e − ½ to e + ½
        assert list(y) == want + [want[-1]]
    assert blur.get_xlim()[1] >= 4.5  # the last epoch is inside the frame, with its width
    lr = panels["lr"]
    assert [t.get_text() for t in lr.get_legend().get_texts()] == ["every arm (6)"]
    assert len(lr.get_lines()) == 1


def test_a_run_of_some_arms_draws_the_schedule_of_every_arm_of_the_directory(one_epoch,
                                                                              drawn):
    """`--arms a` (as one look of --until-decided runs one cell) still draws b's plan."""
    run = one_epoch / "r"
    assert main(["run", str(one_epoch / "one.toml"), "--out", str(run), "--arms", "a",
                 "--quiet", "--workers", "1"]) == 0
    sched = [f for f in drawn if any(ax.get_title().startswith("blur_n") for ax in f.axes)]
    assert sched, "no schedule drawn"
    blur = next(ax for ax in sched[-1].axes if ax.get_title().startswith("blur_n"))
    assert [t.get_text() for t in blur.get_legend().get_texts()] == ["b"]


def _write_run(root: Path, arm: str, seed: int, status: str, accs: list[float]) -> None:
    d = root / "runs" / arm / f"seed-{seed}"
    d.mkdir(parents=True)
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "test_acc", "gap", "train_loss"])
        w.writerows([e, a, 0.01, 1.0 / e] for e, a in enumerate(accs, 1))
    (d / "result.json").write_text(json.dumps({"arm": arm, "seed": seed, "status": status,
                                               "epochs_done": len(accs)}))


def test_a_run_that_diverged_leaves_its_arm_drawn_over_every_epoch_and_is_said(tmp_path,
                                                                                drawn):
    """Seed 2 of 'a' diverged in epoch 3 (two rows): the other seeds' curve keeps its 4
    epochs (the old figure cut the band to the epochs every run had) and the figure and
    the report's notes say what is left out."""
    for s, accs in enumerate([[0.5, 0.6, 0.7, 0.8], [0.52, 0.61, 0.69, 0.82]]):
        _write_run(tmp_path, "a", s, "ok", accs)
    _write_run(tmp_path, "a", 2, "diverged", [0.5, 0.55])
    curves.plot_curves(tmp_path, ["a"], keys=("test_acc",))
    (line,) = drawn[-1].axes[0].get_lines()
    x, y = line.get_data()
    assert list(x) == [1, 2, 3, 4]
    assert list(y) == pytest.approx([51, 60.5, 69.5, 81])  # the mean of the 2 ok runs, in %
    note = "a: the mean of its 2 runs that ended ok; 1 diverged not drawn"
    assert note in " ".join(t.get_text() for t in drawn[-1].texts)
    assert curves.curve_notes(curves.curve_data(tmp_path), ["a"]) == [note]


def test_sharpen_report_redraws_the_schedule_from_the_directory(one_epoch, drawn):
    """A schedule.png a run drew before (one look's cell alone) is drawn again by `sharpen
    report` from config.json: every arm, the figure of a run directory's files alone."""
    run = one_epoch / "r"
    (run / "schedule.png").write_bytes(b"stale")
    assert main(["report", str(run)]) == 0
    sched = [f for f in drawn if any(ax.get_title().startswith("blur_n") for ax in f.axes)]
    assert len(sched) == 1
    titles = [ax.get_title() for ax in sched[0].axes]
    assert titles == ["blur_n (1 of 3 arms; the others have none)", "lr"]
    lr = sched[0].axes[1]
    assert [t.get_text() for t in lr.get_legend().get_texts()] == ["a, b", "boom"]


def test_a_saved_arm_that_no_longer_validates_is_left_out_of_the_schedule_and_said(
        one_epoch, tmp_path, drawn, capsys):
    from sharpen.experiments.runner import redraw_schedule

    cfg = json.loads((one_epoch / "r" / "config.json").read_text())
    cfg["arms"]["boom"]["epochs"] = "ten"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "schedule.png").write_bytes(b"old")
    assert redraw_schedule(tmp_path) == tmp_path / "schedule.png"
    assert "arm 'boom' left out: its saved configuration does not validate" in \
        capsys.readouterr().err
    lr = drawn[-1].axes[-1]
    assert [t.get_text() for t in lr.get_legend().get_texts()] == ["every arm (2)"]  # a, b
