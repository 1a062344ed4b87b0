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
from sharpen.reports.claims import ClaimResult, fmt_detectable, judge_family, load_runs
from sharpen.reports.stats import ALPHA, POWER, min_detectable, sd_upper, seeds_needed
from sharpen.rundir import CONFIG, RunDir
from sharpen.verdicts import get_op


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
        lines.append(f"| {k} | {fmt_detectable(m, min_detectable(k, sd, level, power))} |")
    return "\n".join(lines)


SD_CAVEAT = ("An sd estimated from a few seeds is itself uncertain: beside each sd its 95 % "
             "upper confidence limit (χ² on n − 1 df), and the seeds the effect needs if the "
             "true sd is that large. From n = 2 the limit is 16 times the sd: plan on it, or "
             "run a larger pilot.")
HEAD = ("n now | sd of differences (95 % upper limit) | detectable at n now | effect | "
        "seeds needed (at the sd's upper limit)")


def plan_from_dir(run_dir: Path, effect: float | str | None = None, power: float = POWER
                  ) -> str:
    """For every claim of a pilot directory: its n, sd of the differences with its upper
    confidence limit, the detectable effect at that n, and the n for the paper's effect (or
    ``effect``) at the sd and at its upper limit."""
    cfg = RunDir(run_dir).config()
    claims = cfg.get("claims") or []
    if not claims:
        raise SharpenError(f"{run_dir}: no claims in {CONFIG}; give --effect and --sd "
                           "instead, or adopt an experiment's claims with "
                           "`sharpen report DIR --claims-from NAME`")
    if cfg.get("cells"):  # a grid's claims name base arms, which have no runs of their own
        return _plan_grid(cfg, load_runs(run_dir), effect, power)
    results = judge_family(claims, load_runs(run_dir), cfg.get("published"),
                           protocol=cfg.get("published_protocol"), arms_cfg=cfg.get("arms"))
    level = ALPHA / len(claims)
    lines = [f"{len(claims)} claim(s), one family: paired t-test at α/m = {level:.3g}, power "
             f"{power:.0%}; the sd of the per-seed differences from this directory's runs. "
             + SD_CAVEAT, "", f"| claim | {HEAD} |", "|---|---|---|---|---|---|"]
    for r in results:
        cells = _plan_cells(r, effect, level, power)
        lines.append(f"| {r.claim} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plan_cells(r: ClaimResult, effect: float | str | None, level: float, power: float
                ) -> list[str]:
    """One judged claim's planning cells (:data:`HEAD`): a `~` claim has no difference to
    detect; a published effect of another protocol is not comparable."""
    m = get_metric(r.metric)
    up = sd_upper(r.sd, r.n) if r.sd else None
    sd = "–" if not r.sd else (f"{m.fmt(r.sd, True).lstrip('+')} "
                               f"({m.fmt(up, True).lstrip('+')})")
    if get_op(r.op).margin:
        return [str(r.n), sd, "– (`~`: not a difference to detect)", "–", "–"]
    if get_op(r.op).chance:
        return [str(r.n), "–", f"– (`{r.op}`: a chance, not a difference to detect)", "–", "–"]
    mde = fmt_detectable(m, min_detectable(r.n, r.sd, level, power)) if r.sd else "–"
    eff: Any = parse_amount(effect, m, "--effect", signed=True) if effect is not None \
        else r.effect
    if effect is None and r.effect_not_comparable:
        return [str(r.n), sd, mde, f"{m.fmt(eff, True)}: not comparable "
                f"({'; '.join(r.effect_not_comparable)}); give --effect", "–"]
    if not eff:
        return [str(r.n), sd, mde, "– (give --effect)", "–"]
    need, need_up = (seeds_needed(eff, x, level, power) if x else None for x in (r.sd, up))
    show = "–" if need is None else f"{need} ({need_up if need_up else 'more than 100,000'})"
    return [str(r.n), sd, mde, m.fmt(eff, True), show]


def _plan_grid(cfg: dict[str, Any], runs: Any, effect: float | str | None, power: float
               ) -> str:
    """A grid pilot: each claim in each cell, as its claim map judges it (paired within the
    cell, the cells of one claim one family: α/m with m its cells)."""
    lines = ["Each claim in each cell of the grid, as its claim map judges it: the cells of one "
             "claim are one family (paired t-test at α/m, m its cells), power "
             f"{power:.0%}; the sd of the per-seed differences from this directory's runs "
             "in that cell. " + SD_CAVEAT, "",
             f"| claim | cell | {HEAD} |", "|---|---|---|---|---|---|---|"]
    for cm in claim_maps(cfg, runs):
        level = ALPHA / max(len(cm.cells), 1)
        if not cm.cells:
            lines.append(f"| {cm.claim['claim']} | none (no cell holds runs of its arms) | – | "
                         "– | – | – | – |")
        for c in cm.cells:
            cell = ", ".join(f"{a} = {c.point[a]}" for a in cm.axes)
            lines.append(f"| {cm.claim['claim']} | {cell} | "
                         + " | ".join(_plan_cells(c.result, effect, level, power)) + " |")
    return "\n".join(lines)


__all__ = ["plan_table", "plan_from_dir"]
