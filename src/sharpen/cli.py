"""``sharpen`` command line: a thin shell over the library."""

from __future__ import annotations

import argparse
import csv
import shlex
import shutil
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sharpen import __version__
from sharpen.console import protect_output
from sharpen.errors import SharpenError
from sharpen.metrics import REGISTRY, get_metric, parse_amount
from sharpen.rundir import CONFIG, REPORT, VARIANCE_FIGURE

if TYPE_CHECKING:
    from sharpen.experiments.config import Experiment


def _cmd_grid(a: argparse.Namespace) -> int:
    from sharpen.experiments import load_experiment  # lazy: start-up: torch

    if not a.axis:
        exp = load_experiment(a.experiment, a.profile, list(a.set or []), a.runs)
        if not exp.grid:
            raise SharpenError(f"{a.experiment}: no grid to run; give --axis KEY=V1,V2,... or a "
                               "profile with grid = { key = [values] } (or use sharpen run)")
    return _cmd_run(a)


def _cmd_run(a: argparse.Namespace) -> int:
    from sharpen.experiments import load_experiment, run_experiment  # lazy: start-up: torch

    alone = [flag for flag, given in (
        ("--max-runs", getattr(a, "max_runs", None) is not None),
        ("--step", getattr(a, "step", None) is not None),
        ("--pilot", getattr(a, "pilot", None) is not None),
        ("--spend-anyway", getattr(a, "spend_anyway", False))) if given]
    if alone and not getattr(a, "until_decided", False):  # else silently a fixed-n run
        raise SharpenError(f"{alone[0]} applies to --until-decided only (without it the run "
                           "trains --runs seeds per arm); add --until-decided, or leave "
                           f"{alone[0]} out")
    sets = list(a.set or [])
    if a.no_verify:
        sets.append("verify=false")
    if a.arms:
        sets.append(f"select_arms={a.arms!r}")
    exp = load_experiment(a.experiment, a.profile, sets, a.runs, getattr(a, "axis", None))
    out = Path(a.out) if a.out else None
    given = Path(a.experiment)
    if out is None and given.is_dir() and (given / CONFIG).is_file():
        out = given  # `sharpen run DIR`: continue it (finished runs are kept)
    placement = dict(workers=a.workers, threads=a.threads, backend=a.backend,
                     address=a.address, command=_command_line(a), log=a.log)
    if getattr(a, "until_decided", False):
        from sharpen.experiments.sequential import run_until_decided  # lazy: start-up: torch

        out, results, _ = run_until_decided(exp, out, a.max_runs, a.step, quiet=a.quiet,
                                            pilot=Path(a.pilot) if a.pilot else None,
                                            spend_anyway=a.spend_anyway, **placement)
    else:
        out, results = run_experiment(exp, out, quiet=a.quiet, **placement)
    _print_summary(out)
    return _finished(out, results)


def _finished(out: Path, results: list[dict]) -> int:
    """Where the run went, and its failed runs on stderr: exit 1 when any failed."""
    print(f"\nrun directory: {out}\nreport: {out / REPORT} (every table and figure)")
    failed = [r for r in results if r.get("status") == "failed"]
    if failed:
        print(f"{len(failed)} run(s) failed: " + ", ".join(
            f"{r['arm']} seed {r['seed']} ({r.get('error', '')})" for r in failed), file=sys.stderr)
        return 1
    return 0


def _cmd_variance(a: argparse.Namespace) -> int:
    from sharpen.experiments import load_experiment  # lazy: start-up: torch
    from sharpen.experiments.variance import run_study  # lazy: start-up: torch

    if Path(a.experiment).is_dir() and (Path(a.experiment) / CONFIG).is_file():
        raise SharpenError(f"{a.experiment} is a run directory; a study starts from an "
                           f"experiment: continue one with `sharpen run {a.experiment}`, or "
                           "repeat its sharpen variance command with --out")
    sets = list(a.set or []) + (["verify=false"] if a.no_verify else [])
    exp = load_experiment(a.experiment, a.profile, sets)
    out, results = run_study(exp, a.arm, a.seeds, Path(a.out) if a.out else None,
                             quiet=a.quiet, workers=a.workers, threads=a.threads,
                             command=_command_line(a))
    _print_summary(out)
    _print_study(out)
    return _finished(out, results)


