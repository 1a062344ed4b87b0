"""Build ``summary.json``, ``table.csv``, ``report.md`` and ``curves.png`` of a run
directory from its files alone. Tables: :mod:`sharpen.reports.tables`; claims:
:mod:`sharpen.reports.claims`; curves: :mod:`sharpen.reports.curves`; image-level and
robust sections: :mod:`sharpen.reports.evaluation`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sharpen.errors import SharpenError
from sharpen.metrics import get_metric, parse_amount
from sharpen.reports.budget import budget_section
from sharpen.reports.claim_map import map_section, sequential_rules_out
from sharpen.reports.claims import FAMILY_TEXT, ClaimResult, Runs, claims_table, load_runs
from sharpen.reports.curriculum import figure_sections, stage_jumps
from sharpen.reports.curves import curve_data, curve_notes, plot_curves
from sharpen.reports.evaluation import image_level_section, robust_section
from sharpen.reports.figures import run_figure_section
from sharpen.reports.sequential import read_record, report_section
from sharpen.reports.tables import (
    grid_table,
    markdown_table,
    paired_table,
    published_grid_tables,
    published_numbers,
    published_table,
    table_columns,
    table_rows,
)
from sharpen.reports.variance_study import section as variance_section
from sharpen.rundir import ARM_ORDER_ALPHABETICAL, METRICS, RESULT, RunDir
from sharpen.techniques import TECHNIQUES
from sharpen.training.streams import Streams

DEFAULT_MARGIN = 0.01  # directories made before experiments wrote published_margin


def load_results(run_dir: Path) -> list[dict[str, Any]]:
    """Result rows of every run with a result.json (a corrupt one as status ``corrupt``)."""
    rows = [{**r.result, "arm": r.arm, "seed": r.seed, "status": r.status}
            for r in RunDir(run_dir).runs()]
    return rows or RunDir(run_dir).results()


Judged = tuple[str, list[ClaimResult]]  # the Claims table's markdown and its judged claims


def judge_claims(run_dir: Path, cfg: dict[str, Any], runs: Runs) -> Judged | None:
    """The directory's claims judged as one family, once for report.md, summary.json and
    the terminal (which reads summary.json); None without claims, or for a grid, whose
    claims are its claim maps'."""
    if not cfg.get("claims") or cfg.get("cells"):
        return None
    return claims_table(cfg["claims"], runs, cfg.get("published"), _decisions(Path(run_dir)),
                        cfg)


def summarize(run_dir: Path, runs: Runs | None = None, judged: Judged | None = None
              ) -> dict[str, Any]:
    """summary.json's content (``judged``: the claims :func:`judge_claims` judged, when the
    caller has them)."""
    rd = RunDir(run_dir)
    cfg = rd.config()  # raises a clear error if this is not a run directory
    results = load_results(rd.root)
    arms = list(cfg.get("arms", {}))
    runs = runs or load_runs(rd.root)
    out: dict[str, Any] = {
        "experiment": cfg.get("name"), "profile": cfg.get("profile"),
        # the seeds that ran, not the file's `runs`: --runs N and --until-decided grow a folder
        "seeds": sorted({int(r["seed"]) for r in results if r.get("seed") is not None})
        or [cfg.get("seed", 0) + i for i in range(cfg.get("runs", 1))],
        "arms": table_rows(results, arms, runs), "n_results": len(results),
        "confidence_interval": "95 %, Student t over seeds",
        "protocols": {a: runs.protocol.get(a) for a in arms}}
    if runs.problems:
        out["corrupt_runs"] = runs.problems
    if cfg.get("claims") and not cfg.get("cells"):
        out["family"] = {"claims": len(cfg["claims"]), "adjustment": "holm", "alpha": 0.05,
                         "sides": "two-sided t (each direction at 2.5 %); TOST for ~"}
        judged = judged or judge_claims(rd.root, cfg, runs)
        out["claims"] = [r.as_dict() for r in judged[1]] if judged else []
    return out


