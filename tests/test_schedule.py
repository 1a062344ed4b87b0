"""What a run invocation does with each (arm, seed), decided without training
(``sharpen.experiments.schedule``, issue 33 item 3): run directories are built by hand with
the run directory's own writers, and each schedule is checked against the (arm, seed)
pairs worked out here from the folder's state."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sharpen.experiments import load_experiment
from sharpen.experiments.plan import make_plan
from sharpen.experiments.runner import resume
from sharpen.experiments.schedule import Action, schedule_runs
from sharpen.rundir import RESULT, RunDir, checkpoint_path, write_result

SMALL = """
name = "small"
runs = 2
seed = 5
dataset = "synthetic"
train_size = 100
val_size = 20
test_size = 40
model = "lenet5_dropout"
epochs = 1
batch_size = 50
optimizer = "adam"
lr = 0.003
threads = 1
stack_seeds = 1

[arms.a]

[arms.b]
lr = 0.001
"""

# a grid whose base arm no axis value touches: its two cells are twins (blurring is off)
GRID = SMALL.replace("epochs = 1", "epochs = 3").replace('[arms.a]\n\n[arms.b]\nlr = 0.001\n',
                                                     '''grid = { blur_stages = [1, 2] }

[arms.base]

[arms.sharp]
blur_n = "stages"
stage_epochs = 1
''')
BASE1, BASE2 = "base__blur_stages-1", "base__blur_stages-2"


def _exp(tmp_path: Path, text: str = SMALL, *overrides: str):
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return load_experiment(str(p), overrides=list(overrides))


def _schedule(exp, out: Path):
    """The schedule as the runner makes it: the directory's record merged in first."""
    resolved, plan = exp.resolved(), make_plan(exp)
    if (out / "runs").exists() and not (out / "config.json").exists():  # as its first run wrote it
        RunDir(out).write_config(copy.deepcopy({**resolved, "plan": plan}))
    kept = resume(out, exp, resolved, plan)
    return schedule_runs(exp, out, resolved, plan, kept)


