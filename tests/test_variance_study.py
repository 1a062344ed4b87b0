"""The variance study (issue 35 item 2): `sharpen variance EXP --arm A` trains one arm with one
source of randomness following the seed at a time, and all together, and reports each
source's sd with its chi-square interval, its share of the all-sources variance and the
test-set sampling sd.

The estimators are checked against the direct formulas (scipy.stats.chi2, scipy.stats.f) and
by simulation with fixed seeds: studies of simulated runs whose accuracy is a sum of known
per-source components, each drawn from its stream's seed (pinned or following the run seed,
as the study's arms set them), so the coverage of the per-source intervals is measured
against a known truth (acceptance: at least 93 %)."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sharpen.reports import variance as v

# --- the estimators against their formulas ---------------------------------------------------


def test_sd_interval_is_the_chi_square_interval_of_the_sample_sd():
    xs = [0.9612, 0.9587, 0.9650, 0.9601, 0.9633, 0.9570, 0.9644, 0.9619]
    n, s = len(xs), float(np.std(xs, ddof=1))
    got, lo, hi = v.sd_interval(xs)
    assert got == pytest.approx(s, rel=1e-12)
    assert lo == pytest.approx(math.sqrt((n - 1) * s**2 / stats.chi2.ppf(0.975, n - 1)), rel=1e-12)
    assert hi == pytest.approx(math.sqrt((n - 1) * s**2 / stats.chi2.ppf(0.025, n - 1)), rel=1e-12)
    assert lo < s < hi
    # one run: no spread, no interval (never [x, x])
    assert v.sd_interval([0.95]) == (0.0, None, None)


def test_ratio_interval_is_the_f_interval_of_two_variances():
    r, lo, hi = v.ratio_interval(0.003, 10, 0.005, 12)
    assert r == pytest.approx(0.36)
    assert lo == pytest.approx(0.36 / stats.f.ppf(0.975, 9, 11))
    assert hi == pytest.approx(0.36 / stats.f.ppf(0.025, 9, 11))
    assert v.ratio_interval(0.003, 1, 0.005, 12)[1:] == (None, None)


def test_binomial_sd_is_the_ideal_bootstrap_sd_of_one_runs_accuracy():
    rng = np.random.default_rng(0)
    correct = (rng.random(2000) < 0.93).astype(float)  # one run's 0/1 per test image
    p, n = correct.mean(), len(correct)
    assert v.binomial_sd(p, n) == pytest.approx(math.sqrt(p * (1 - p) / n))
    boot = correct[rng.integers(0, n, size=(4000, n))].mean(axis=1)  # resample the images
    assert np.std(boot) == pytest.approx(v.binomial_sd(p, n), rel=0.03)
    with pytest.raises(ValueError, match="0 images"):
        v.binomial_sd(0.9, 0)


# --- simulated studies with known components ----------------------------------------------------

SIGMA = {"init": 0.004, "data_order": 0.002, "split": 0.006, "dropout": 0.001}  # fractions


def simulate(sims: int, n: int, sigma: dict[str, float], seed: int = 0
             ) -> list[dict[str, np.ndarray]]:
    """``sims`` studies of ``n`` seeds: run accuracy = 0.95 + Σ_k σ_k z_k(seed of stream k),
    where stream k draws from the run seed in the arm of source k (and in ``all``) and from a
    pinned seed elsewhere. Per study: arm → the n seeds' accuracies."""
    rng = np.random.default_rng(seed)
    names = list(sigma)
    z_seed = rng.standard_normal((sims, len(names), n))  # stream k at run seed s
    z_pin = rng.standard_normal((sims, len(names)))  # stream k at the pinned seed
    sd = np.array([sigma[k] for k in names])
    out = []
    for i in range(sims):
        arms = {}
        for src in [*names, v.ALL]:
            follows = np.array([src in (k, v.ALL) for k in names])
            z = np.where(follows[:, None], z_seed[i], z_pin[i][:, None])  # streams × seeds
            arms[src] = 0.95 + sd @ z
        out.append(arms)
    return out