SEQUENTIAL_TEXT = (
    " This directory was grown by a sequential design (`--until-decided`, the section "
    "\"Decided with the fewest seeds\"): after looking at the results on the way, a fixed-n "
    "test is no longer valid, so the verdict column is the design's decision, and a claim it "
    "left undecided is **not supported**; the p and Holm p columns are the fixed-n numbers, "
    "for reference only, and a paired claim's interval is the repeated confidence interval "
    "at the last look, valid at whatever look the design stopped (the naive 95 % one is "
    "too narrow after looking).")


def _decisions(run_dir: Path) -> dict[str, Any] | None:
    """The unit of a (grid-less) directory's sequential record, whose decisions are the
    claims' verdicts; None when the directory was not grown by --until-decided."""
    rec = read_record(run_dir)
    unit = None if rec is None else (rec.get("units") or {}).get("")
    # with its design's plan: the claims show the repeated interval of its last look
    return None if unit is None else {**unit, "plan": rec["plan"]}


def provenance(run_dir: Path) -> dict[str, Any]:
    """What made the runs: from history.json, every invocation's wall time, commit, machine."""
    hist = RunDir(run_dir).history()
    done = [h for h in hist if "wall_s" in h]
    return {"invocations": len(hist), "unfinished": len(hist) - len(done),
            "wall_s": round(sum(h["wall_s"] for h in done), 1),
            "commits": list(dict.fromkeys(h["commit"] for h in hist if h.get("commit"))),
            "dirty": any(h.get("dirty") for h in hist),
            "machines": list(dict.fromkeys(h["machine"] for h in hist if h.get("machine")))}


@dataclass(frozen=True)
class _Report:
    """What every section of report.md reads: the directory, its config and runs, and the
    numbers computed once (the summary's rows, the published margin)."""

    run_dir: Path
    rd: RunDir
    cfg: dict[str, Any]
    runs: Runs
    summary: dict[str, Any]
    margin: float
    baseline: str | None  # sharpen report --baseline
    judged: Judged | None = None  # the Claims table and its claims (judge_claims)

    @property
    def arms(self) -> list[str]:
        return list(self.cfg.get("arms", {}))

    @property
    def has_val(self) -> bool:
        return any(a.get("val_size") for a in self.cfg.get("arms", {}).values())

    @property
    def present(self) -> list[str]:
        """The arms with results, in the file's order (RunDir.config)."""
        return [a for a in self.arms if a in self.runs.values]

    @property
    def compared(self) -> bool:
        """Whether the arms are compared with a baseline (two or more, not a grid's cells)."""
        return len(self.present) > 1 and not self.cfg.get("cells")


def write_report(run_dir: Path, baseline: str | None = None, robust: bool = False) -> Path:
    """(Re)build every report file of ``run_dir`` from the files in it alone; ``baseline``
    overrides the experiment's baseline arm for the paired comparisons; ``robust`` adds the
    rliable-style section. report.md is its sections in order, each built by one function."""

    run_dir = Path(run_dir)
    rd = RunDir(run_dir)
    cfg = rd.config()  # raises a clear error if this is not a run directory
    runs = load_runs(run_dir)
    judged = judge_claims(run_dir, cfg, runs)  # once: summary.json and report.md show them
    summary = summarize(run_dir, runs, judged)
    summary["environment"] = rd.environment()
    summary["provenance"] = provenance(run_dir)
    rd.write_summary(summary)
    rd.write_table(summary["arms"], table_columns())
    margin = parse_amount(cfg.get("published_margin") or DEFAULT_MARGIN, get_metric("test_acc"),
                          "published_margin")
    r = _Report(run_dir, rd, cfg, runs, summary, margin, baseline, judged)
    title = f"{cfg.get('name')}" + (f" (profile {cfg['profile']})" if cfg.get("profile") else "")
    curves = curve_data(run_dir)
    png = plot_curves(run_dir, r.arms, title=title, data=curves)
    study = variance_section(run_dir)  # a variance study: its sources, not paired arms
    parts = _header(r) + _results_section(r) + study
    if r.compared and not study:
        base = _baseline_arm(r)
        parts += _paired_sections(r, base, robust) + _stage_jumps_section(r, base)
    parts += _claims_section(r) + _grid_sections(r) + _published_sections(r)
    parts += _closing_sections(r, png, curve_notes(curves, r.arms))
    return rd.write_report("\n".join(parts))


