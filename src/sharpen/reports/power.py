"""``sharpen plan-seeds``: how many seeds would settle a claim, before (or between) runs.

Paired t-test power (statsmodels ``TTestPower``) at the family's level α/m (the strictest
Holm step, so the answer holds whatever the other claims do): given the effect and the sd
of the per-seed differences — typed in, or read from a pilot run directory — the n that
detects the effect with 80 % power, and the smallest effect each n detects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sharpen.errors import SharpenError
from sharpen.metrics import get_metric, parse_amount
from sharpen.reports.claim_map import claim_maps
from sharpen.reports.claims import judge_family, load_runs
from sharpen.reports.stats import ALPHA, POWER, min_detectable, seeds_needed
from sharpen.rundir import CONFIG, RunDir


def plan_table(effect: float, sd: float, metric: str = "test_acc", claims: int = 1,
               power: float = POWER, ns: tuple[int, ...] = (3, 5, 10, 20, 50)) -> str:
    """The n needed for ``effect`` and the detectable effect at a few n, as Markdown."""
    if sd <= 0:
        raise SharpenError(f"--sd must be > 0, got {sd}")
    if claims < 1:
        raise SharpenError(f"--claims must be ≥ 1, got {claims}")
    m = get_metric(metric)
    level = ALPHA / claims
    n = seeds_needed(effect, sd, level, power)
    lines = [f"Effect {m.fmt(effect, True)}, sd of the per-seed differences "
             f"{m.fmt(sd, True).lstrip('+')}, {claims} claim(s) in the family: paired t-test at "
             f"α/m = {level:.3g}, power {power:.0%}.", "",
             f"**seeds needed: {n if n is not None else 'more than 100,000'}**", "",
             "| n | smallest detectable difference |", "|---|---|"]
    for k in ns:
        lines.append(f"| {k} | {m.fmt(min_detectable(k, sd, level, power), True).lstrip('+')} |")
    return "\n".join(lines)


def plan_from_dir(run_dir: Path, effect: float | str | None = None, power: float = POWER
                  ) -> str:
    """For every claim of a pilot directory: its n, sd of the differences, the detectable
    effect at that n, and the n for the paper's effect (or ``effect``)."""
    cfg = RunDir(run_dir).config()
    claims = cfg.get("claims") or []
    if not claims:
        raise SharpenError(f"{run_dir}: no claims in {CONFIG}; give --effect and --sd "
                           "instead, or adopt an experiment's claims with "
                           "`sharpen report DIR --claims-from NAME`")
    if cfg.get("cells"):  # a grid's claims name base arms, which have no runs of their own
        return _plan_grid(cfg, load_runs(run_dir), effect, power)
    results = judge_family(claims, load_runs(run_dir), cfg.get("published"))
    level = ALPHA / len(claims)
    lines = [f"{len(claims)} claim(s), one family: paired t-test at α/m = {level:.3g}, power "
             f"{power:.0%}; the sd of the per-seed differences from this directory's runs.", "",
             "| claim | n now | sd of differences | detectable at n now | effect | seeds needed |",
             "|---|---|---|---|---|---|"]
    for r in results:
        m = get_metric(r.metric)
        eff: Any = parse_amount(effect, m, "--effect", signed=True) if effect is not None \
            else r.effect
        need = seeds_needed(eff, r.sd, level, power) if eff else None
        lines.append(
            f"| {r.claim} | {r.n} | {m.fmt(r.sd, True).lstrip('+') if r.sd else '–'} | "
            f"{m.fmt(min_detectable(r.n, r.sd, level, power), True).lstrip('+') if r.sd else '–'} | "
            f"{m.fmt(eff, True) if eff else '– (give --effect)'} | "
            f"{need if need is not None else '–'} |")
    return "\n".join(lines)


def _plan_grid(cfg: dict[str, Any], runs: Any, effect: float | str | None, power: float
               ) -> str:
    """A grid pilot: each claim in each cell, as its claim map judges it (paired within the
    cell, the cells of one claim one family: α/m with m its cells)."""
    lines = ["Each claim in each cell of the grid, as its claim map judges it: the cells of one "
             "claim are one family (paired t-test at α/m, m its cells), power "
             f"{power:.0%}; the sd of the per-seed differences from this directory's runs "
             "in that cell.", "",
             "| claim | cell | n now | sd of differences | detectable at n now | effect | "
             "seeds needed |", "|---|---|---|---|---|---|---|"]
    for cm in claim_maps(cfg, runs):
        m = get_metric(cm.claim.get("metric", "test_acc"))
        level = ALPHA / max(len(cm.cells), 1)
        if not cm.cells:
            lines.append(f"| {cm.claim['claim']} | none (no cell holds runs of its arms) | 0 | "
                         "– | – | – | – |")
        for c in cm.cells:
            r = c.result
            eff: Any = parse_amount(effect, m, "--effect", signed=True) if effect is not None \
                else r.effect
            need = seeds_needed(eff, r.sd, level, power) if eff and r.sd else None
            cell = ", ".join(f"{a} = {c.point[a]}" for a in cm.axes)
            lines.append(
                f"| {cm.claim['claim']} | {cell} | {r.n} | "
                f"{m.fmt(r.sd, True).lstrip('+') if r.sd else '–'} | "
                f"{m.fmt(min_detectable(r.n, r.sd, level, power), True).lstrip('+') if r.sd else '–'}"
                f" | {m.fmt(eff, True) if eff else '– (give --effect)'} | "
                f"{need if need is not None else '–'} |")
    return "\n".join(lines)


__all__ = ["plan_table", "plan_from_dir"]