def _finish(out: Path, arm: str, seed: int, group: list[int], status: str = "ok",
            **extra) -> dict:
    """A finished run's result.json, written with the run directory's writer."""
    res = {"arm": arm, "seed": seed, "status": status, "test_acc": 0.5 + seed / 100,
           "plan": {"group": group}, **extra}
    folder = RunDir(out).seed_dir(arm, seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_result(folder, res)
    return res


def _by(schedule) -> dict[tuple[str, int], Action]:
    runs = [st.run for st in schedule.steps]
    assert len(runs) == len(set(runs))  # each (arm, seed) is one step
    return {st.run: st.action for st in schedule.steps}


def _trained(schedule) -> list[tuple[str, int]]:
    """The (arm, seed) pairs whose result.json a job writes."""
    return [(j.group.arm, s) for j in schedule.jobs for s in j.record_only]


def test_a_fresh_folder_plans_every_arm_and_seed(tmp_path):
    schedule = _schedule(_exp(tmp_path, SMALL, "runs=3"), tmp_path / "r")
    every = [(a, s) for a in ("a", "b") for s in (5, 6, 7)]
    assert schedule.order == every
    assert _by(schedule) == dict.fromkeys(every, Action.TRAIN)
    assert _trained(schedule) == every
    assert [j.group.seeds for j in schedule.jobs] == [(5,), (6,), (7,)] * 2
    assert schedule.groups == {"a": [[5], [6], [7]], "b": [[5], [6], [7]]}
    assert not (tmp_path / "r").exists()  # planning wrote nothing


def test_finished_runs_are_skipped_with_their_results_and_only_the_missing_planned(tmp_path):
    out = tmp_path / "r"
    kept = {("a", 6): _finish(out, "a", 6, [6]),
            ("b", 5): _finish(out, "b", 5, [5], status="diverged")}  # diverged: finished too
    _finish(out, "b", 7, [7], status="failed")  # failed: trained again
    schedule = _schedule(_exp(tmp_path, SMALL, "runs=3"), out)
    want = {(a, s): Action.TRAIN for a in ("a", "b") for s in (5, 6, 7)}
    want.update(dict.fromkeys(kept, Action.FINISHED))
    assert _by(schedule) == want
    assert {st.run: st.result for st in schedule.of(Action.FINISHED)} == kept
    assert _trained(schedule) == [("a", 5), ("a", 7), ("b", 6), ("b", 7)]
    assert all(st.problem is None for st in schedule.steps)


def test_a_cut_result_json_is_planned_again_with_its_problem(tmp_path):
    out = tmp_path / "r"
    for arm in ("a", "b"):
        for s in (5, 6):
            _finish(out, arm, s, [s])
    cut = RunDir(out).seed_dir("b", 6) / RESULT
    cut.write_text(cut.read_text()[:20])  # killed mid-write by a tool that is not atomic
    schedule = _schedule(_exp(tmp_path), out)
    assert _trained(schedule) == [("b", 6)]
    (step,) = [st for st in schedule.steps if st.problem]
    assert step.run == ("b", 6) and step.action is Action.TRAIN
    assert "seed-6/result.json: cannot be read" in step.problem


def test_a_stacked_group_resumes_whole_from_its_checkpoint_else_trains_its_missing_seeds(
        tmp_path):
    exp = _exp(tmp_path, SMALL, "runs=3", "stack_seeds=3", "select_arms='a'")
    out = tmp_path / "r"
    _finish(out, "a", 5, [5, 6, 7])
    (job,) = _schedule(exp, out).jobs
    assert (job.group.seeds, job.record_only) == ((6, 7), (6, 7))  # a grown seed list
    checkpoint_path(RunDir(out).seed_dir("a", 5)).write_bytes(b"")
    schedule = _schedule(exp, out)
    (job,) = schedule.jobs
    assert (job.group.seeds, job.record_only) == ((5, 6, 7), (6, 7))  # whole, from seed 5's
    assert _by(schedule) == {("a", 5): Action.FINISHED, ("a", 6): Action.TRAIN,
                             ("a", 7): Action.TRAIN}
    assert schedule.groups == {"a": [[5, 6, 7]]}


def test_a_grown_directory_records_its_groups_as_they_trained(tmp_path):
    out = tmp_path / "r"
    for s in (5, 6):
        _finish(out, "a", s, [5, 6])
    schedule = _schedule(_exp(tmp_path, SMALL, "runs=4", "stack_seeds=4", "select_arms='a'"),
                         out)
    assert schedule.groups == {"a": [[5, 6], [7, 8]]}
    assert [(j.group.seeds, j.record_only) for j in schedule.jobs] == [((7, 8), (7, 8))]


def test_twins_are_planned_as_twins(tmp_path):
    exp = _exp(tmp_path, GRID)
    out = tmp_path / "g"
    fresh = _schedule(exp, out)  # the first cell's base trains; the second's waits for it
    assert {st.run: (st.action, st.twin) for st in fresh.steps if st.group.arm == BASE2} == {
        (BASE2, 5): (Action.AFTER_TWIN, BASE1), (BASE2, 6): (Action.AFTER_TWIN, BASE1)}
    assert [j.group.arm for j in fresh.jobs].count(BASE2) == 0
    assert sorted(_trained(fresh)) == sorted(
        (a, s) for a in exp.arms if a != BASE2 for s in (5, 6))
    for s in (5, 6):  # the twin trained earlier, as the same group
        _finish(out, BASE1, s, [s])
    again = _schedule(exp, out)
    assert {st.run: (st.action, st.twin) for st in again.steps if st.group.arm == BASE2} == {
        (BASE2, 5): (Action.COPY, BASE1), (BASE2, 6): (Action.COPY, BASE1)}
    assert all(j.group.arm not in (BASE1, BASE2) for j in again.jobs)


def test_a_twin_that_trained_another_group_or_was_itself_copied_is_not_copied(tmp_path):
    exp = _exp(tmp_path, GRID)
    out = tmp_path / "g"
    _finish(out, BASE1, 5, [5, 6])  # another group than the plan's [5] and [6]
    _finish(out, BASE1, 6, [6], twin_of="elsewhere")  # a copy: not a training
    schedule = _schedule(exp, out)
    assert {st.run: st.action for st in schedule.steps if st.group.arm.startswith("base")} == {
        (BASE1, 5): Action.FINISHED, (BASE1, 6): Action.FINISHED,
        (BASE2, 5): Action.TRAIN, (BASE2, 6): Action.TRAIN}


def test_the_directorys_arms_this_invocation_leaves_out_are_kept_not_trained(tmp_path):
    out = tmp_path / "r"
    exp = _exp(tmp_path)
    resolved, plan = exp.resolved(), make_plan(exp)
    RunDir(out).write_config({**resolved, "plan": plan})
    _finish(out, "b", 5, [5])
    schedule = _schedule(_exp(tmp_path, SMALL, "select_arms='a'"), out)
    assert _by(schedule) == {("a", 5): Action.TRAIN, ("a", 6): Action.TRAIN,
                             ("b", 5): Action.FINISHED, ("b", 6): Action.NOT_NAMED}
    assert _trained(schedule) == [("a", 5), ("a", 6)]
    assert "b" not in schedule.groups  # its recorded plan stays as it was


@pytest.mark.parametrize("arm, seed, k", [("a", 5, 1), ("b", 6, 4)])
def test_a_run_is_numbered_by_its_place_in_the_file_order(tmp_path, arm, seed, k):
    schedule = _schedule(_exp(tmp_path), tmp_path / "r")
    assert schedule.number((arm, seed)) == f"[{k}/4]"
    assert json.dumps(schedule.order) == '[["a", 5], ["a", 6], ["b", 5], ["b", 6]]'