def _header(r: _Report) -> list[str]:
    """The title, description, paper, data, seeds and machine, twin runs and wall time."""
    cfg, env, prov = r.cfg, r.summary["environment"], r.summary["provenance"]
    parts = [f"# {cfg.get('name')}" + (f" (profile `{cfg['profile']}`)" if cfg.get("profile") else ""),
             "", cfg.get("description", "").strip(), ""]
    if cfg.get("paper"):
        parts += [f"Reproduces: {cfg['paper']}", ""]
    arms_cfg = list(cfg.get("arms", {}).values())
    data = sorted({f"{a['dataset']}" + (f" from {a['data_dir']}" if a.get("data_dir") else "")
                   + (f", {a['pairs']} pairs" if a.get("pairs") else "")
                   + (f", train subset {a['train_size']}" if a.get("train_size") else "")
                   + (f", val {a['val_size']}" if a.get("val_size") else "")
                   + (f", test {a['test_size']}" if a.get("test_size") else "")
                   for a in arms_cfg})
    epochs = sorted({a["epochs"] for a in arms_cfg})
    parts += [f"Data: {'; '.join(data)} · epochs: {', '.join(map(str, epochs))}", ""]
    parts += _streams_line(cfg.get("arms", {}))
    results_all = load_results(r.run_dir)
    modes = {x.get("deterministic") for x in results_all} - {None}
    twins = sum(1 for x in results_all if x.get("twin_of"))
    det = ("" if not modes else " · deterministic kernels: " + (
        "on" if modes == {True} else "off" if modes == {False} else "on for some runs"))
    parts += [f"Seeds: {r.summary['seeds']} · results: {r.summary['n_results']} runs · "
              f"torch {env.get('torch', '?')} on {env.get('cuda') or env.get('processor', '?')} "
              f"({env.get('cpu_count', '?')} cores){det}", ""]
    parts += _stacking_line((cfg.get("plan") or {}).get("arms") or {}, results_all)
    if twins:
        parts += [f"Twin runs: {twins} of the results are copies of runs a twin arm trained "
                  "(the same configuration apart from keys of techniques that are off, the "
                  "same seeds, stacking and threads, hence the same numbers); their "
                  f"`{RESULT}` names the arm in `twin_of`.", ""]
    if prov["invocations"]:
        parts += [f"Wall time: {prov['wall_s'] / 60:.1f} min over {prov['invocations']} "
                  f"invocation(s)" + (f" ({prov['unfinished']} stopped before the end, not "
                                      "counted)" if prov["unfinished"] else "")
                  + f" · commit {', '.join(c[:10] for c in prov['commits']) or 'unknown'}"
                  + (" with uncommitted changes" if prov["dirty"] else "")
                  + f" · {'; '.join(prov['machines'])}", ""]
    return parts