def test_per_source_sd_intervals_cover_the_known_truth_by_simulation():
    """1,500 simulated studies of 10 seeds: every source's chi-square interval and the
    all-sources one cover the truth at 93-97 %; each share's F interval at 93 % or more (a
    source and `all` share that source's draws: conservative, most for the largest one)."""
    truth = {**SIGMA, v.ALL: math.sqrt(sum(s**2 for s in SIGMA.values()))}
    hits = {k: 0 for k in truth}
    share_hits = {k: 0 for k in SIGMA}
    studies = simulate(1500, 10, SIGMA, seed=35)
    for arms in studies:
        for r in v.spreads(arms):
            hits[r.source] += r.sd_lo <= truth[r.source] <= r.sd_hi
            if r.source != v.ALL:
                share_hits[r.source] += (r.share_lo <= truth[r.source]**2 / truth[v.ALL]**2
                                         <= r.share_hi)
    cover = {k: h / len(studies) for k, h in hits.items()}
    share = {k: h / len(studies) for k, h in share_hits.items()}
    assert all(0.93 <= c <= 0.97 for c in cover.values()), cover
    assert all(c >= 0.93 for c in share.values()), share


def test_a_source_dominates_only_when_its_interval_separates_it():
    """Equal components: a source is called dominant in at most 5 % of studies (the
    Bonferroni F comparisons' level); one component 5× the others at 10 seeds: named in most."""
    equal = {"init": 0.003, "data_order": 0.003, "split": 0.003}
    called = sum(v.dominant(v.spreads(a)).source is not None for a in simulate(600, 10, equal, 1))
    assert called / 600 <= 0.05
    strong = {"init": 0.001, "data_order": 0.001, "split": 0.005}
    named = [v.dominant(v.spreads(a)) for a in simulate(300, 10, strong, 2)]
    assert sum(d.source == "split" for d in named) / 300 >= 0.8
    assert all(d.source in (None, "split") for d in named)
    # undecided: says which it cannot be told apart from
    d = v.dominant(v.spreads({"init": [0.95, 0.96, 0.955], "split": [0.95, 0.958, 0.951]}))
    assert d.source is None and d.largest == "init" and d.tied == ("split",)
    assert "cannot be told apart from split" in v.verdict_text(d, v.spreads(
        {"init": [0.95, 0.96, 0.955], "split": [0.95, 0.958, 0.951]}))


# --- which sources an arm draws from ------------------------------------------------------------


def _cfg(**keys):
    from sharpen.experiments.config import RunConfig

    return RunConfig.model_validate({"dataset": "synthetic", "model": "lenet5_dropout",
                                     "model_args": {"dropout": 0.5}, "epochs": 4, **keys})


def test_only_the_sources_an_arm_draws_from_get_an_arm_each_left_out_with_why():
    from sharpen.experiments import load_experiment
    from sharpen.experiments.variance import sources_of

    used, left = sources_of(_cfg(val_size=100))  # LeNet-5 + dropout, a validation split
    assert used == ["init", "data_order", "dropout", "split"]
    assert left["pairs"] == "not a digit-pair task"
    assert left["sharpen_mix"] == "no technique of this arm draws from it"
    used, left = sources_of(_cfg(model="lenet5", model_args={}))  # no dropout, no split
    assert used == ["init", "data_order"]
    assert left["dropout"] == "every dropout layer has rate 0"  # kept at 0 for a schedule
    assert left["split"].startswith("no validation split and no training subset")
    used, left = sources_of(_cfg(train_size=300, model_args={"dropout": 0.0}))
    assert used == ["init", "data_order", "split"]  # a subset drawn: the split stream draws it
    assert sources_of(_cfg(model_args={"dropout": 0.0}, dropout=0.3))[0] == [
        "init", "data_order", "dropout"]  # a scheduled rate on the model's layers
    blur = {"kind": "step", "start": 5, "delta": -1, "every": 1, "min": 1}
    assert "sharpen_mix" in sources_of(_cfg(blur_n=blur, blur_mode="mixed"))[0]
    assert sources_of(_cfg(blur_n=blur))[1]["sharpen_mix"].startswith("sharpening is staged")
    assert "erasing" in sources_of(_cfg(random_erasing=True))[0]
    pairs = load_experiment("pairs-sublenet", "smoke", []).arms["sub_lenet5_ws_al"]
    assert sources_of(pairs)[0] == ["init", "data_order", "pairs"]
    assert sources_of(pairs)[1]["dropout"] == "model 'sub_lenet5_ws_al' has no dropout layer"


def test_a_left_out_source_moves_nothing(tmp_path):
    """What sources_of leaves out is really not drawn from: two seeds of LeNet-5 without
    dropout (its layers kept at rate 0), with only the dropout stream following the seed,
    train the very same run; with init following the seed, two different ones."""
    from sharpen.experiments.job import run_group
    from sharpen.experiments.variance import sources_of

    loss = {}
    for vary in ("dropout", "init"):
        cfg = _cfg(model="lenet5", model_args={}, vary=[vary], epochs=1, train_size=80,
                   test_size=60, batch_size=40, threads=1)
        assert "dropout" not in sources_of(cfg)[0]
        res = run_group(cfg, vary, [0, 1], [tmp_path / vary / "0", tmp_path / vary / "1"])
        loss[vary] = [r["test_loss"] for r in res]
    assert loss["dropout"][0] == loss["dropout"][1], loss
    assert loss["init"][0] != loss["init"][1], loss


