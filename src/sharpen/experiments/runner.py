"""Run arms × seeds into a self-describing run directory: plan, resume, write results.

The directory's layout is :mod:`sharpen.rundir` (one place). The plan
(:mod:`sharpen.experiments.plan`) decides which seeds train together and with how many
threads; backends (:mod:`sharpen.experiments.backends`) decide where; a job
(:mod:`sharpen.experiments.job`) trains one group and writes its seeds' files.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from sharpen._version import __version__
from sharpen.errors import SharpenError
from sharpen.experiments.backends import Job, Placement, default_workers, get_backend
from sharpen.experiments.config import Experiment
from sharpen.experiments.plan import Group, groups_of, make_plan, same_seeds
from sharpen.experiments.twins import (
    copy_run,
    find_twin,
    trained_group,
    twin_key,
    unused_key_warnings,
)
from sharpen.io import check_writable
from sharpen.metrics import result_columns
from sharpen.rundir import (
    ARM_ORDER_ALPHABETICAL,
    CHECKPOINT,
    CONFIG,
    FINISHED,
    HISTORY,
    RESULT,
    RunDir,
    checkpoint_path,
    in_file_order,
    ordered_arms,
)


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


def cpu_model() -> str | None:
    """The CPU's model name (Linux), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def default_out_dir(exp: Experiment) -> Path:
    return Path("runs") / exp.name / datetime.now().strftime("%Y%m%d-%H%M%S")


def run_dir(out: Path, arm: str, seed: int) -> Path:
    return RunDir(out).seed_dir(arm, seed)