def _print_study(out: Path) -> None:
    """A variance study's table and verdict (nothing for another directory)."""
    from sharpen.reports.variance_study import terminal_text  # lazy: start-up: matplotlib

    text = terminal_text(out, shutil.get_terminal_size().columns if sys.stdout.isatty() else None)
    if text:
        print()
        print(text)


def _command_line(a: argparse.Namespace) -> str:
    """The command as typed (sys.argv when run from a shell), kept in history.json."""
    argv = getattr(a, "argv", None) or sys.argv[1:]
    return "sharpen " + " ".join(shlex.quote(x) for x in argv)


def _cmd_report(a: argparse.Namespace) -> int:
    from sharpen.experiments.runner import redraw_schedule  # lazy: start-up: torch
    from sharpen.reports import write_report  # lazy: start-up: torch

    if a.claims_from:
        from sharpen.experiments.adopt import adopt_claims  # lazy: start-up: torch

        adopt_claims(Path(a.run_dir), a.claims_from)
    write_report(Path(a.run_dir), a.baseline, robust=a.stats == "robust")
    redraw_schedule(Path(a.run_dir))
    _print_summary(Path(a.run_dir), a.baseline)
    _print_study(Path(a.run_dir))
    print(f"\nreport: {Path(a.run_dir) / REPORT} (every table and figure)")
    return 0


def _print_summary(out: Path, baseline: str | None = None) -> None:
    """What a run or a report ends with: the compact table and every claim's verdict, one
    line each (report.md's per-arm table is 13 columns: it wraps in a terminal)."""
    from sharpen.reports.terminal import summary_text  # lazy: start-up: torch

    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    print()
    print(summary_text(out, baseline, width))


def _cmd_plan_seeds(a: argparse.Namespace) -> int:
    from sharpen.reports.power import plan_from_dir, plan_table  # lazy: start-up: torch

    if not 0.5 <= a.power < 1:  # a fraction; below one half no plan is worth making
        raise SharpenError(f"plan-seeds --power {a.power:g}: the power is a fraction from 0.5 "
                           "up to (not including) 1, e.g. 0.8 or 0.9"
                           + (" (a percentage? give it as a fraction)" if a.power >= 1 else ""))
    if a.run_dir:
        print(plan_from_dir(Path(a.run_dir), a.effect, a.power))
        return 0
    if a.effect is None or a.sd is None:
        raise SharpenError("plan-seeds: give --effect and --sd (e.g. --effect '0.5 pp' --sd "
                           "'0.4 pp'), or a pilot run directory")
    m = get_metric(a.metric)
    print(plan_table(parse_amount(a.effect, m, "--effect", signed=True),
                     parse_amount(a.sd, m, "--sd"), a.metric, a.claims, a.power))
    return 0


def _cmd_compare(a: argparse.Namespace) -> int:
    from sharpen.reports.compare import compare_dirs  # lazy: start-up: torch

    print(compare_dirs(a.run_dirs, a.metric, a.baseline, a.format, a.out), end="")
    if a.out:
        print(f"written: {a.out}", file=sys.stderr)
    return 0


def _cmd_summary(a: argparse.Namespace) -> int:
    from sharpen.reports.summary import write_summary  # lazy: start-up: torch

    out = Path(a.out).with_suffix(".png")
    _, table, left_out = write_summary(a.run_dirs, out)
    print(table)
    for note in left_out:
        print(f"summary: left out {note}", file=sys.stderr)
    print(f"written: {out}, {out.with_suffix('.pdf')}, {out.with_suffix('.md')}", file=sys.stderr)
    return 0


