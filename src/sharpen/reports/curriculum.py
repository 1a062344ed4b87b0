"""Curriculum figures of a run directory (the schedule plot and each technique's own figure
of its data: blurred copies, the σ strip, from the images the technique wrote there) and
the stage-jump table; every column and figure comes from the techniques' declarations
(``stage_columns``, ``data_figure``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sharpen.reports.figures import image_strip, schedule_plot
from sharpen.reports.stats import CONTRADICTED, SUPPORTED, compare, verdict
from sharpen.rundir import METRICS, SCHEDULE, RunDir
from sharpen.techniques import TECHNIQUES


def curriculum_figures(run_dir: Path, plans: dict[str, list[dict[str, Any]]]) -> list[Path]:
    """The schedule plot of every arm's per-epoch plan (``sharpen schedule``'s rows; none
    when ``plans`` is empty: no curriculum arm), then each technique's data figure from the
    images it wrote into the run directory (``Technique.figure_images``: the blurred
    copies, the σ strip)."""
    if not plans:
        return []
    run_dir = Path(run_dir)
    made = [schedule_plot(plans, run_dir / SCHEDULE)]
    for tech in TECHNIQUES:
        if tech.data_figure is not None and (run_dir / tech.data_figure_npz()).is_file():
            made.append(image_strip(run_dir / tech.data_figure_npz(),
                                    run_dir / tech.data_figure[0]))
    return made


def figure_sections() -> list[tuple[str, str]]:
    """(file, heading) of the figures curriculum_figures may draw, in report order."""
    return [(SCHEDULE, "Schedules")] + [t.data_figure for t in TECHNIQUES
                                              if t.data_figure is not None]


def stage_columns() -> tuple[str, ...]:
    """The plan columns that mark curriculum stages, from the techniques that declare them
    (``Technique.stage_columns``), the lowest ``stage_rank`` first."""
    ranked = sorted(TECHNIQUES, key=lambda t: t.stage_rank)  # stable: registry order within
    return tuple(c for t in ranked for c in t.stage_columns)


def stage_jumps(run_dir: Path, base: str) -> tuple[str, list[dict[str, Any]]]:
    """Does the curve climb when a sharper stage begins? For every curriculum arm and every
    epoch where its plan (blur_n, σ or image size in metrics.csv) changes: the change of
    test accuracy from the epoch before, minus the baseline arm's change over the same
    epochs, per seed (paired), with its 95 % interval and verdict ('climbs' when the whole
    interval is above zero)."""
    rd = RunDir(run_dir)
    dirs: dict[str, list[int]] = {}
    for a, s, d in rd.seed_dirs():
        if (d / METRICS).exists():
            dirs.setdefault(a, []).append(s)

    def curves(arm: str) -> dict[int, list[dict[str, str]]]:
        return {s: rd.metrics(arm, s) for s in dirs.get(arm, [])}

    ref = curves(base)
    rows: list[dict[str, Any]] = []
    for arm in dirs:  # the file's order (RunDir.seed_dirs)
        if arm == base:
            continue
        cur = curves(arm)
        if not cur:
            continue
        first = next(iter(cur.values()))
        col = next((c for c in stage_columns() if first and c in first[0]), None)
        if col is None:
            continue
        for e in range(1, len(first)):
            if first[e][col] == first[e - 1][col]:
                continue

            def jump(runs: dict[int, list[dict[str, str]]], e: int = e) -> dict[int, float]:
                return {s: float(r[e]["test_acc"]) - float(r[e - 1]["test_acc"])
                        for s, r in runs.items() if len(r) > e}

            mine, theirs = jump(cur), jump(ref)
            c = compare(mine, theirs)
            rows.append({"arm": arm, "epoch": e + 1, col: first[e][col],
                         "from": first[e - 1][col], "diff": c.diff, "ci_low": c.ci_low,
                         "ci_high": c.ci_high, "n": c.n,
                         "verdict": {SUPPORTED: "climbs", CONTRADICTED: "drops"}.get(
                             verdict(c.ci_low, c.ci_high, ">"), "no clear change")})
    lines = ["| arm | epoch | stage | Δ test acc vs the baseline's Δ (pp) | 95 % CI | n | "
             "verdict |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        col = next(c for c in stage_columns() if c in r)
        fmt = (lambda v: "–" if v is None else f"{100 * v:+.2f}")  # noqa: E731
        lines.append(f"| {r['arm']} | {r['epoch']} | {col} {r['from']} → {r[col]} | "
                     f"{fmt(r['diff'])} | [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}] | {r['n']} | "
                     f"{r['verdict']} |")
    return "\n".join(lines), rows