def _stacking_line(plan_arms: dict[str, Any], results: list[dict[str, Any]]) -> list[str]:
    """What this machine's calibration chose, when the plan used one (else nothing: the
    default stack size is what every report before calibrations says). Arms of one choice
    are said once (a grid's cells share their model's), the arms it did not plan too. Each
    seed's ``result.json`` says the plan it trained with: a directory grown after a new
    calibration (or ``--forget``) holds seeds of both, which config.json's plan, the
    latest, does not tell apart."""
    def said(c: dict[str, Any] | None) -> str:  # "up to": fewer seeds, or spread over cores
        if not c:
            return ""
        rates = ", ".join(f"{k}: {v:g}" for k, v in sorted(c["seed_steps_per_s"].items(),
                                                           key=lambda kv: int(kv[0])))
        return (f"up to {c['stack']} seed(s) per job (seed-steps/s by stack size with "
                f"{c['processes']} processes busy: {rates}; {c['measured'][:10]})")

    trained: dict[str, dict[str, list[int]]] = {}  # arm → what it said → its seeds
    for r in results:
        if r.get("arm") in plan_arms and isinstance(r.get("plan"), dict):
            trained.setdefault(r["arm"], {}).setdefault(
                said(r["plan"].get("calibrated")), []).append(int(r["seed"]))
    by: dict[str, list[str]] = {}
    for arm, a in plan_arms.items():
        seeds = trained.get(arm) or {said(a.get("calibrated")): []}
        for t, ss in seeds.items():
            by.setdefault(t, []).append(arm if len(seeds) == 1 else f"{arm}'s seeds "
                                        + _ranges(sorted(ss)))
    if set(by) == {""}:
        return []
    text = "; ".join(t + ("" if arms == list(plan_arms) else f" for {_arms_named(arms)}")
                     for t, arms in by.items() if t)
    if "" in by:
        text += f"; not by it: {_arms_named(by[''])} (their {RESULT}'s plan says how)"
    return [f"Stacking chosen by this machine's calibration (`sharpen calibrate`): {text}. "
            "On the CPU the stack size changes no number, only the time.", ""]


def _ranges(seeds: list[int]) -> str:
    """0, 1, 2, 5 → "0-2, 5"."""
    runs: list[list[int]] = []
    for s in seeds:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _arms_named(arms: list[str]) -> str:
    """A few arms by name, many by count (a grid's cells would fill the header)."""
    return ", ".join(arms) if len(arms) <= 3 else f"{len(arms)} arms ({arms[0]}, {arms[1]}, …)"


def _streams_line(arms: dict[str, Any]) -> list[str]:
    """Which random streams followed the seed, when an arm set ``vary`` (else nothing: the
    default, every stream but the split, is what every report before ``vary`` says)."""
    if all(a.get("vary") is None for a in arms.values()):
        return []
    said = {arm: Streams(a.get("vary"), int(a.get("pin_seed") or 0),
                         int(a.get("split_seed") or 0)).describe() for arm, a in arms.items()}
    if len(set(said.values())) == 1:
        return [f"Random streams: {next(iter(said.values()))}.", ""]
    return ["Random streams, per arm: " + "; ".join(f"{arm}: {d}" for arm, d in said.items())
            + ".", ""]


def _results_section(r: _Report) -> list[str]:
    """Every arm's final-epoch numbers, and the runs whose files cannot be read."""
    keep_best = any(a.get("keep_best") for a in r.cfg.get("arms", {}).values())
    parts = ["## Results (final epoch)", "",
             "Mean, sample sd and the 95 % confidence interval of the mean (Student t over "
             "seeds; n/a for one run) of the final epoch. "
             + ("Selection happens on validation: the \"at best-val epoch\" column is the test "
                "accuracy at each run's epoch of best validation accuracy."
                if r.has_val else "This experiment has no validation split, so any choice of "
                "epoch or cell is made on test (optimistic).")
             + (" The keep-best column is the best test epoch: selected on test, optimistic."
                if keep_best else ""), "",
             markdown_table(r.summary["arms"], keep_best, bool(r.cfg.get("report_error"))), ""]
    if r.runs.problems:
        parts += ["Runs whose files cannot be read count as not run (the next `sharpen run` "
                  "of this directory trains them again): " + "; ".join(r.runs.problems), ""]
    return parts


def _baseline_arm(r: _Report) -> str:
    """The arm the others are compared with: --baseline, else the file's, else the first
    arm with results (the file's baseline arm may not have run); a --baseline without
    results is refused."""
    return baseline_of(r.cfg, r.present, r.baseline)


def baseline_of(cfg: dict[str, Any], present: list[str], baseline: str | None = None) -> str:
    """:func:`_baseline_arm` from the config and the arms with results (the terminal's
    summary compares with the same arm report.md does)."""
    base = baseline or cfg.get("baseline") or present[0]
    if baseline is None and base not in present:  # the file's baseline arm was not run
        base = present[0]
    if base not in present:
        raise SharpenError(f"baseline {base!r} is not an arm with results; arms: "
                           f"{', '.join(present)}")
    return base