def _cmd_list(a: argparse.Namespace) -> int:
    from sharpen.data import get_spec, list_datasets  # lazy: start-up: torch
    from sharpen.experiments import list_bundled  # lazy: start-up: torch
    from sharpen.models import (  # lazy: start-up: torch
        count_parameters,
        create_model,
        list_models,
        model_paper,
    )

    what = a.what
    if what in (None, "models"):
        print("models:")
        for m in list_models():
            n = count_parameters(create_model(m))
            print(f"  {m:28s} paper {model_paper(m) or '-':4s} {n:>9,} params")
    if what in (None, "datasets"):
        print("datasets:")
        for d in list_datasets():
            s = get_spec(d)
            print(f"  {d:16s} {'×'.join(map(str, s.shape)):10s} {s.num_classes} classes")
    if what in (None, "experiments"):
        from sharpen.experiments.config import BUNDLED_DIR, read_file  # lazy: start-up: torch

        print("experiments:")
        for e in list_bundled():
            if not a.verbose:
                print(f"  {e}")
                continue
            raw = read_file(BUNDLED_DIR / f"{e}.toml")
            profiles = ", ".join(raw.get("profiles") or {}) or "-"
            first = " ".join((raw.get("description") or "").split())
            print(f"  {e}  (paper {raw.get('paper', '-').split(' ')[0]}; profiles: {profiles})")
            print(f"      {first[:300]}{'…' if len(first) > 300 else ''}")
    return 0


def _cmd_keys(a: argparse.Namespace) -> int:
    from sharpen.experiments.config import key_table  # lazy: start-up: torch

    rows = key_table()
    if a.markdown:
        print("| key | type | default | owner | meaning |\n|---|---|---|---|---|")
        for r in rows:
            cell = {k: str(v).replace("|", "\\|") for k, v in r.items()}  # a | splits a cell
            print(f"| `{cell['key']}` | {cell['type']} | `{cell['default']}` | {cell['owner']} | "
                  f"{cell['meaning']} |")
        return 0
    print("\n".join(_key_lines(rows, shutil.get_terminal_size().columns)))
    return 0


def _key_lines(rows: list[dict[str, Any]], width: int) -> list[str]:
    """``sharpen keys`` in ``width`` columns: each key, then its type and default and its
    meaning wrapped beside it at spaces (never inside a word; padding every type to the
    longest one made every line 150 columns and the terminal cut words)."""
    kw = max(len(r["key"]) for r in rows) + 2
    wrap = textwrap.TextWrapper(width=max(width - 1, kw + 30), subsequent_indent=" " * kw,
                                break_long_words=False, break_on_hyphens=False)
    out = []
    for r in rows:
        out += wrap.wrap(f"{r['key']:{kw}s}{r['type']}, default {r['default']}")
        out += wrap.wrap(" " * kw + str(r["meaning"])) if r["meaning"] else []
    return out


def _cmd_data(a: argparse.Namespace) -> int:
    from sharpen.data import fetch, verify_files  # lazy: start-up: torch

    if a.action == "fetch":
        for p in fetch(a.name, a.root):
            print(f"{a.name}: {p}")
    else:
        for p, md5 in verify_files(a.name, a.root):
            print(f"ok  {md5}  {p}")
    return 0


def _cmd_schedule(a: argparse.Namespace) -> int:
    from sharpen.experiments import load_experiment  # lazy: start-up: torch
    from sharpen.techniques import plan_columns, schedule_rows  # lazy: start-up: torch

    exp = load_experiment(a.experiment, a.profile, a.set)
    plans = {arm: schedule_rows(exp.arms[arm]) for arm in _schedule_arms(exp, a.arm)}
    if a.csv:  # one valid CSV: an arm column, the union of the arms' columns
        cols = ["arm"] + [c for c in plan_columns() if any(c in r[0] for r in plans.values())]
        w = csv.DictWriter(sys.stdout, cols, lineterminator="\n", restval="")
        w.writeheader()
        for arm, rows in plans.items():
            w.writerows({"arm": arm, **r} for r in rows)
        return 0
    for arm, rows in plans.items():
        cols = [c for c in plan_columns() if c in rows[0]]
        print(f"arm {arm}:")
        print("  " + "  ".join(f"{c:>12s}" for c in cols))
        for r in rows:
            print("  " + "  ".join(f"{r[c]:>12g}" for c in cols))
    return 0


def _schedule_arms(exp: Experiment, arm: str | None) -> list[str]:
    """The runs `sharpen schedule --arm` shows: every arm (grid cell) without one; an
    arm of the file: its cells in a grid; a cell by its full name."""
    if arm is None or arm in exp.arms:
        return list(exp.arms) if arm is None else [arm]
    cells = [name for name, c in exp.cells.items() if c.get("arm") == arm]
    if cells:
        return cells
    bases = list(dict.fromkeys(c["arm"] for c in exp.cells.values())) or list(exp.arms)
    raise SharpenError(f"--arm {arm!r}: no arm {arm!r} in {exp.name}; arms: {', '.join(bases)}"
                       + (" (or one grid cell by its name, e.g. "
                          f"{next(iter(exp.cells))})" if exp.cells else ""))


