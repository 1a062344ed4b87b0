"""What one run invocation does with each (arm, seed) of its plan, decided before anything
trains, from the experiment, the plan and the run directory's files alone.

A seed that finished earlier is kept (skipped); a group whose twin arm trained the very
same group is copied from it (:mod:`sharpen.experiments.twins`), or copied after this
invocation trains it for the twin; any other group with a missing seed is a job. A group
resumes whole from its checkpoint; without one only its missing seeds train (a group's
results are written together, so that is a grown seed list). The directory's arms this
invocation does not name keep their finished runs and train nothing; so do the finished
seeds its plan does not name (fewer ``--runs``, another ``seed``).

:func:`schedule_runs` only reads: the runner shows the schedule, copies the twins and
hands the jobs to a backend (tests/test_schedule.py checks it on folders built by hand).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from sharpen.experiments.backends import Job
from sharpen.experiments.config import Experiment, RunConfig
from sharpen.experiments.plan import Group, groups_of
from sharpen.experiments.twins import find_twin, twin_key
from sharpen.metrics import metric_values, stored_keys
from sharpen.rundir import FINISHED, RunDir, SeedRun, checkpoint_path, ordered_arms


class Action(Enum):
    """What the invocation does with one (arm, seed)."""

    FINISHED = "finished earlier"  # its result is kept; it does not train again
    COPY = "copy"  # its twin arm trained the very same group earlier: copied now
    AFTER_TWIN = "after twin"  # its twin arm trains the same group now: copied after it
    TRAIN = "train"  # a job of this invocation trains it
    NOT_NAMED = "not named"  # an arm of the directory this invocation leaves out


@dataclass(frozen=True)
class Step:
    """One (arm, seed) of a group, and what is done with it."""

    group: Group  # the plan's group it belongs to
    seed: int
    action: Action
    result: dict[str, Any] | None = None  # a finished run's result.json
    twin: str | None = None  # COPY / AFTER_TWIN: the arm whose run it is
    problem: str | None = None  # why the run found in the directory is not kept (corrupt)

    @property
    def run(self) -> tuple[str, int]:
        return self.group.arm, self.seed


@dataclass
class Schedule:
    """Every step of the invocation, in the plan's group order and each group's seed order
    (the order the runner shows them), and the jobs that train."""

    order: list[tuple[str, int]]  # every (arm, seed) of the plan, in the file's arm order
    steps: list[Step] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    # arm → its groups as they train(ed): a grown directory's finished seeds in the groups
    # they trained in, its new seeds in theirs (arms this invocation does not name: absent)
    groups: dict[str, list[list[int]]] = field(default_factory=dict)

    def of(self, action: Action) -> list[Step]:
        return [s for s in self.steps if s.action is action]

    def number(self, run: tuple[str, int]) -> str:
        """``[k/N]``: the run's place among all the plan's runs."""
        return f"[{self.order.index(run) + 1}/{len(self.order)}]"


def found_run(out: Path, arm: str, seed: int) -> tuple[dict[str, Any] | None, str | None]:
    """A finished run's result (None for a run to (re)train), and the problem of a corrupt
    one (None when it is not corrupt)."""
    r = RunDir(out).run(arm, seed)
    problem = r.problem if r is not None and r.status == "corrupt" else None
    return (completed(r) if r is not None and r.status in FINISHED else None), problem


def completed(r: SeedRun) -> dict[str, Any]:
    """A finished run's result.json with the results.csv metrics it lacks taken from its
    metrics.csv as the report reads them (:func:`sharpen.metrics.metric_values`): a
    result.json missing test_acc gave results.csv a blank beside report.md's number."""
    vals = metric_values(r.rows, r.result)
    return {**r.result, **{k: vals[k] for k in stored_keys("results")
                           if r.result.get(k) is None and vals.get(k) is not None}}


def run_order(plan: dict[str, Any], resolved: dict[str, Any]) -> list[tuple[str, int]]:
    """Every (arm, seed) of the plan: arms in the file's order (kept ones in theirs), each
    arm's seeds ascending."""
    arms = ordered_arms(list(plan["arms"]), resolved.get("arm_order") or [],
                        resolved.get("cells"), resolved.get("grid"))
    return [(arm, seed) for arm in arms
            for seed in sorted(s for g in plan["arms"][arm]["groups"] for s in g)]


def twin_keys(exp: Experiment, resolved: dict[str, Any], plan: dict[str, Any]
              ) -> dict[str, Callable[[tuple[int, ...]], str]]:
    """arm → (seeds → its twin key), for every arm of the plan (kept ones from their record)."""
    out: dict[str, Callable[[tuple[int, ...]], str]] = {}
    for arm, entry in plan["arms"].items():
        cfg = exp.arms.get(arm)
        if cfg is None:
            try:
                cfg = RunConfig.model_validate(resolved["arms"][arm])
            except Exception:  # noqa: BLE001 - an old record this version cannot read: no twin
                continue
        out[arm] = functools.partial(twin_key, cfg, entry)
    return out


