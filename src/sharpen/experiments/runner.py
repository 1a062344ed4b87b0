"""Run arms × seeds into a self-describing run directory: plan, resume, write results.

The directory's layout is :mod:`sharpen.rundir` (one place). The plan
(:mod:`sharpen.experiments.plan`) decides which seeds train together and with how many
threads; the schedule (:mod:`sharpen.experiments.schedule`) what this invocation does with
each run (keep, copy from a twin, train), from the directory's files alone; backends
(:mod:`sharpen.experiments.backends`) decide where; a job (:mod:`sharpen.experiments.job`)
trains one group and writes its seeds' files.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from sharpen import reports
from sharpen._version import __version__
from sharpen.data import user_data_hash
from sharpen.data.prepare import check_data_sizes
from sharpen.errors import SharpenError
from sharpen.experiments import progress
from sharpen.experiments.backends import Placement, default_workers, get_backend, warm_workers
from sharpen.experiments.config import Experiment, RunConfig
from sharpen.experiments.config.loading import DATA_HASHES
from sharpen.experiments.plan import Group, make_plan, same_seeds
from sharpen.experiments.schedule import Action, Schedule, schedule_runs
from sharpen.experiments.twins import copy_run, trained_group, unused_key_warnings
from sharpen.io import check_writable
from sharpen.machine import cpu_model
from sharpen.metrics import result_columns
from sharpen.reports import curriculum, trackers
from sharpen.reports.figures import schedule_plot
from sharpen.reports.sequential import SEQUENTIAL, check_bound, read_record
from sharpen.rundir import (
    ARM_ORDER_ALPHABETICAL,
    CHECKPOINT,
    CONFIG,
    HISTORY,
    RESULT,
    RUNS,
    SCHEDULE,
    RunDir,
    in_file_order,
)
from sharpen.techniques import idle_warnings, schedule_rows, write_figure_data


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "sharpen": __version__, "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(), "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        root = Path(__file__).resolve().parents[3]
        env["git_commit"] = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
            timeout=5).stdout.strip() or None
        # uncommitted changes to the package: the commit alone does not name the code
        env["git_dirty"] = bool(env["git_commit"]) and bool(subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True, text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        env["git_commit"] = env["git_dirty"] = None
    return env


def default_out_dir(exp: Experiment) -> Path:
    return Path("runs") / exp.name / datetime.now().strftime("%Y%m%d-%H%M%S")


def run_dir(out: Path, arm: str, seed: int) -> Path:
    return RunDir(out).seed_dir(arm, seed)


def _say_corrupt(arm: str, seed: int, problem: str) -> None:
    print(f"sharpen: {problem}; training {arm} seed {seed} again", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RunOptions:
    """How an invocation runs; none of it changes a number (``tracker_names``: ``--log``)."""

    quiet: bool = False
    workers: int | None = None
    backend: str = "local"
    address: str | None = None
    command: str | None = None
    tracker_names: tuple[str, ...] = ()
    look: bool = False


@dataclass
class Invocation:
    """One ``sharpen run`` into ``out``: its experiment, options and history.json entry."""

    exp: Experiment
    out: Path
    opts: RunOptions
    entry: dict[str, Any] = field(default_factory=dict)  # its history.json entry
    t0: float = 0.0  # time.perf_counter() when it started


def run_experiment(exp: Experiment, out: Path | None = None, quiet: bool = False,
                   workers: int | None = None, threads: int | None = None,
                   backend: str = "local",
                   address: str | None = None, command: str | None = None,
                   log: list[str] | None = None, look: bool = False
                   ) -> tuple[Path, list[dict[str, Any]]]:
    """Run every (arm, seed) not yet finished in ``out``; write results and the report.

    ``workers`` > 1 runs jobs in that many processes (None: cores ÷ the plan's threads);
    ``backend = "ray"`` sends each job to a Ray cluster (``address``, else $RAY_ADDRESS,
    else a local one; its workers must see ``out``). Neither changes a number: the plan
    fixes groups and threads per job.
    ``threads`` overrides the plan's threads per job (a different plan, recorded).
    ``log``: trackers to log to besides the file's ``log``.
    ``look``: one look of ``--until-decided`` (it alone may add seeds to a directory holding
    a sequential design).
    """
    get_backend(backend)  # an unknown name is refused before anything is made
    check_data_sizes(exp.arms)  # so is a val_size the dataset cannot hold

    if threads is not None:
        for cfg in exp.arms.values():
            cfg.threads = threads
    out = Path(out) if out is not None else default_out_dir(exp)
    check_writable(out)
    made = not out.exists() or not any(out.iterdir())
    opts = RunOptions(quiet, workers, backend, address, command, tuple(log or ()), look)
    try:
        return _run_locked(Invocation(exp, out, opts))
    except SharpenError:
        # a directory this invocation made that holds no finished or resumable run (a
        # failed data load, say) is removed, not left half-made
        if made and out.is_dir() and not RunDir(out).run_files(RESULT) \
                and not RunDir(out).run_files(CHECKPOINT):
            shutil.rmtree(out, ignore_errors=True)
        raise


def _run_locked(inv: Invocation) -> tuple[Path, list[dict[str, Any]]]:
    """Plan, resume, run the schedule's jobs, write results and the report: in that order,
    under the directory's lock."""
    exp, out = inv.exp, inv.out
    with RunDir(out).lock():
        warm_workers(inv.opts.backend, inv.opts.workers)
        for stale in out.rglob(".*.tmp"):  # left by a writer that was killed mid-write
            stale.unlink(missing_ok=True)
        check_bound(out, exp, inv.opts.look)  # a sequential design's claims and seeds stay bound
        resolved, plan = exp.resolved(), make_plan(exp)
        for line in idle_warnings(exp.arms) + unused_key_warnings(exp.arms, exp.cells):
            print(f"sharpen: warning: {line}", file=sys.stderr, flush=True)
        kept = resume(out, exp, resolved, plan)
        try:
            _start(inv, resolved, plan)
            schedule = schedule_runs(exp, out, resolved, plan, kept)
            runs = _take_earlier(inv, schedule)
            for arm, groups in schedule.groups.items():  # the groups as they train(ed)
                plan["arms"][arm]["groups"] = groups
            RunDir(out).write_config({**resolved, "plan": plan})
            tracked = _open_trackers(inv, resolved)
            _execute(inv, schedule, runs, tracked)
            results = _finish(inv, schedule, runs, tracked)
        except BaseException as exc:
            _stopped(out, inv.entry, exc)
            raise
    return out, results


def resume(out: Path, exp: Experiment, resolved: dict[str, Any], plan: dict[str, Any]
           ) -> list[str]:
    """Merge the directory's config.json (if any) into ``resolved`` and ``plan``, refusing
    another experiment or configuration; returns its arms this invocation does not name."""
    cfg_path = out / CONFIG
    kept: list[str] = []  # arms of the directory this invocation does not name
    hashes = data_hashes(exp.arms)
    resolved[DATA_HASHES] = hashes
    if not cfg_path.exists() and any((out / RUNS).glob(f"*/*/{RESULT}")):
        # without it nothing says which configuration trained those runs: resuming would
        # pool them with runs of whatever the file says now
        raise SharpenError(f"{out} holds finished runs but no {CONFIG}, the record of the "
                           "configuration that trained them; restore it, or give another --out")
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SharpenError(f"{cfg_path}: cannot be read ({exc}); restore it, or give "
                               "another --out") from None
        if not isinstance(old, dict) or not isinstance(old.get("arms"), dict):
            raise SharpenError(f"{cfg_path}: not a run directory's configuration (no arms); "
                               "restore it, or give another --out")
        refuse_another_experiment(out, old, resolved)
        _refuse_another_configuration(out, old, resolved)
        _refuse_changed_data(out, old.get(DATA_HASHES) or {}, hashes)
        old_plan = old.get("plan") or {"arms": {}}
        for arm in plan["arms"]:  # resuming: an arm keeps its recorded plan
            if arm in old_plan["arms"] and same_seeds(
                    {"arms": {arm: old_plan["arms"][arm]}}, {"arms": {arm: plan["arms"][arm]}}):
                plan["arms"][arm] = old_plan["arms"][arm]
        # arms (or grid cells) added to a directory join it; those not named this time
        # stay in it with their finished runs, but only arms the file still has: one
        # renamed or deleted there would stay in every table and as a best/worst rival
        refuse_dropped_arms(out, old, resolved, exp.source)
        for arm, a_cfg in old.get("arms", {}).items():
            if arm not in resolved["arms"] and arm in old_plan["arms"]:
                kept.append(arm)
                resolved["arms"][arm] = a_cfg
                plan["arms"][arm] = old_plan["arms"][arm]
                if arm in (old.get("cells") or {}):
                    resolved.setdefault("cells", {})[arm] = old["cells"][arm]
        resolved["arm_order"] = _arm_order(out, old, resolved)
        resolved[DATA_HASHES] = {**(old.get(DATA_HASHES) or {}), **hashes}
    if not resolved.get("arm_order"):  # the order is lost: not recorded as if it were known
        resolved.pop("arm_order", None)
    return kept


def _refuse_another_configuration(out: Path, old: dict[str, Any], resolved: dict[str, Any]
                                  ) -> None:
    diff = config_diff(old.get("arms", {}), resolved["arms"], common_only=True)
    if diff:
        said = "; ".join(diff[:8]) + (f"; … {len(diff) - 8} more" if len(diff) > 8 else "")
        raise SharpenError(
            f"{out} holds runs of a different configuration ({said}); use another "
            "--out (or delete that directory) to start afresh"
            + _fixed_by_design(out, old.get("arms", {}), resolved["arms"]))


def data_hashes(arms: dict[str, RunConfig]) -> dict[str, str]:
    """The content hash of each user dataset the arms train on (catalog sets: none; their
    files are checked against their md5s)."""
    # keyed by the name config.json records: a plugin's dataset pointed at other data since
    # keeps its name, and is compared too
    found = {d: user_data_hash(d) for d in sorted({cfg.dataset for cfg in arms.values()})}
    return {d: h[1] for d, h in found.items() if h is not None}


def _refuse_changed_data(out: Path, old: dict[str, str], new: dict[str, str]) -> None:
    """Refuse to add runs to ``out`` when a user dataset its runs trained on has other content
    now: the new runs would be pooled with the old ones in every table, silently."""
    changed = [name for name in new if name in old and old[name] != new[name]]
    if changed:
        name = changed[0]
        raise SharpenError(
            f"dataset {name.split(':', 1)[-1]} changed since {out} trained on it (its images "
            f"and labels hashed {old[name][:12]} then, {new[name][:12]} now): runs on the two "
            "would be pooled in one table. Restore the data as it was, or use another --out "
            "for the new data")


def _arm_order(out: Path, old: dict[str, Any], resolved: dict[str, Any]) -> list[str]:
    """Arms keep the file's order (its first is the default baseline), the directory's arms
    the file lacks after them; an old directory's order, read back from its experiment
    file, is recorded from now on."""
    order = list(resolved.get("arm_order") or [])
    if in_file_order(old, out) != ARM_ORDER_ALPHABETICAL:
        for a in old.get("arms") or {}:
            base = (old.get("cells") or {}).get(a, {}).get("arm", a)
            if base not in order:
                order.append(base)
    return order


def _start(inv: Invocation, resolved: dict[str, Any], plan: dict[str, Any]) -> None:
    """Record the configuration, the experiment file and the machine; open the history entry."""
    rd = RunDir(inv.out)
    rd.write_config({**resolved, "plan": plan})
    if inv.exp.source and Path(inv.exp.source).is_file():
        rd.copy_experiment(inv.exp.source)
    env = environment()
    rd.write_environment(env)
    inv.t0 = time.perf_counter()
    inv.entry.update({
        "id": uuid.uuid4().hex[:12], "started": datetime.now().isoformat(timespec="seconds"),
        "commit": env["git_commit"], "dirty": env["git_dirty"],
        "machine": f"{env['cpu_model'] or env['processor']}, {env['cpu_count']} cores"
                   + (f", {env['cuda']}" if env["cuda"] else ""),
        "backend": inv.opts.backend, "command": inv.opts.command})


def _take_earlier(inv: Invocation, schedule: Schedule) -> dict[tuple[str, int], dict[str, Any]]:
    """The runs that need no training: finished ones kept, twins' copied now; each said
    (a corrupt run on stderr, whatever ``quiet``), group by group."""
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    # a look of --until-decided says nothing of the looks before it: one line per look
    rd, quiet = RunDir(inv.out), inv.opts.quiet or inv.opts.look
    for _, group_steps in itertools.groupby(schedule.steps, key=lambda st: st.group):
        steps = list(group_steps)
        for st in steps:
            if st.problem is not None:
                _say_corrupt(*st.run, st.problem)
            if st.action is Action.FINISHED:
                runs[st.run] = st.result or {}
                if not quiet:
                    print(f"{schedule.number(st.run)} {st.group.arm} seed {st.seed}: "
                          "finished earlier, skipped")
        for st in (st for st in steps if st.action is Action.COPY):
            runs[st.run] = copy_run(rd, st.twin or "", st.group.arm, st.seed,
                                    inv.exp.cells.get(st.group.arm))
            if not quiet:
                print(f"{schedule.number(st.run)} {st.group.arm} seed {st.seed}: the same run "
                      f"as {st.twin}'s, copied")
    return runs


def _open_trackers(inv: Invocation, resolved: dict[str, Any]) -> trackers.Trackers | None:
    """The experiment-tracking back-ends named in the file's ``log`` and by ``--log``."""
    names = [*inv.exp.log, *inv.opts.tracker_names]
    if not names:
        return None
    tracked = trackers.Trackers(names, inv.out, resolved)
    if not inv.opts.quiet:
        for cmd in tracked.viewers():
            print(f"tracking: {cmd}", flush=True)
    return tracked


@dataclass
class _Collect:
    """Takes each group's results as its job reports them: kept, logged, shown."""

    runs: dict[tuple[str, int], dict[str, Any]]
    schedule: Schedule
    tracked: trackers.Trackers | None
    quiet: bool
    bar: progress.Progress  # a finished run's line is written above it
    look: bool = False  # a look of --until-decided: only runs that did not end ok are said

    def __call__(self, group: Group, results: list[dict[str, Any]]) -> None:
        for res in results:
            run = (group.arm, res["seed"])
            if run in self.runs:
                continue
            self.runs[run] = res
            if self.tracked is not None:
                self.tracked.log_run(*run)
            if not self.quiet and not (self.look and res["status"] == "ok"):
                acc = res.get("test_acc")
                where = "" if self.look else f"{self.schedule.number(run)} "
                self.bar.write(f"{where}{group.arm} seed {res['seed']}: "
                               f"{res['status']}" + (f" test_acc {acc:.4f}" if acc is not None
                                                     else "") + f" ({res['seconds']:.1f}s)")


def directory_arms(out: Path, arms: dict[str, RunConfig] | None = None
                   ) -> dict[str, RunConfig]:
    """Every arm of the run directory ``out`` (its config.json, written before the jobs
    start), ``arms`` (an invocation's, as it runs them) in place of their saved copies:
    the schedule figure shows every arm and grid cell, not only those one look of
    ``--until-decided`` (one cell) or an ``--arms`` run trains. A saved arm whose
    configuration no longer validates is left out, and said (a figure stops nothing)."""
    arms = arms or {}
    out_arms: dict[str, RunConfig] = {}
    for a, c in (RunDir(out).config().get("arms") or {}).items():
        try:
            out_arms[a] = arms[a] if a in arms else RunConfig.model_validate(c)
        except ValidationError as exc:
            print(f"sharpen: warning: {Path(out) / SCHEDULE}: arm {a!r} left out: its saved "
                  f"configuration does not validate ({exc.error_count()} error(s))",
                  file=sys.stderr, flush=True)
    return {**out_arms, **arms}


def redraw_schedule(out: Path) -> Path | None:
    """schedule.png again from the directory's config.json alone, when it has one (`sharpen
    report` redraws it: a figure a run drew before this version showed only the arms that
    invocation ran); None when it has none."""
    if not (Path(out) / SCHEDULE).is_file():
        return None
    plans = {a: schedule_rows(c) for a, c in directory_arms(Path(out)).items()}
    return schedule_plot(plans, Path(out) / SCHEDULE)


def _execute(inv: Invocation, schedule: Schedule, runs: dict[tuple[str, int], dict[str, Any]],
             tracked: trackers.Trackers | None) -> None:
    """Run the schedule's jobs on the backend under a progress display, adding their results
    to ``runs``; then copy the groups whose twin trained them now."""
    exp, opts, jobs = inv.exp, inv.opts, schedule.jobs
    watch = [progress.Watch(j.group.arm, tuple(j.group.seeds), Path(j.run_dirs[0]),
                            exp.arms[j.group.arm].epochs) for j in jobs]
    placed = get_backend(opts.backend)
    workers = opts.workers or default_workers(jobs)
    inv.entry.update(workers=workers, jobs=len(jobs), runs=sum(len(j.record_only) for j in jobs))
    RunDir(inv.out).log_invocation(inv.entry)
    say = None if opts.quiet else (lambda m: print("    " + m, flush=True))
    if not opts.quiet and not opts.look and jobs:
        print(f"running {len(jobs)} job{'' if len(jobs) == 1 else 's'} in "
              f"{placed.where(len(jobs), workers)}", flush=True)
    # a bar on a terminal, one line per epoch per job in a pipe or a log, nothing if quiet
    bar = progress.Progress(watch, enabled=None if not opts.quiet else False,
                            workers=placed.slots(len(jobs), workers))
    live = tracked.watch([(j.group.arm, s) for j in jobs for s in j.group.seeds]) \
        if tracked is not None else contextlib.nullcontext()
    collect = _Collect(runs, schedule, tracked, opts.quiet, bar, opts.look)
    with bar, live:
        placed.run(jobs, collect, Placement(workers, opts.address, say),
                   lambda: curriculum.curriculum_figures(
                       inv.out, write_figure_data(directory_arms(inv.out, exp.arms), inv.out)))
    rd = RunDir(inv.out)
    for group, steps in itertools.groupby(schedule.of(Action.AFTER_TWIN), key=lambda st: st.group):
        twin = next(steps).twin or ""
        if trained_group(rd, twin, group.seeds):  # its twin trained this invocation
            for s in group.seeds:
                runs[(group.arm, s)] = copy_run(rd, twin, group.arm, s,
                                                        exp.cells.get(group.arm))


def _finish(inv: Invocation, schedule: Schedule, runs: dict[tuple[str, int], dict[str, Any]],
            tracked: trackers.Trackers | None) -> list[dict[str, Any]]:
    """Close the history entry; write results.csv and the report; log every run."""
    results = [runs[r] for r in schedule.order if r in runs]
    inv.entry["finished"] = datetime.now().isoformat(timespec="seconds")
    inv.entry["wall_s"] = round(time.perf_counter() - inv.t0, 1)
    rd = RunDir(inv.out)
    rd.log_invocation(inv.entry)
    axes = [f"grid_{k}" for k in inv.exp.grid]
    rd.write_results(results, result_columns() + (["base_arm", *axes] if axes else []))
    # 8-20 s of statistics and figures: said, not a bar frozen at 100 % (a look's line
    # goes when the report is built: one line per look)
    with progress.status("building the report…", quiet=inv.opts.quiet, keep=not inv.opts.look):
        reports.write_report(inv.out)
    if tracked is not None:
        for run in schedule.order:  # runs finished earlier, too (logged once each)
            if run in runs:
                tracked.log_run(*run)
        tracked.close()
    return results


def _stopped(out: Path, invocation: dict[str, Any], exc: BaseException) -> None:
    """An invocation that did not finish: its history entry says when and why it stopped."""
    if invocation.get("id") and (out / HISTORY).exists():
        invocation["ended"] = datetime.now().isoformat(timespec="seconds")
        invocation["stopped"] = ("interrupted" if isinstance(exc, KeyboardInterrupt) else
                                 f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
        try:
            RunDir(out).log_invocation(invocation)
        except Exception:  # noqa: BLE001 - the original error matters more
            pass


def _fixed_by_design(out: Path, old: dict[str, Any], new: dict[str, Any]) -> str:
    """Why a directory's arms have a stack_seeds the file never set: ``--until-decided``
    fixed it to its step (each look's seeds train as one group); '' when it did not."""
    rec = read_record(out) if (out / SEQUENTIAL).is_file() else None
    if rec is None:
        return ""
    fixed = sorted(a for a in old if a in new and isinstance(old[a].get("stack_seeds"), int)
                   and new[a].get("stack_seeds") == "auto")
    if not fixed:
        return ""
    step = rec.get("design", {}).get("step") or rec["plan"]["looks"][0]
    return (f". stack_seeds was not set by you: this directory's sequential design "
            f"(--until-decided --step {step}, {out / SEQUENTIAL}) fixed it to {step} for "
            f"{', '.join(fixed)} (each look's seeds train as one group); continue that design "
            f"with `sharpen run EXPERIMENT --out {out} --until-decided` and the same --step "
            "and --max-runs, or use another --out")


def experiment_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why a run directory's experiment (its config.json) is another one than ``new``: its
    name, its profile or its grid's axes differ (what the runs of one directory share; the
    arms' keys are :func:`config_diff`'s). Seeds, arms or grid values added to the same
    experiment grow its directory; its claims, notes and baseline may be edited."""
    out = []
    for key, what in (("name", "experiment"), ("profile", "profile")):
        if key in old and (old[key] or "") != (new.get(key) or ""):
            out.append(f"{what} {_shown(old[key])} → {_shown(new.get(key))}")
    axes_old, axes_new = list(old.get("grid") or {}), list(new.get("grid") or {})
    if sorted(axes_old) != sorted(axes_new):
        out.append(f"grid axes {axes_old or '(no grid)'} → {axes_new or '(no grid)'}")
    return out


def refuse_another_experiment(out: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse to run ``new`` (a resolved experiment) into ``out``, whose config.json is
    ``old``, when they are different experiments (:func:`experiment_diff`), naming why."""
    other = experiment_diff(old, new)
    if other:
        raise SharpenError(
            f"{out} holds runs of another experiment ({'; '.join(other)}); use another "
            f"--out for this one (or `sharpen run {out}` to continue that one)")


def refuse_dropped_arms(out: Path, old: dict[str, Any], new: dict[str, Any],
                        source: str | None) -> None:
    """Refuse to run ``new`` into ``out`` when the directory holds arms the experiment file no
    longer has (renamed or deleted there); ``--arms`` narrowing a run is not that."""
    order = new.get("arm_order") or []
    if not order:  # an old directory run from itself: no file to have dropped an arm
        return
    cells = old.get("cells") or {}
    gone = list(dict.fromkeys(cells.get(a, {}).get("arm", a) for a in old.get("arms") or {}
                              if cells.get(a, {}).get("arm", a) not in order))
    if gone:
        raise SharpenError(
            f"{out} holds runs of arm{'s' if len(gone) > 1 else ''} "
            f"{', '.join(map(repr, gone))} that {source or 'the experiment'} no longer has "
            f"(its arms: {', '.join(order)}); they would stay in every table and as rivals of "
            "best/worst claims. Put the arm back in the file (a renamed arm under its old "
            "name), or use another --out")


def _shown(name: Any) -> str:
    return repr(name) if name else "(none)"


def config_diff(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]],
                common_only: bool = False) -> list[str]:
    """What differs between two resolved arm tables, as 'arms.A.key: old → new' lines
    (``common_only``: only arms in both; added or left-out arms are not differences)."""
    out = [] if common_only else [f"arm {a!r} is new" for a in new if a not in old] + [
        f"arm {a!r} is missing" for a in old if a not in new]
    # a key added to sharpen after the directory was made counts as its default there
    defaults = json.loads(RunConfig().model_dump_json())
    for a in (a for a in new if a in old):
        for k in sorted(set(old[a]) | set(new[a])):
            if old[a].get(k, defaults.get(k)) != new[a].get(k, defaults.get(k)):
                out.append(f"arms.{a}.{k}: {json.dumps(old[a].get(k))} → "
                           f"{json.dumps(new[a].get(k))}")
    return out