def _finished(out: Path, arm: str, seed: int) -> dict[str, Any] | None:
    """A finished run's result; None for a run to (re)train — a corrupt one said so."""
    r = RunDir(out).run(arm, seed)
    if r is not None and r.status == "corrupt":
        print(f"sharpen: {r.problem}; training {arm} seed {seed} again", file=sys.stderr,
              flush=True)
    return r.result if r is not None and r.status in FINISHED else None


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
    ``look``: one look of ``--until-decided`` (it alone may add seeds to a directory holding
    a sequential design).
    """
    get_backend(backend)  # an unknown name is refused before anything is made

    if threads is not None:
        for cfg in exp.arms.values():
            cfg.threads = threads
    out = Path(out) if out is not None else default_out_dir(exp)
    check_writable(out)
    made = not out.exists() or not any(out.iterdir())
    try:
        return _run_locked(exp, out, quiet, workers, backend, address, command, log, look)
    except SharpenError:
        # a directory this invocation made that holds no finished or resumable run (a
        # failed data load, say) is removed, not left half-made
        if made and out.is_dir() and not RunDir(out).run_files(RESULT) \
                and not RunDir(out).run_files(CHECKPOINT):
            shutil.rmtree(out, ignore_errors=True)
        raise


def _run_locked(exp: Experiment, out: Path, quiet: bool, workers: int | None, backend: str,
                address: str | None, command: str | None, log: list[str] | None,
                look: bool = False) -> tuple[Path, list[dict[str, Any]]]:
    from sharpen.reports import write_report

    with RunDir(out).lock():
        for stale in out.rglob(".*.tmp"):  # left by a writer that was killed mid-write
            stale.unlink(missing_ok=True)
        from sharpen.reports.sequential import check_bound

        check_bound(out, exp, look)  # a sequential design's claims and seeds stay bound
        resolved = exp.resolved()
        plan = make_plan(exp)
        from sharpen.techniques import idle_warnings

        for line in idle_warnings(exp.arms) + unused_key_warnings(exp.arms, exp.cells):
            print(f"sharpen: warning: {line}", file=sys.stderr, flush=True)
        cfg_path = out / CONFIG
        kept: list[str] = []  # arms of the directory this invocation does not name
        if cfg_path.exists():
            old = json.loads(cfg_path.read_text())
            refuse_another_experiment(out, old, resolved)
            diff = config_diff(old.get("arms", {}), resolved["arms"], common_only=True)
            if diff:
                shown = "; ".join(diff[:8]) + (f"; … {len(diff) - 8} more" if len(diff) > 8 else "")
                raise SharpenError(
                    f"{out} holds runs of a different configuration ({shown}); use another "
                    "--out (or delete that directory) to start afresh"
                    + _fixed_by_design(out, old.get("arms", {}), resolved["arms"]))
            old_how = in_file_order(old, out)
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
            # arms keep the file's order (its first is the default baseline), the directory's
            # arms the file lacks after them; an old directory's order, read back from its
            # experiment file, is recorded from now on
            order = list(resolved.get("arm_order") or [])
            if old_how != ARM_ORDER_ALPHABETICAL:
                for a in old.get("arms") or {}:
                    base = (old.get("cells") or {}).get(a, {}).get("arm", a)
                    if base not in order:
                        order.append(base)
            resolved["arm_order"] = order
        if not resolved.get("arm_order"):  # the order is lost: not recorded as if it were known
            resolved.pop("arm_order", None)
        invocation: dict[str, Any] = {}
        try:
            RunDir(out).write_config({**resolved, "plan": plan})
            if exp.source and Path(exp.source).is_file():
                RunDir(out).copy_experiment(exp.source)
            env = environment()
            RunDir(out).write_environment(env)
            t0 = time.perf_counter()
            invocation = {
                "id": uuid.uuid4().hex[:12], "started": datetime.now().isoformat(timespec="seconds"),
                "commit": env["git_commit"], "dirty": env["git_dirty"],
                "machine": f"{env['cpu_model'] or env['processor']}, {env['cpu_count']} cores"
                           + (f", {env['cuda']}" if env["cuda"] else ""),
                "backend": backend, "command": command}
            # in the file's order (results.csv too), arms kept from the directory in theirs
            arms_in_order = ordered_arms(list(plan["arms"]), resolved.get("arm_order") or [],
                                         resolved.get("cells"), resolved.get("grid"))
            jobs_all = [(arm, seed) for arm in arms_in_order
                        for seed in sorted(s for g in plan["arms"][arm]["groups"] for s in g)]
            number = {j: k for k, j in enumerate(jobs_all, 1)}
            by_job: dict[tuple[str, int], dict[str, Any]] = {}
            todo: list[Job] = []
            rd = RunDir(out)
            key_of = _twin_keys(exp, resolved, plan)
            queued: dict[str, str] = {}  # twin key → the arm that trains it in this invocation
            after: list[tuple[Group, str]] = []  # groups copied once their twin has trained
            ran: dict[str, list[tuple[int, ...]]] = {}  # arm → its groups as they train(ed)
            for group in groups_of(plan):
                missing = []
                mine = ran.setdefault(group.arm, [])
                for s in group.seeds:
                    prev = _finished(out, group.arm, s)
                    if prev is None:
                        missing.append(s)
                        continue
                    by_job[(group.arm, s)] = prev
                    mine.append(tuple((prev.get("plan") or {}).get("group") or group.seeds))
                    if not quiet:
                        print(f"[{number[(group.arm, s)]}/{len(jobs_all)}] {group.arm} seed {s}: "
                              "finished earlier, skipped")
                if not missing or group.arm in kept:
                    continue
                # a group resumes whole from its checkpoint; without one, only its missing seeds
                # train (a group's results are written together, so that is a grown seed list)
                first = checkpoint_path(run_dir(out, group.arm, group.seeds[0]))
                seeds = group.seeds if first.exists() or len(missing) == len(group.seeds) \
                    else tuple(missing)
                g = Group(group.arm, seeds)
                if not first.exists() and len(missing) == len(group.seeds) \
                        and group.arm in key_of:  # a twin arm trained (or trains) this group
                    key = key_of[group.arm](group.seeds)
                    twin = find_twin(rd, key, group.arm, group.seeds, key_of)
                    if twin is not None:
                        mine.append(group.seeds)
                        for s in group.seeds:
                            by_job[(group.arm, s)] = copy_run(rd, twin, group.arm, s,
                                                              exp.cells.get(group.arm))
                            if not quiet:
                                print(f"[{number[(group.arm, s)]}/{len(jobs_all)}] {group.arm} "
                                      f"seed {s}: the same run as {twin}'s, copied")
                        continue
                    if key in queued:
                        after.append((group, queued[key]))
                        mine.append(group.seeds)
                        continue
                    queued[key] = group.arm
                entry = {"threads": plan["arms"][group.arm]["threads"],
                         "stack": plan["arms"][group.arm]["stack"]}
                todo.append(Job(g, exp.arms[group.arm].model_dump(mode="json"),
                                tuple(str(run_dir(out, g.arm, s).resolve()) for s in seeds),
                                exp.cells.get(g.arm), entry, tuple(missing)))
                mine.append(seeds)
            # the plan records the groups as they train: a grown directory's finished seeds
            # in the groups they trained in, its new seeds in theirs (not a regrouping of
            # all of them that never ran; the grouping changes no number on the CPU)
            for arm, groups in ran.items():
                if arm not in kept:
                    plan["arms"][arm]["groups"] = [list(g) for g in sorted(set(groups))]
            rd.write_config({**resolved, "plan": plan})

            from sharpen.reports.trackers import Trackers

            trackers = Trackers([*exp.log, *(log or [])], out, resolved) if (exp.log or log) \
                else None
            if trackers is not None and not quiet:
                for cmd in trackers.viewers():
                    print(f"tracking: {cmd}", flush=True)

            def report(group: Group, results: list[dict[str, Any]]) -> None:
                for res in results:
                    key = (group.arm, res["seed"])
                    if key in by_job:
                        continue
                    by_job[key] = res
                    if trackers is not None:
                        trackers.log_run(*key)
                    if not quiet:
                        acc = res.get("test_acc")
                        shown.write(f"[{number[key]}/{len(jobs_all)}] {group.arm} seed {res['seed']}: "
                                    f"{res['status']}" + (f" test_acc {acc:.4f}" if acc is not None
                                                          else "") + f" ({res['seconds']:.1f}s)")

            from sharpen.experiments.progress import Progress, Watch

            watch = [Watch(t.group.arm, tuple(t.group.seeds), Path(t.run_dirs[0]),
                           exp.arms[t.group.arm].epochs) for t in todo]
            placed = get_backend(backend)
            workers = workers or default_workers(todo)
            invocation.update(workers=workers, jobs=len(todo),
                              runs=sum(len(t.record_only) for t in todo))
            RunDir(out).log_invocation(invocation)
            log = None if quiet else (lambda m: print("    " + m, flush=True))
            if not quiet and todo:
                print(f"running {len(todo)} jobs in {placed.where(len(todo), workers)}",
                      flush=True)
            # a bar on a terminal, one line per epoch per job in a pipe or a log, nothing if quiet
            shown = Progress(watch, enabled=None if not quiet else False,
                             workers=placed.slots(len(todo), workers))
            import contextlib

            from sharpen.reports.curriculum import curriculum_figures
            from sharpen.techniques import write_figure_data

            live = trackers.watch([(t.group.arm, s) for t in todo for s in t.group.seeds]) \
                if trackers is not None else contextlib.nullcontext()
            with shown, live:
                placed.run(todo, report, Placement(workers, address, log),
                           lambda: curriculum_figures(out, write_figure_data(exp.arms, out)))
            for group, twin in after:  # its twin trained this invocation
                if trained_group(rd, twin, group.seeds):
                    for s in group.seeds:
                        by_job[(group.arm, s)] = copy_run(rd, twin, group.arm, s,
                                                          exp.cells.get(group.arm))
            results = [by_job[j] for j in jobs_all if j in by_job]
            invocation["finished"] = datetime.now().isoformat(timespec="seconds")
            invocation["wall_s"] = round(time.perf_counter() - t0, 1)
            RunDir(out).log_invocation(invocation)
            axes = [f"grid_{k}" for k in exp.grid]
            rd.write_results(results,
                             result_columns() + (["base_arm", *axes] if axes else []))
            write_report(out)
            if trackers is not None:
                for arm, seed in jobs_all:  # runs finished earlier, too (logged once each)
                    if (arm, seed) in by_job:
                        trackers.log_run(arm, seed)
                trackers.close()
        except BaseException as exc:
            _stopped(out, invocation, exc)
            raise

    return out, results


def _twin_keys(exp: Experiment, resolved: dict[str, Any], plan: dict[str, Any]
               ) -> dict[str, Any]:
    """arm → (seeds → its twin key), for every arm of the plan (kept ones from their record)."""
    from sharpen.experiments.config.schema import RunConfig

    out: dict[str, Any] = {}
    for arm, entry in plan["arms"].items():
        cfg = exp.arms.get(arm)
        if cfg is None:
            try:
                cfg = RunConfig.model_validate(resolved["arms"][arm])
            except Exception:  # noqa: BLE001 - an old record this version cannot read: no twin
                continue
        out[arm] = functools.partial(twin_key, cfg, entry)
    return out


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
    from sharpen.reports.sequential import SEQUENTIAL, read_record

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
    from sharpen.experiments.config import RunConfig

    # a key added to sharpen after the directory was made counts as its default there
    defaults = json.loads(RunConfig().model_dump_json())
    for a in (a for a in new if a in old):
        for k in sorted(set(old[a]) | set(new[a])):
            if old[a].get(k, defaults.get(k)) != new[a].get(k, defaults.get(k)):
                out.append(f"arms.{a}.{k}: {json.dumps(old[a].get(k))} → "
                           f"{json.dumps(new[a].get(k))}")
    return out
