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