# --- through the CLI ----------------------------------------------------------------------------

TINY = ["--profile", "smoke", "--seeds", "2", "--set", "epochs=1", "--set", "train_size=200",
        "--set", "val_size=50", "--set", "test_size=100", "--set", "threads=1"]
SOURCES = ["init", "data_order", "dropout", "split"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One tiny study through `sharpen variance` on the bundled MNIST sample (LeNet-5 +
    dropout, 1 epoch, 200 images, 2 seeds): its directory, stdout and the figure drawn."""
    import sharpen.reports.variance_study as vs
    from sharpen.cli import main

    out = tmp_path_factory.mktemp("variance") / "study"
    drawn = []
    save = vs.save_figure

    def keep(fig, path):  # the figure as drawn: its axes read back below
        drawn.append({"labels": [ax.get_xlabel() for ax in fig.axes],
                      "rows": [t.get_text() for _, t in sorted(  # top to bottom
                          zip(fig.axes[0].get_yticks(), fig.axes[0].get_yticklabels()),
                          key=lambda p: -p[0])],
                      "legend": [t.get_text() for ax in fig.axes if ax.get_legend()
                                 for t in ax.get_legend().get_texts()]})
        return save(fig, path)

    vs.save_figure = keep
    import contextlib
    import io

    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            rc = main(["variance", "sharpening-mnist", "--arm", "baseline", *TINY,
                       "--out", str(out), "--quiet"])
    finally:
        vs.save_figure = save
    assert rc == 0
    return out, buf.getvalue(), drawn


def test_the_study_directory_has_one_arm_per_source_and_one_with_all(study):
    out, _, _ = study
    cfg = json.loads((out / "config.json").read_text())
    assert list(cfg["arm_order"]) == [*SOURCES, "all"]
    assert {a: c["vary"] for a, c in cfg["arms"].items()} == {
        **{s: [s] for s in SOURCES}, "all": "all"}
    # the arms differ in vary alone: every other key is the studied arm's, but for the seed
    # the pinned streams draw from, which is none of the run seeds
    others = [{k: x for k, x in c.items() if k not in ("vary", "pin_seed")}
              for c in cfg["arms"].values()]
    assert all(o == others[0] for o in others)
    assert {c["pin_seed"] for c in cfg["arms"].values()} == {-1}
    assert json.loads((out / "variance.json").read_text())["pin_seed"] == -1
    record = json.loads((out / "variance.json").read_text())
    assert record["arm"] == "baseline" and record["sources"] == SOURCES
    assert record["left_out"]["pairs"] == "not a digit-pair task"
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted([*SOURCES, "all"])


def _results(out: Path) -> dict[str, list[float]]:
    rows = {}
    for arm in [*SOURCES, "all"]:
        rows[arm] = [json.loads((out / "runs" / arm / f"seed-{s}" / "result.json").read_text())
                     ["test_acc"] for s in (0, 1)]
    return rows


def test_no_run_is_shared_by_two_source_arms(study):
    """With pinned streams drawn from a run seed, seed 0 of every source arm was one and the
    same run (its numbers identical in each arm): the arms' spreads shared a value."""
    out, _, _ = study
    for s in (0, 1):
        curves = {}
        for arm in [*SOURCES, "all"]:  # losses to the last digit, epoch by epoch (not timings)
            with open(out / "runs" / arm / f"seed-{s}" / "metrics.csv") as f:
                curves[arm] = tuple((r["train_loss"], r["test_loss"]) for r in csv.DictReader(f))
        assert len(set(curves.values())) == len(curves), (s, curves)


def test_the_report_gives_each_sources_sd_interval_share_and_test_set_sd(study):
    """Every row of report.md's study table against numpy/scipy on the runs' files."""
    out, stdout, _ = study
    md = (out / "report.md").read_text()
    assert "## Which randomness matters (variance study)" in md
    assert "## Paired comparisons" not in md  # sources are not rival arms
    acc = _results(out)
    s_all = np.std(acc["all"], ddof=1)
    for arm, xs in acc.items():
        s = np.std(xs, ddof=1)
        lo, hi = (math.sqrt(s**2 / stats.chi2.ppf(q, 1)) for q in (0.975, 0.025))
        if s == 0:  # tied seeds: up to the limit of the one-step sd 1/(N√n), N = 100
            hi = math.sqrt((1 / (100 * math.sqrt(2))) ** 2 / stats.chi2.ppf(0.025, 1))
        correct = []
        for seed in (0, 1):
            p = np.load(out / "runs" / arm / f"seed-{seed}" / "predictions.npz")
            correct.append(p["test_pred"] == p["test_label"])
        p_hat = float(np.mean(correct))
        test_sd = math.sqrt(p_hat * (1 - p_hat) / 100)
        share = "100 % (the reference)" if arm == "all" else f"{100 * s**2 / s_all**2:.0f} % ["
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {arm} |") and "N = " in ln)
        assert f"| 2 | {100 * np.mean(xs):.2f} | {100 * s:.2f} | [{100 * lo:.2f}, {100 * hi:.2f}] |" \
            in line, line
        assert f"| {share}" in line, line
        assert line.endswith(f"| {100 * test_sd:.2f} (N = 100) |"), line
        # the terminal's table: the same numbers
        assert re.search(rf"^  {arm} +2 +{100 * s:.2f} +\[{100 * lo:.2f}, {100 * hi:.2f}\]",
                         stdout, re.M), stdout
    assert ("**No single source dominates**: the largest sd is" in md) != (" dominates**: its "
                                                                          "variance exceeds" in md)
    assert "Left out (the arm does not draw from them" in md and "pairs (not a digit-pair task)" in md
    assert "![variance study](variance.png)" in md


def test_the_figure_has_one_row_per_source_and_labelled_axes(study):
    out, _, drawn = study
    assert (out / "variance.png").stat().st_size > 10_000 and (out / "variance.pdf").is_file()
    import matplotlib.image

    h, w, _ = matplotlib.image.imread(out / "variance.png").shape
    assert w > 800 and 250 < h < 800  # two panels side by side, five rows
    fig = drawn[-1]
    assert fig["rows"] == [*SOURCES, "all"]
    assert fig["labels"] == ["final-epoch test accuracy (%), one dot per seed, bar: mean",
                             "sd of test accuracy (pp), 95 % χ² interval"]
    assert fig["legend"] and fig["legend"][0].startswith("test-set sampling (binomial)")


def test_the_study_resumes_and_rebuilds_and_refuses_another_arm(study, capsys):
    from sharpen.cli import main

    out, _, _ = study
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/*/result.json")}
    md = (out / "report.md").read_text()
    assert main(["variance", "sharpening-mnist", "--arm", "baseline", *TINY, "--out", str(out),
                 "--quiet"]) == 0  # a second time: every run finished, nothing trains
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text().split("## Curves")[0].split("Wall time")[1] \
        .split("\n", 1)[1] == md.split("## Curves")[0].split("Wall time")[1].split("\n", 1)[1]
    capsys.readouterr()
    assert main(["variance", "sharpening-mnist", "--arm", "mixed", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds the variance study of arm 'baseline' of 'sharpening-mnist', not of arm " \
           "'mixed'" in err


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("width", [80, 120])
def test_the_terminal_table_fits_the_terminal(study, tmp_path, width):
    """`sharpen report DIR` in a real pseudo-terminal: the study's table and verdict fit."""
    out, _, _ = study
    sock, done = f"sharpen-var-{os.getpid()}-{width}", tmp_path / "done"
    sharpen = Path(sys.executable).with_name("sharpen")
    subprocess.run(["tmux", "-L", sock, "new-session", "-d", "-s", "t", "-x", str(width), "-y",
                    "60", f"{sharpen} report {out}; touch {done}; sleep 60"], check=True)
    try:
        t0 = time.time()
        while not done.exists() and time.time() - t0 < 120:
            time.sleep(0.3)
        screen = subprocess.run(["tmux", "-L", sock, "capture-pane", "-p", "-J", "-S", "-",
                                 "-t", "t"], capture_output=True, text=True).stdout
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)
    assert done.exists()
    start = screen.index("Which randomness matters")
    part = screen[start:screen.index("figure: ", start)]
    assert all(len(ln) < width for ln in part.splitlines()), part
    for arm in [*SOURCES, "all"]:
        assert re.search(rf"^  {arm} +2 ", part, re.M), part


def test_bad_study_requests_are_refused_in_one_line(tmp_path, capsys):
    """Nothing trains and no directory is left: an unknown arm, one seed, a grid profile, a
    run directory given as the experiment, another experiment's directory as --out."""
    from sharpen.cli import main

    out = tmp_path / "none"
    cases = [
        (["sharpening-mnist", "--arm", "nope"], "--arm 'nope': no arm 'nope' in "
         "sharpening-mnist; arms: baseline, sharpening, mixed"),
        (["sharpening-mnist", "--arm", "baseline", "--seeds", "1"], "--seeds 1: a spread needs "
         "at least 2 seeds per source (10 or more give a useful interval)"),
        (["sharpening-map", "--arm", "baseline", "--profile", "quick"], "sharpening-map: a "
         "variance study runs one arm; this profile has a grid (blur_stages, stage_epochs): "
         "choose a profile without one"),
        (["sharpening-mnist", "--arm", "baseline", "--set", "vary=['init']"], "--arm "
         "'baseline' sets vary = ['init'] (in the file or by --set): a variance study sets vary "
         "itself, one source per arm and all together; leave vary out"),
    ]
    for args, said in cases:
        assert main(["variance", *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err == f"sharpen: error: {said}\n", err
        assert not out.exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"name": "x", "arms": {}}')
    assert main(["variance", str(other), "--arm", "baseline"]) == 2
    assert f"{other} is a run directory; a study starts from an experiment: continue one " \
           f"with `sharpen run {other}`, or repeat its sharpen variance command with --out" \
        in capsys.readouterr().err
    assert main(["variance", "sharpening-mnist", "--arm", "baseline", "--out", str(other)]) == 2
    assert f"{other} holds runs of another experiment, not a variance study; give another " \
           "--out" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["config.json"]


def test_seeds_that_all_scored_the_same_do_not_make_another_source_dominate():
    """Accuracy over N test images moves in steps of 1/N: at a few seeds a source's runs
    often score the same, and a zero sd made any other source 'dominate' it (an infinite F
    ratio), even at n = 2. Equal components on a 60-image test set: the false calls stay
    within the comparisons' 5 % (hostile pass H; it was 11.5 % at n = 3)."""
    n_test = 60
    equal = {"init": 0.01, "data_order": 0.01, "dropout": 0.01}
    called = 0
    for arms in simulate(400, 3, equal, 5):
        acc = {k: np.round(x * n_test) / n_test for k, x in arms.items()}
        rows = v.spreads(acc, {k: (float(np.mean(x)), n_test) for k, x in acc.items()})
        called += v.dominant(rows).source is not None
    assert called / 400 <= 0.05, called / 400
    # the plain case: 2 seeds, one source moved, the other scored twice the same
    rows = v.spreads({"init": [0.1167, 0.1667], "dropout": [0.1167, 0.1167]},
                     {"init": (0.14, n_test), "dropout": (0.12, n_test)})
    d = v.dominant(rows)
    assert d.source is None and d.tied == ("dropout",)
    # many seeds all equal against a wide spread still tell the sources apart (the F
    # interval with the one-step sd 1/(N√n), computed here with scipy)
    wide = list(0.5 + 0.1 * np.random.default_rng(0).standard_normal(10))
    rows = v.spreads({"init": wide, "dropout": [0.5] * 10},
                     {"init": (0.5, n_test), "dropout": (0.5, n_test)})
    s_step = 1 / (n_test * math.sqrt(10))
    lo = (np.std(wide, ddof=1) / s_step) ** 2 / stats.f.ppf(0.975, 9, 9)
    assert lo > 1 and v.dominant(rows).source == "init"


def test_seeds_that_all_scored_the_same_get_an_interval_up_to_one_test_image_not_zero():
    """Two dropout seeds at the same accuracy on 60 images printed 'sd 0.00 [0.00, 0.00]'
    and a share of '0 % [0, 0]': certainty that dropout moves nothing, from two ties. The
    upper end is now the chi-square limit of the one-step sd 1/(N√n) (hostile pass H)."""
    n_test = 60
    rows = v.spreads({"dropout": [0.1167, 0.1167], v.ALL: [0.1167, 0.1667]},
                     {"dropout": (0.12, n_test), v.ALL: (0.14, n_test)})
    r = rows[0]
    step = 1 / (n_test * math.sqrt(2))
    want_hi = math.sqrt(step * step / stats.chi2.ppf(0.025, 1))  # (n − 1) s² / χ²(α/2, n − 1)
    assert r.sd == 0 and r.sd_lo == 0 and math.isclose(r.sd_hi, want_hi, rel_tol=1e-9)
    s_all = float(np.std([0.1167, 0.1667], ddof=1))
    assert r.share == 0 and r.share_lo == 0
    assert math.isclose(r.share_hi, (step / s_all) ** 2 / stats.f.ppf(0.025, 1, 1), rel_tol=1e-9)
    assert "[0.00, 0.00]" not in v.table(rows)
