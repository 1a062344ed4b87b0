"""Budget curves (issue 25, item 4) against brute force: every n-subset (Tang et al.'s
without-replacement law) and every n-tuple (Dodge et al.'s with-replacement law)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sharpen.reports.budget import expected_max

VALUES = [0.61, 0.70, 0.70, 0.55, 0.82, 0.64]


@pytest.mark.parametrize("n", range(1, len(VALUES) + 1))
def test_without_replacement_is_the_mean_best_of_every_subset(n):
    best = [max(c) for c in itertools.combinations(VALUES, n)]
    e, sd = expected_max(VALUES, n)
    assert e == pytest.approx(np.mean(best)) and sd == pytest.approx(np.std(best))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_with_replacement_is_the_mean_best_of_every_tuple(n):
    best = [max(c) for c in itertools.product(VALUES, repeat=n)]
    e, sd = expected_max(VALUES, n, replace=True)
    assert e == pytest.approx(np.mean(best)) and sd == pytest.approx(np.std(best))


def test_the_two_differ_most_at_the_whole_grid():
    n = len(VALUES)
    assert expected_max(VALUES, n) == (pytest.approx(max(VALUES)), pytest.approx(0.0))
    assert expected_max(VALUES, n, replace=True)[0] < max(VALUES) - 0.01  # biased low
    assert expected_max(VALUES, 1)[0] == pytest.approx(np.mean(VALUES))
    with pytest.raises(ValueError):
        expected_max(VALUES, n + 1)


def test_a_grid_report_has_the_budget_curves(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_claim_map import _grid_dir

    from sharpen.reports import write_report

    d, acc = _grid_dir(tmp_path / "g")
    write_report(d)
    text = (d / "report.md").read_text()
    assert "## Budget curves: the expected best cell after trying n of them" in text
    # no validation split in this grid: scored on test, and said so
    assert "scored on test, optimistic" in text and (d / "budget.png").is_file()
    sharp = [float(np.mean(v["sharp"])) for v in acc.values()]
    e6 = expected_max(sharp, 6)[0]
    assert f"| sharp | 6 | {100 * e6:.2f} | 0.00 |" in text


def test_a_budget_band_near_100_percent_stays_inside_it(tmp_path, monkeypatch):
    """The expected best ± its sd ran past 100 % for cells near 100 % (issue 34 leftover 7):
    the band is cut to 0–100 %, the line (the expected best) is left as it is."""
    from types import SimpleNamespace

    from sharpen.reports import budget

    figs = []
    monkeypatch.setattr(budget, "save_figure", lambda fig, path: figs.append(fig) or path)
    means = {"a__lr-1": 0.999, "a__lr-2": 0.80, "a__lr-3": 1.0}
    cfg = {"grid": {"lr": [1, 2, 3]},
           "cells": {d: {"arm": "a", "lr": i + 1} for i, d in enumerate(means)},
           "arms": {d: {"lr": i + 1} for i, d in enumerate(means)}}
    runs = SimpleNamespace(values={d: {0: {"test_acc": v}, 1: {"test_acc": v}}
                                   for d, v in means.items()})
    e, s = expected_max(list(means.values()), 1)
    assert 100 * (e + s) > 100  # uncut, the band at n = 1 ran past 100 %
    assert budget.budget_section(tmp_path, cfg, runs)
    (ax,) = figs[-1].axes
    ys = [v[1] for c in ax.collections for p in c.get_paths() for v in p.vertices]
    assert max(ys) == pytest.approx(100) and min(ys) >= 0
