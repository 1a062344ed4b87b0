"""Evaluation-set uncertainty and robust summaries: the report sections built on per-image
predictions (``predictions.npz``) and on the per-seed values.

Where every seed is tested on the same images, the t interval over seeds covers training
randomness only; :func:`image_level_section` adds the interval over seeds *and* test
images (:func:`sharpen.reports.stats.two_level_bootstrap`) and compares paired arms
image by image (McNemar). Where each seed draws its own test images (digit pairs that
follow the seed), the seed interval already covers them, and image i of one seed is not
image i of another: no two-level interval, and McNemar pairs an arm with the baseline only
on a seed whose images they share. :func:`robust_section` gives rliable-style summaries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sharpen.metrics import get_metric
from sharpen.reports.claims import Runs, metric_of
from sharpen.reports.stats import (
    bootstrap_ci,
    describe,
    iqm,
    mcnemar,
    prob_improvement,
    prob_improvement_ci,
    two_level_bootstrap,
)
from sharpen.reports.tables import ci, in_range, pct
from sharpen.rundir import PREDICTIONS, RunDir


def correctness(run_dir: Path, arm: str, seeds: list[int], split: str = "test"
                ) -> tuple[np.ndarray | None, list[int]]:
    """seeds × images of 0/1 for the seeds that stored predictions, and the seeds without."""
    rd = RunDir(run_dir)
    rows, missing = [], []
    for s in seeds:
        p = rd.predictions(arm, s)
        if p is None or f"{split}_pred" not in p:
            missing.append(s)
            continue
        rows.append(p[f"{split}_pred"] == p[f"{split}_label"])
    if not rows or len({len(r) for r in rows}) != 1:
        return None, missing if rows else seeds
    return np.stack(rows), missing


def _labels(run_dir: Path, arm: str, seed: int, split: str = "test") -> np.ndarray | None:
    p = RunDir(run_dir).predictions(arm, seed)
    return None if p is None or f"{split}_label" not in p else p[f"{split}_label"]


def same_images(run_dir: Path, runs: list[tuple[str, int]], split: str = "test") -> bool:
    """True when these (arm, seed) runs were tested on one list of images, as far as their
    stored labels tell (seeds that draw their own digit pairs have other labels)."""
    ls = [_labels(run_dir, a, s, split) for a, s in runs]
    if any(x is None for x in ls):
        return False
    return all(len(x) == len(ls[0]) and np.array_equal(x, ls[0]) for x in ls[1:])


def image_level_section(run_dir: Path, runs: Runs, arms: list[str], baseline: str | None
                        ) -> str:
    """Per arm: the seed interval beside the seeds-and-images interval of test accuracy;
    per arm paired with the baseline: McNemar per seed and pooled. Says what is missing."""
    lines = ["| arm | n | test acc % | 95 % CI over seeds | 95 % CI over seeds and test images | "
             "images |", "|---|---|---|---|---|---|"]
    have: dict[str, tuple[np.ndarray, list[int]]] = {}
    absent: list[str] = []
    own: list[str] = []  # arms whose seeds were tested on images of their own
    for arm in arms:
        vals = metric_of(runs.values, arm, "test_acc")
        if not vals:
            continue
        seeds = sorted(vals)
        c, missing = correctness(run_dir, arm, seeds)
        if c is None or missing:
            absent.append(f"{arm} ({len(missing)} of {len(seeds)} runs without {PREDICTIONS})")
            continue
        have[arm] = (c, seeds)
        sm = in_range(get_metric("test_acc"), describe([vals[s] for s in seeds]))
        if same_images(run_dir, [(arm, s) for s in seeds]):
            est, lo, hi = two_level_bootstrap(c)
            both = f"[{pct(lo)}, {pct(hi)}]"
        else:  # column i is another image for each seed: no images shared to resample
            own.append(arm)
            est, both = float(c.mean()), "– (each seed its own images)"
        lines.append(f"| {arm} | {len(seeds)} | {pct(est)} | "
                     f"{ci(sm['ci_low'], sm['ci_high'], sm['n'], sm['sd'])} | "
                     f"{both} | {c.shape[1]} |")
    out = []
    if have and len(own) < len(have):
        out += [("Where every seed is tested on the same images, the" if own else
                 "Every seed is tested on the same images, so the") + " interval over seeds "
                "covers training randomness only. The second interval adds the test images' "
                "sampling variance (a bootstrap of the images, shared by all seeds, added to "
                "the seeds' s²/n; Welch–Satterthwaite degrees of freedom): it is what a new "
                "test set of the same size would see."]
    if own:
        out += [f"Each seed of {', '.join(own)} is tested on images of its own (its digit "
                "pairs follow the seed), so the interval over seeds already covers the test "
                "images' sampling; no interval over seeds and images is drawn for it."]
    if have:
        out += ["", "\n".join(lines), ""]
    if have and baseline in have:
        b, bseeds = have[baseline]
        mc = ["| arm − " + baseline + " | seeds | right only in arm (per seed) | right only in "
              f"{baseline} (per seed) | seeds with McNemar p < 0.05: arm better / {baseline} better "
              "| pooled (Mantel–Haenszel) p |",
              "|---|---|---|---|---|---|"]
        for arm, (a, seeds) in have.items():
            if arm == baseline or not runs.comparable(arm, baseline):
                continue
            # paired image by image only on a seed whose test images both arms share
            common = [s for s in seeds if s in bseeds
                      and same_images(run_dir, [(arm, s), (baseline, s)])]
            if not common:
                continue
            ai = np.stack([a[seeds.index(s)] for s in common])
            bi = np.stack([b[bseeds.index(s)] for s in common])
            r = mcnemar(ai, bi)
            up, down = significant_seeds(r["per_seed"])
            mc.append(f"| {arm} | {len(common)} | {', '.join(str(x['b']) for x in r['per_seed'])} | "
                      f"{', '.join(str(x['c']) for x in r['per_seed'])} | {up} / {down} of {len(common)} | "
                      f"{r['p']:.3g} |")
        if len(mc) > 2:
            out += ["Image by image, paired by seed: the images one arm gets right and the other "
                    "wrong (McNemar's exact test per seed; pooled over seeds, the Mantel–Haenszel "
                    "matched-pairs test, which treats seeds as independent strata: the images "
                    "repeat, so read it as a test about these test images).", "", "\n".join(mc), ""]
    if absent:
        out += [f"No image-level interval for {'; '.join(absent)}: runs made before sharpen "
                "stored per-image predictions; re-run them to get one.", ""]
    return "\n".join(out)


def significant_seeds(per_seed: list[dict[str, Any]], level: float = 0.05) -> tuple[int, int]:
    """The seeds whose McNemar p is below ``level``, counted by the side they favour: (arm
    right more often, the other arm right more often). A seed significant for the other arm
    is evidence against the arm, never a count for it."""
    sig = [x for x in per_seed if x["p"] < level]
    return sum(x["b"] > x["c"] for x in sig), sum(x["b"] < x["c"] for x in sig)


def robust_section(runs: Runs, arms: list[str], baseline: str, metric: str = "test_acc") -> str:
    """rliable-style: interquartile mean with a bootstrap CI, and P(arm > baseline) with its
    bootstrap CI, per arm (percentile bootstrap over seeds, each arm resampled within itself;
    P(arm > baseline)'s never narrower than a Wilson floor, so never [0.00, 0.00])."""
    m = get_metric(metric)
    lines = [f"| arm | n | IQM {m.label} [95 % bootstrap CI] | P(arm > {baseline}) "
             "[95 % CI: bootstrap, Wilson floor] |",
             "|---|---|---|---|"]
    base = list(metric_of(runs.values, baseline, metric).values())
    for arm in arms:
        xs = list(metric_of(runs.values, arm, metric).values())
        if not xs:
            continue
        lo, hi = bootstrap_ci(iqm, [xs])
        row = f"| {arm} | {len(xs)} | {m.fmt(iqm(xs))} " + (
            f"[{m.fmt(lo)}, {m.fmt(hi)}]" if lo is not None else "(no interval)") + " |"
        if arm != baseline and base:
            p = prob_improvement(xs, base)
            plo, phi = prob_improvement_ci(xs, base)
            row += f" {p:.2f} " + (f"[{plo:.2f}, {phi:.2f}]" if plo is not None else "(no interval)") + " |"
        else:
            row += " – |"
        lines.append(row)
    return "\n".join(lines)