def schedule_runs(exp: Experiment, out: Path, resolved: dict[str, Any], plan: dict[str, Any],
                  kept: list[str]) -> Schedule:
    """The invocation's schedule (:class:`Schedule`). ``resolved``/``plan``: the experiment
    and plan as the directory will record them; ``kept``: its arms not named this time."""
    plan = with_finished_beyond(out, plan, kept)
    scheduler = _Scheduler(exp, out, plan, kept, twin_keys(exp, resolved, plan))
    schedule = Schedule(run_order(plan, resolved))
    for group in groups_of(plan):
        steps, job = scheduler.group(group)
        schedule.steps += steps
        if job is not None:
            schedule.jobs.append(job)
    schedule.groups = {arm: [list(g) for g in sorted(set(groups))]
                       for arm, groups in scheduler.ran.items() if arm not in kept}
    return schedule


def with_finished_beyond(out: Path, plan: dict[str, Any], kept: list[str]) -> dict[str, Any]:
    """``plan`` (a copy) with each named arm's finished seeds it does not name (a run with
    fewer ``--runs``, or another ``seed``, than the directory holds) as one-seed groups:
    they are kept like the arms not named, so results.csv lists what the directory holds
    and every report counts. An unfinished seed the plan does not name stays untrained."""
    planned = {arm: {s for g in entry["groups"] for s in g}
               for arm, entry in plan["arms"].items() if arm not in kept}
    beyond: dict[str, list[list[int]]] = {}
    for arm, seed, _ in RunDir(out).seed_dirs():
        if arm in planned and seed not in planned[arm] and found_run(out, arm, seed)[0]:
            beyond.setdefault(arm, []).append([seed])
    if not beyond:
        return plan
    arms = {arm: {**entry, "groups": [*entry["groups"], *beyond.get(arm, [])]}
            for arm, entry in plan["arms"].items()}
    return {**plan, "arms": arms}


@dataclass
class _Scheduler:
    """Decides group by group; remembers the twin keys queued and each arm's groups."""

    exp: Experiment
    out: Path
    plan: dict[str, Any]
    kept: list[str]
    key_of: dict[str, Callable[[tuple[int, ...]], str]]
    queued: dict[str, str] = field(default_factory=dict)  # twin key → the arm training it now
    ran: dict[str, list[tuple[int, ...]]] = field(default_factory=dict)

    def group(self, group: Group) -> tuple[list[Step], Job | None]:
        found = [(s, *found_run(self.out, group.arm, s)) for s in group.seeds]
        mine = self.ran.setdefault(group.arm, [])
        mine += [tuple((r.get("plan") or {}).get("group") or group.seeds)
                 for _, r, _ in found if r is not None]
        missing = tuple(s for s, r, _ in found if r is None)
        action, twin, job = Action.FINISHED, None, None
        if missing and group.arm in self.kept:
            action = Action.NOT_NAMED
        elif missing:
            action, twin = self._twin(group, missing)
            if action is Action.TRAIN:
                job = self._job(group, missing)
                mine.append(job.group.seeds)
            else:
                mine.append(group.seeds)
        steps = [Step(group, s, Action.FINISHED, result=r) if r is not None
                 else Step(group, s, action, twin=twin, problem=problem)
                 for s, r, problem in found]
        return steps, job

    def _twin(self, group: Group, missing: tuple[int, ...]) -> tuple[Action, str | None]:
        """COPY or AFTER_TWIN with the twin arm, or TRAIN: a twin arm trained (or trains)
        this group, which only a group with no checkpoint and no finished seed may use."""
        first = checkpoint_path(RunDir(self.out).seed_dir(group.arm, group.seeds[0]))
        if first.exists() or len(missing) != len(group.seeds) or group.arm not in self.key_of:
            return Action.TRAIN, None
        key = self.key_of[group.arm](group.seeds)
        twin = find_twin(RunDir(self.out), key, group.arm, group.seeds, self.key_of)
        if twin is not None:
            return Action.COPY, twin
        if key in self.queued:
            return Action.AFTER_TWIN, self.queued[key]
        self.queued[key] = group.arm
        return Action.TRAIN, None

    def _job(self, group: Group, missing: tuple[int, ...]) -> Job:
        """The job training ``group``: whole from its checkpoint, else its missing seeds."""
        rd = RunDir(self.out)
        first = checkpoint_path(rd.seed_dir(group.arm, group.seeds[0]))
        seeds = group.seeds if first.exists() or len(missing) == len(group.seeds) else missing
        entry = self.plan["arms"][group.arm]
        return Job(Group(group.arm, seeds), self.exp.arms[group.arm].model_dump(mode="json"),
                   tuple(str(rd.seed_dir(group.arm, s).resolve()) for s in seeds),
                   self.exp.cells.get(group.arm),
                   {"threads": entry["threads"], "stack": entry["stack"],
                    **({"calibrated": entry["calibrated"]} if "calibrated" in entry else {})},
                   missing)