def _cmd_bench(a: argparse.Namespace) -> int:
    if a.out:  # a file or an unwritable --out: one line, before minutes of measuring
        from sharpen.io import check_writable  # lazy: start-up: yaml

        check_writable(a.out)
    if a.what == "gpu":
        from sharpen.bench.gpu import run_gpu_bench  # lazy: start-up: torch

        out = run_gpu_bench(a.out, a.profile, a.device,
                            Path(a.targets) if a.targets else None)
        print(f"benchmark directory: {out}")
        return 0
    if a.what == "train":
        from sharpen.bench import run_train_bench  # lazy: start-up: torch

        out = run_train_bench(a.out, quick=a.profile == "quick", device=a.device or "cpu",
                              targets=Path(a.targets) if a.targets else None)
        print(f"benchmark directory: {out}")
        return 0
    if a.what == "profile":
        from sharpen.bench.profile import run_profile_bench  # lazy: start-up: torch

        out = run_profile_bench(a.out, quick=a.profile == "quick")
        print(f"benchmark directory: {out}")
        return 0
    from sharpen.bench import run_conv_bench  # lazy: start-up: torch

    out = run_conv_bench(a.profile, a.out, a.repeats)
    print(f"benchmark directory: {out}")
    return 0


def _cmd_calibrate(a: argparse.Namespace) -> int:
    from sharpen.experiments import calibration  # lazy: start-up

    if a.forget and (a.experiment or a.show):  # it drops them all: not what naming one says
        raise SharpenError(f"--forget drops every calibration of this machine, not those of "
                           f"{' '.join(a.experiment) or '--show'}: give it alone")
    if a.forget:
        had = calibration.forget()
        print(f"{'forgot' if had else 'nothing cached for'} this machine's calibrations in "
              f"{calibration.cache_path()}")
        return 0
    if a.show or not a.experiment:
        rows = calibration.stored()
        if not rows and not a.show:
            raise SharpenError("name one or more experiments (bundled names, files or run "
                               "directories) whose models to time, e.g. sharpen calibrate "
                               "sharpening-mnist; --show lists this machine's calibrations")
        print(f"{calibration.cache_path()}: {len(rows)} calibration(s) for this machine")
        for r in rows:
            rates = ", ".join(f"{k}: {v:g}" for k, v in sorted(  # JSON's keys: "10" < "2"
                r["seed_steps_per_s"].items(), key=lambda kv: int(kv[0])))
            print(f"  {r['model']} batch {r['batch_size']}: up to {r['stack']} seed(s) per job "
                  f"(seed-steps/s {rates}; {r['processes']} processes; {r['measured']})")
        return 0
    from sharpen.experiments import load_experiment, stack_timing  # lazy: start-up: torch

    cfgs = [c for name in a.experiment
            for c in load_experiment(name, a.profile, list(a.set or [])).arms.values()]
    stack_timing.calibrate(cfgs, rounds=a.rounds, window=a.window)
    return 0