def _paired_sections(r: _Report, base: str, robust: bool) -> list[str]:
    """Each arm against ``base`` seed by seed, per image, and (``robust``) rliable-style."""
    parts: list[str] = []
    if r.rd.arm_order()[1] == ARM_ORDER_ALPHABETICAL:
        parts += ["The arms are listed alphabetically: this directory was made before "
                  "sharpen recorded the order of the arms in the experiment file, and holds "
                  "no experiment file to read it from." + (
                      f" The baseline `{base}` is the alphabetically first arm with results, "
                      "not necessarily the file's first: give `sharpen report DIR "
                      "--baseline ARM` to choose it." if base != r.baseline and
                      base != r.cfg.get("baseline") else ""), ""]
    metric = "test_error" if r.cfg.get("report_error") else "test_acc"
    parts += [f"## Paired comparisons with `{base}` ({metric.replace('_', ' ')}, final epoch)",
              "", "Arms of one protocol (dataset, split, epochs: the same images in the same "
              "order for a seed) share their seeds, so each arm is compared with the "
              "baseline seed by seed: the mean per-seed difference, its 95 % t interval, "
              "the paired t-test's p-value, the exact sign-flip test's p (all 2ⁿ sign "
              "patterns) and Cohen's d_z. Arms of different protocols, or without two common "
              "seeds: Welch's unpaired t-test and Hedges' g, labelled. Per comparison, "
              "unadjusted: the verdicts are in the claims section.", "",
              paired_table(r.runs, r.present, base, metric), ""]
    img = image_level_section(r.run_dir, r.runs, r.present, base)
    if img:
        parts += ["## Test-set uncertainty (per-image predictions)", "", img]
    if robust:
        parts += [f"## Robust summaries (rliable-style, {metric.replace('_', ' ')})", "",
                  "The interquartile mean (the mean of the middle 50 % of runs) and the "
                  "probability that a random run of the arm beats a random run of the "
                  "baseline, with percentile-bootstrap intervals over seeds. At small n the "
                  "bootstrap under-covers: the t intervals above stay the reference "
                  "(docs/methods/statistics.md).", "",
                  robust_section(r.runs, r.present, base, metric), ""]
    return parts


def _stage_jumps_section(r: _Report, base: str) -> list[str]:
    """A curriculum arm's test accuracy where its stage changes, paired with ``base``."""
    md, jumps = stage_jumps(r.run_dir, base)
    if not jumps:
        return []
    return [f"## The curve at each stage start (paired with `{base}`)", "",
            f"Where a curriculum arm's stage changes (its plan column in {METRICS}), "
            "the change of test accuracy from the epoch before, minus the baseline's "
            "change over the same epochs, per seed: the paper's \"curve climbs when "
            "each sharper stage begins\", judged from the 95 % interval.", "", md, ""]


def _claims_section(r: _Report) -> list[str]:
    """The paper's claims judged as one family (a grid's arms are cells, not the claims')."""
    if r.judged is None:
        return []
    unit = _decisions(r.run_dir)
    md, judged = r.judged
    m = sum(x.p is not None for x in judged) or 1  # untested claims do not count
    return ["## Claims", "", "Each claim of the paper as a checkable statement. "
            + FAMILY_TEXT.format(m=m, lvl=f"{0.05 / m:.3g}")
            + (SEQUENTIAL_TEXT if unit is not None else ""), "", md, ""]


def _grid_sections(r: _Report) -> list[str]:
    """A grid's table (also written as grid.csv), its claim maps and its budget curves."""
    if not r.cfg.get("cells"):
        return []
    grid_md, grid_rows = grid_table(r.cfg, load_results(r.run_dir), r.runs)
    r.rd.write_grid(grid_rows, list(grid_rows[0]) if grid_rows else [])
    chosen = "validation" if r.has_val else "test (no validation split: optimistic)"
    parts = [f"## Grid: mean test accuracy % per cell (95 % CI over seeds; the cell chosen on "
             f"{chosen} per arm in bold)", "", grid_md, ""]
    parts += map_section(r.run_dir, r.cfg, r.runs)
    parts += budget_section(r.run_dir, r.cfg, r.runs, load_results(r.run_dir))
    return parts


