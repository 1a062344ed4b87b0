"""A variance study's report section and figure, from its run directory's files alone.

The directory's ``variance.json`` (:data:`sharpen.rundir.VARIANCE`, written by ``sharpen
variance``) marks it a study; each arm is a source (``vary = [source]``) or ``all``. The
numbers are :mod:`sharpen.reports.variance`'s; the figure (:data:`VARIANCE_FIGURE`) is in
the style of Bouthillier et al. (2021), Fig. 1: one row per source, its seeds' test
accuracies, and its sd with the chi-square interval beside the test-set sampling sd.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from sharpen.reports import variance as v
from sharpen.reports.claims import load_runs, metric_of
from sharpen.reports.evaluation import correctness
from sharpen.reports.figures import pyplot, save_figure
from sharpen.rundir import PREDICTIONS, VARIANCE_FIGURE, RunDir


def study_numbers(run_dir: Path) -> tuple[dict[str, Any], list[v.Spread]] | None:
    """The study's record and one :class:`~sharpen.reports.variance.Spread` per arm with
    results (sources in the record's order, then ``all``); None when the directory is not a
    study."""
    rd = RunDir(run_dir)
    record = rd.variance()
    if record is None:
        return None
    runs = load_runs(run_dir)
    values: dict[str, list[float]] = {}
    tests: dict[str, tuple[float, int]] = {}
    for arm in [*record.get("sources", []), v.ALL]:
        vals = metric_of(runs.values, arm, "test_acc")
        if not vals:
            continue
        seeds = sorted(vals)
        values[arm] = [vals[s] for s in seeds]
        c, missing = correctness(run_dir, arm, seeds)
        if c is not None and not missing:  # every run's per-image predictions
            tests[arm] = (float(c.mean()), int(c.shape[1]))
    return record, v.spreads(values, tests)


def section(run_dir: Path) -> list[str]:
    """report.md's section of a study (and its figure, drawn now); [] for any other
    directory."""
    got = study_numbers(run_dir)
    if got is None:
        return []
    record, rows = got
    labels = record.get("labels") or {}
    parts = ["## Which randomness matters (variance study)", "",
             f"Arm `{record.get('arm')}` of `{record.get('experiment')}`: each row trains the "
             "same seeds with one source of randomness following the seed and every other "
             "stream pinned (the same draws for every seed); `all` lets every source follow "
             "the seed. Per source: the sd of final-epoch test accuracy over its seeds with "
             "the chi-square 95 % interval (sqrt((n−1)s²/χ²), normal accuracies assumed), "
             "its variance as a share of the all-sources variance with the F interval of the "
             "ratio, and the test-set sampling sd: binomial sqrt(p(1−p)/N) with p the arm's "
             f"accuracy over its runs' per-image predictions ({PREDICTIONS}) and N its test "
             "images (the ideal bootstrap over test images of one run gives this very "
             "variance). It is what a new test set of the same size would move one run by; "
             "no seed varies it (docs/methods/statistics.md, \"Which randomness matters\").",
             "", v.table(rows, labels), ""]
    if not rows:
        return parts[:-2] + ["No finished runs yet.", ""]
    parts += [v.verdict_text(v.dominant(rows), rows) + " " + v.additivity_text(rows), ""]
    left = record.get("left_out") or {}
    if left:
        parts += ["Left out (the arm does not draw from them, so every seed would give the same "
                  "run): " + left_out_text(left) + ".", ""]
    png = figure(rows, Path(run_dir) / VARIANCE_FIGURE,
                 f"{record.get('experiment')}, arm {record.get('arm')}")
    parts += [f"![variance study]({png.name})", ""]
    return parts


def left_out_text(left: dict[str, str]) -> str:
    """The sources left out, grouped by reason: 'pairs (not a digit-pair task); crop, flip
    (no technique of this arm draws from it)'."""
    by: dict[str, list[str]] = {}
    for name, why in left.items():
        by.setdefault(why, []).append(name)
    return "; ".join(f"{', '.join(names)} ({why})" for why, names in by.items())


def figure(rows: list[v.Spread], path: Path, title: str) -> Path:
    """Bouthillier et al.'s Fig. 1 for one study: per source (one row each, ``all`` last),
    left its seeds' test accuracies and their mean, right its sd with the chi-square 95 %
    interval; a dashed line at the test-set sampling sd (binomial)."""
    plt = pyplot()
    n = len(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 1.2 + 0.55 * max(n, 1)), sharey=True)
    ys = list(range(n))[::-1]  # the first source at the top
    for y, r in zip(ys, rows):
        colour = "black" if r.source == v.ALL else "tab:blue"
        left.plot([r.mean * 100], [y], "|", color=colour, markersize=14)
        right.plot([r.sd * 100], [y], "o", color=colour)
        if r.sd_lo is not None and r.sd_hi is not None:
            right.plot([r.sd_lo * 100, r.sd_hi * 100], [y, y], "-", color=colour, lw=2)
    for y, r in zip(ys, rows):
        left.plot([x * 100 for x in r.values], [y] * len(r.values), "o", ms=4, alpha=0.6,
                  color="black" if r.source == v.ALL else "tab:blue")
    ref = next((r for r in rows if r.source == v.ALL and r.test_sd is not None), None)
    test = [r.test_sd for r in rows if r.test_sd is not None]
    if test:  # the all-sources arm's, as in the table (else the arms' mean)
        t = (ref.test_sd if ref is not None and ref.test_sd is not None
             else sum(test) / len(test)) * 100
        right.axvline(t, ls="--", color="tab:red", label=f"test-set sampling (binomial) {t:.2f} pp")
        right.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=8)
    if any(r.source == v.ALL for r in rows) and n > 1:
        for ax in (left, right):  # the sources above, all of them together below
            ax.axhline(0.5 if rows[-1].source == v.ALL else n - 0.5, color="grey", lw=0.6)
    left.set_yticks(ys, [r.source for r in rows])
    left.set_xlabel("final-epoch test accuracy (%), one dot per seed, bar: mean")
    right.set_xlabel("sd of test accuracy (pp), 95 % χ² interval")
    right.set_xlim(left=0)
    left.set_ylim(-0.6, n - 0.4)
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(textwrap.shorten(title, 90), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def terminal_text(run_dir: Path, width: int | None = None) -> str:
    """The study's table and verdict for a terminal of ``width`` columns (None: a pipe, 100);
    '' for a directory that is not a study."""
    got = study_numbers(run_dir)
    if got is None:
        return ""
    record, rows = got
    width = width or 100
    head = (f"Which randomness matters: arm {record.get('arm')} of {record.get('experiment')}"
            " (sd of test accuracy over seeds, pp)")
    lines = textwrap.wrap(head, width - 1)
    lines.append(f"  {'source':<12s} {'n':>3s} {'sd':>6s} {'95 % CI (χ²)':>16s}  "
                 f"{'share of all [95 % CI]':<22s} {'test-set sd':>11s}")
    for r in rows:
        ci = "n/a" if r.sd_lo is None else f"[{v.pp(r.sd_lo)}, {v.pp(r.sd_hi)}]"
        share = "100 %" if r.source == v.ALL else v.share_text(r)
        test = "n/a" if r.test_sd is None else v.pp(r.test_sd)
        lines.append(f"  {r.source[:12]:<12s} {r.n:>3d} {v.pp(r.sd):>6s} {ci:>16s}  "
                     f"{share:<22s} {test:>11s}")
    if rows:
        said = (v.verdict_text(v.dominant(rows), rows) + " " + v.additivity_text(rows))
        lines += textwrap.wrap(said.replace("**", ""), width - 1, break_long_words=False)
    left = record.get("left_out") or {}
    if left:
        lines += textwrap.wrap("Left out (not drawn from by this arm): " + ", ".join(left),
                               width - 1, break_long_words=False)
    lines.append(f"figure: {Path(run_dir) / VARIANCE_FIGURE}")
    return "\n".join(lines)