def _run_parser(sub: argparse._SubParsersAction, cmd: str) -> None:
    helps = {"run": "run an experiment: arms × seeds (× grid cells, if its profile or --axis "
                    "has a grid), table and report",
             "grid": "run a grid search: every arm × every cell of the --axis values (or the "
                     "profile's grid) × seeds; prints each cell's arms (n, mean [95 %% CI], Δ vs the "
                     "cell's baseline) and the claims' verdicts, " + REPORT + " the grid table with "
                     "the cell chosen on validation; refuses an experiment without a grid"}
    r = sub.add_parser(cmd, help=helps[cmd], description=helps[cmd])
    r.add_argument("experiment", help="bundled experiment name, a .toml/.yaml file, or a run "
                                      "directory (continues it; --out elsewhere repeats it)")
    r.add_argument("--profile", help="profile in the file, e.g. quick, full, smoke")
    r.add_argument("--runs", type=int, help="number of seeds per arm (overrides the file)")
    r.add_argument("--out", help="run directory (default runs/<name>/<timestamp>); "
                                 "re-running into it finishes only missing runs")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a key, e.g. --set epochs=3 --set arms.base.lr=0.1")
    r.add_argument("--axis", action="append", metavar="KEY=V1,V2,...",
                   help="a grid axis, e.g. --axis lr=0.1,0.01 --axis batch_size=50,100")
    r.add_argument("--no-verify", action="store_true", help="skip dataset md5 checks")
    r.add_argument("--arms", help="comma-separated subset of the experiment's arms to run")
    r.add_argument("--quiet", action="store_true",
                   help="print only the final table and the claims' verdicts")
    if cmd == "run":
        r.add_argument("--until-decided", action="store_true",
                       help="add one stacked group of seeds per look until every claim is "
                            "decided (group-sequential, alpha spending) or --max-runs is spent")
        r.add_argument("--max-runs", type=int,
                       help="--until-decided: seeds per arm at most (default: the file's "
                            "max_runs, else 4 looks)")
        r.add_argument("--step", type=int,
                       help="--until-decided: seeds per look (default: stack_seeds if the "
                            "file fixes it, else 5)")
        r.add_argument("--pilot", metavar="DIR",
                       help="--until-decided: a run directory of these arms whose per-seed "
                            "differences give the sd: before the first look the smallest "
                            "effect the budget detects is stated, and a budget that cannot "
                            "detect min_effect (else the paper's effect) is refused")
        r.add_argument("--spend-anyway", action="store_true",
                       help="--until-decided: run the budget even when it cannot detect the "
                            "effect of interest, or when no --pilot gives its power")
    r.add_argument("--workers", type=int,
                   help="processes that run jobs side by side (default: cores ÷ the plan's "
                        "threads per job); only decides where jobs run, never a number")
    r.add_argument("--threads", type=int,
                   help="torch threads per job, overriding the plan's (config key threads; "
                        "default 1); part of the plan: it changes float rounding, so it is "
                        f"recorded in {CONFIG}")
    from sharpen.experiments.backends import BACKENDS  # lazy: start-up: not on import sharpen.cli

    r.add_argument("--backend", default="local", choices=list(BACKENDS),
                   help="where jobs run: " + "; ".join(f"{b.name}: {b.help}"
                                                       for b in BACKENDS.values()))
    r.add_argument("--address", help="Ray cluster address (default $RAY_ADDRESS, else local)")
    r.add_argument("--log", action="append", choices=["tensorboard", "mlflow"],
                   help="also log every run to a tracker (repeatable; config key log): "
                        "TensorBoard under DIR/tensorboard, MLflow at $MLFLOW_TRACKING_URI "
                        "or DIR/mlflow.db")
    r.set_defaults(fn=_cmd_run if cmd == "run" else _cmd_grid)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(  # plain words: the module docstring is rst (``sharpen``)
        prog="sharpen", description="run, report and compare experiments: arms × seeds, paired "
                                    "statistics, claims judged; COMMAND --help says more")
    p.add_argument("--version", action="version", version=f"sharpen {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    for cmd in ("run", "grid"):
        _run_parser(sub, cmd)
    _variance_parser(sub)
    _reading_parsers(sub)
    _lookup_parsers(sub)
    _tool_parsers(sub)
    return p


def _variance_parser(sub: argparse._SubParsersAction) -> None:
    """variance: which source of randomness moves an arm's test accuracy."""
    h = ("a variance study: train one arm's seeds with one source of randomness following the "
         "seed at a time (init, data order, split, dropout, ...; the others pinned) and all "
         "together; reports each source's sd of test accuracy (chi-square 95 %% interval), its "
         "share of the all-sources variance and the test-set sampling sd, and draws "
         + VARIANCE_FIGURE)
    v = sub.add_parser("variance", help=h, description=h.replace("%%", "%"))
    v.add_argument("experiment", help="bundled experiment name or a .toml/.yaml file")
    v.add_argument("--arm", required=True, help="the arm to study (sharpen list experiments -v)")
    v.add_argument("--seeds", type=int, default=10,
                   help="seeds per source (default 10; each source and 'all' trains them; "
                        "more seeds into the same --out grow the study)")
    v.add_argument("--profile", help="profile in the file, e.g. quick, full, smoke")
    v.add_argument("--out", help="run directory (default runs/<name>-variance-<arm>/<timestamp>); "
                                 "re-running into it finishes only missing runs")
    v.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a key, as in run (e.g. --set data_dir=/data/mnist)")
    v.add_argument("--no-verify", action="store_true", help="skip dataset md5 checks")
    v.add_argument("--quiet", action="store_true", help="print only the tables")
    v.add_argument("--workers", type=int, help="processes that run jobs side by side, as in run")
    v.add_argument("--threads", type=int, help="torch threads per job, as in run")
    v.set_defaults(fn=_cmd_variance)


def _reading_parsers(sub: argparse._SubParsersAction) -> None:
    """report, compare, summary, plan-seeds: the commands that read run directories."""
    rp = sub.add_parser("report", help=f"rebuild {REPORT}, tables and figures from a run directory")
    rp.add_argument("run_dir", help=f"a run directory (holds {CONFIG})")
    rp.add_argument("--baseline", help="the arm the others are compared with, seed by seed "
                                       "(default: the experiment's baseline key, else its first arm)")
    rp.add_argument("--claims-from", metavar="EXPERIMENT",
                    help="record this experiment file's claims in the directory first (for "
                         "directories made before the file had claims)")
    rp.add_argument("--stats", choices=["t", "robust"], default="t",
                    help="robust: add rliable-style summaries (interquartile mean, P(A > B), "
                         "bootstrap intervals) to the t intervals")
    rp.set_defaults(fn=_cmd_report)

    cp = sub.add_parser("compare", help="one table (n, mean, sd, 95 %% CI, best, worst, paired "
                                        "difference with a baseline) across run directories")
    cp.add_argument("run_dirs", nargs="+", metavar="DIR", help="run directories to compare")
    cp.add_argument("--metric", default="test_acc",
                    help="a metric of the registry (sharpen.metrics): " + ", ".join(REGISTRY)
                    + " (default test_acc; selected_test_acc: at the best-val epoch)")
    cp.add_argument("--baseline", help="the row compared with (arm, or dir/arm; default: the first "
                                        "directory's baseline arm, else its first arm; in one "
                                        "grid directory each cell's own run of that arm)")
    cp.add_argument("--format", default="md", choices=["md", "csv", "latex"],
                    help="Markdown (default), CSV or a LaTeX tabular")
    cp.add_argument("--out", help="also write the table here and the metric's curves beside it "
                                  "(.png and .pdf)")
    cp.set_defaults(fn=_cmd_compare)

    sm = sub.add_parser("summary", help="every claim's verdict across run directories: one "
                                        "forest plot (PNG, PDF) and a compact table")
    sm.add_argument("run_dirs", nargs="+", metavar="DIR", help="run directories (a grid's "
                                                               "claims: one row per cell)")
    sm.add_argument("--out", default="summary.png",
                    help="the figure (.png, and .pdf beside it); the table goes beside it as "
                         ".md, its links relative to its folder (default: summary.png)")
    sm.set_defaults(fn=_cmd_summary)

    ps = sub.add_parser("plan-seeds", help="how many seeds would detect an effect (paired t-test "
                                            "power at the family's level)")
    ps.add_argument("run_dir", nargs="?", help="a pilot run directory: plan every claim in it "
                                               "from its sd of the per-seed differences")
    ps.add_argument("--effect", help="the difference to detect, with its unit: '0.5 pp'")
    ps.add_argument("--sd", help="the sd of the per-seed differences, with its unit: '0.4 pp'")
    ps.add_argument("--metric", default="test_acc", help="the metric (sets the unit)")
    ps.add_argument("--claims", type=int, default=1, help="claims in the family (Holm: α/m)")
    ps.add_argument("--power", type=float, default=0.8,
                    help="the power wanted, a fraction in [0.5, 1) (default 0.8)")
    ps.set_defaults(fn=_cmd_plan_seeds)


def _lookup_parsers(sub: argparse._SubParsersAction) -> None:
    """list, keys, schedule: what sharpen holds and what an experiment would do."""
    ls = sub.add_parser("list", help="list models, datasets or bundled experiments")
    ls.add_argument("what", nargs="?", choices=["models", "datasets", "experiments"],
                    help="only this list (default: all three)")
    ls.add_argument("-v", "--verbose", action="store_true",
                    help="experiments: their seed, profiles and description")
    ls.set_defaults(fn=_cmd_list)

    k = sub.add_parser("keys", help="every key of an experiment file: type, default, meaning")
    k.add_argument("--markdown", action="store_true", help="a Markdown table (docs/keys.md)")
    k.set_defaults(fn=_cmd_keys)

    s = sub.add_parser("schedule", help="print every scheduled quantity per epoch, without training")
    s.add_argument("experiment", help="bundled name, experiment file, or a run directory's "
                                      f"{CONFIG}")
    s.add_argument("--arm", help="only this arm")
    s.add_argument("--profile", help="profile in the file, e.g. quick")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key, as in run")
    s.add_argument("--csv", action="store_true", help="CSV instead of a table")
    s.set_defaults(fn=_cmd_schedule)


def _tool_parsers(sub: argparse._SubParsersAction) -> None:
    """bench, data: the benchmarks and the datasets' files."""
    b = sub.add_parser("bench", help="benchmarks: conv (NumPy conv implementations, paper 003 §2), "
                                     "train (our trainer vs a canonical DataLoader loop), gpu "
                                     "(paper 001's run, stacking, options on a GPU), profile "
                                     "(where a many-seed job spends its time)")
    b.add_argument("what", choices=["conv", "train", "gpu", "profile"], help="which benchmark")
    b.add_argument("--profile", default="quick", choices=["quick", "full"],
                   help="quick (seconds, for CI) or full (the measurements in docs/results)")
    b.add_argument("--out", help="benchmark directory (default runs/bench-<what>/<timestamp>)")
    b.add_argument("--repeats", type=int, help="conv: repetitions per measurement")
    b.add_argument("--device",
                   help="train: where both loops run, e.g. cpu or cuda (default cpu); gpu: "
                        "default cuda (--device cpu --profile quick checks the code path)")
    b.add_argument("--targets", help="train or gpu: a TOML file of targets to compare with, "
                                     "e.g. benchmarks/train-targets.toml, "
                                     "benchmarks/gpu-targets.toml")
    b.set_defaults(fn=_cmd_bench)

    c = sub.add_parser(
        "calibrate", help="time how many seeds one job should stack on this machine (every "
                          "core busy) for the experiments' models, and cache the choice: "
                          "later runs plan with it (it changes no number on the CPU)")
    c.add_argument("experiment", nargs="*", help="bundled names, experiment files or run "
                                                 "directories whose arms' models to time")
    c.add_argument("--profile", help="profile in the file, e.g. quick")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key, as in run")
    c.add_argument("--rounds", type=int, default=3,
                   help="timings per stack size, in alternating order (default 3, at most 100)")
    c.add_argument("--window", type=float, default=0.6,
                   help="seconds each timing steps (default 0.6, at most 60)")
    c.add_argument("--show", action="store_true", help="list this machine's calibrations")
    c.add_argument("--forget", action="store_true", help="drop this machine's calibrations")
    c.set_defaults(fn=_cmd_calibrate)

    d = sub.add_parser("data", help="fetch or verify a dataset's files")
    d.add_argument("action", choices=["fetch", "verify"],
                   help="fetch: download (or find) the files; verify: check their md5")
    d.add_argument("name", help="dataset name (sharpen list datasets)")
    d.add_argument("--root", help="explicit data directory")
    d.set_defaults(fn=_cmd_data)


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the command line (tests call main() in-process and keep their streams)
        protect_output()
    parser = build_parser()
    a = parser.parse_args(argv)
    a.argv = list(argv) if argv is not None else sys.argv[1:]
    if not getattr(a, "fn", None):
        parser.print_help()
        return 2
    try:
        return a.fn(a)
    except SharpenError as exc:
        print(f"sharpen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if getattr(a, "command", None) == "bench":
            print("sharpen: interrupted; a benchmark does not resume (it measures from a fresh "
                  "start): run it again", file=sys.stderr)
        elif getattr(a, "command", None) == "calibrate":
            print("sharpen: interrupted; the models it finished timing are cached (it printed "
                  "them), the rest are not: run it again to time them", file=sys.stderr)
        else:
            print("sharpen: interrupted; finished runs are kept, re-run the same command to "
                  "resume", file=sys.stderr)
        if argv is not None:  # called in-process (a test, a notebook): the caller stops too
            raise
        return 130


if __name__ == "__main__":
    sys.exit(main())