def _published_sections(r: _Report) -> list[str]:
    """Ours beside the paper's numbers: its grid cell by cell, its arms, or (a grid's
    ``[published.ARM]``) the numbers shown alone."""
    cfg = r.cfg
    parts: list[str] = []
    for axis, md in published_grid_tables(cfg, r.runs, r.margin):
        parts += [f"## Ours beside the paper's {axis} grid, cell by cell", "",
                  f"Our mean test accuracy % with its 95 % CI beside the paper's mean. "
                  f"{_agreement_text(r.margin)}", "", md, ""]
    if cfg.get("published") and not cfg.get("cells"):
        parts += ["## Ours beside the published numbers", "", _agreement_text(r.margin), "",
                  published_table(cfg["published"], r.summary["arms"], r.runs, r.margin,
                                  cfg.get("published_protocol"), cfg.get("arms")), ""]
    elif cfg.get("published"):  # a grid's: shown, never silently left out
        parts += ["## The published numbers (not set beside the grid's cells)", "",
                  "The experiment's `[published.ARM]` numbers: each is the paper's for an arm "
                  "at the arm's own settings, and this grid runs every arm at the grid's "
                  "settings instead, so no cell is judged against them. "
                  "`[published_grid.AXIS]` sets the paper's numbers beside ours cell by cell"
                  + (" (above)." if cfg.get("published_grid") else "."), "",
                  published_numbers(cfg["published"], cfg.get("arm_order") or []), ""]
    return parts


def _agreement_text(margin: float) -> str:
    """How ours and a published number are judged (docs/methods/statistics.md)."""
    return (f"The difference of our mean and the paper's is judged with what the paper "
            f"states of its runs (the column \"the paper's runs taken as\"): **its n and sd** "
            f"(Banerjee's interval from both sds, each with its own degrees of freedom: at "
            f"least 95 % whatever their ratio), **its n, our sd as its sd** (s·√(1/n + "
            f"1/n_paper), n − 1 degrees of freedom), or **one run** where it gives no n (the "
            f"published number is a single draw, s·√(1 + 1/n): the widest assumption, valid "
            f"whatever its n). Each published number is known only to half a unit of its last "
            f"printed digit, and every interval is widened by that. **reproduced**: the 90 % "
            f"interval of the difference lies within ± {100 * margin:g} pp (two one-sided "
            f"tests at 5 %; the margin is the experiment's `published_margin`); else "
            f"**better** / **worse than published** when the 95 % interval excludes 0; else "
            f"**undecided**; **not comparable** where our protocol differs from the one the "
            f"paper's numbers came from (the experiment's `published_protocol`): shown, not "
            f"judged (docs/methods/statistics.md, \"Ours beside a published number\").")


def _closing_sections(r: _Report, png: Path | None, notes: list[str]) -> list[str]:
    """The notes, the curves (with what their lines do not show: ``notes``), the
    sequential design's looks and the figures techniques declare (of their run files, and
    of their images)."""
    parts: list[str] = []
    if r.cfg.get("notes"):
        parts += ["## Notes", "", r.cfg["notes"].strip(), ""]
    if png or notes:
        parts += ["## Curves", ""] + ([f"![curves]({png.name})", ""] if png else [])
        parts += [f"- {n}" for n in notes] + ([""] if notes else [])
    parts += report_section(r.run_dir, sequential_rules_out(r.cfg, r.runs,
                                                            read_record(r.run_dir)))
    for tech in TECHNIQUES:  # each technique's figure of its run files (gradient flow's)
        if tech.run_figure is not None:
            parts += run_figure_section(tech.run_figure, r.run_dir, r.arms)
    for f, title in figure_sections():
        if (r.run_dir / f).exists():
            parts += [f"## {title}", "", f"![{f}]({f})", ""]
    return parts
