"""`sharpen calibrate`: the stack size timed with every core busy, cached per machine, used
by the plan, recorded in config.json, result.json and the report, and never a number."""

from __future__ import annotations

import csv
import json
import multiprocessing
import statistics
import time
from pathlib import Path

import pytest

from sharpen import SharpenError
from sharpen.cli import main
from sharpen.experiments import calibration, load_experiment, run_experiment, stack_timing
from sharpen.experiments.calibration import Calibrated, calibration_key, choose, lookup
from sharpen.experiments.plan import MAX_STACK, make_plan
from sharpen.rundir import REPORT


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SHARPEN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "calibration.json"


def _one_arm(*extra: str):
    return load_experiment("quickstart", profile="smoke",
                           overrides=["runs=4", "select_arms=['lenet5']", *extra])


def _planted(exp, stack: int) -> None:
    """This machine's cache says ``stack`` for the arm's model (as a calibration would)."""
    cfg = exp.arms["lenet5"]
    rates = {1: 100.0, 2: 99.0, 5: 90.0, 10: 80.0}
    calibration.store(calibration_key(cfg, 1), Calibrated(stack, "2026-12-02T14:00:00", 2, rates),
                       {"model": cfg.model, "batch_size": cfg.batch_size, "rounds": {}})


# --- the choice -------------------------------------------------------------------------------

def test_the_default_is_kept_unless_a_size_is_faster_in_every_round_by_the_margin():
    # rates[k][r]: seed-steps/s of round r; 10 is the default (the largest size timed)
    noisy = {1: [105.0, 95.0, 104.0], 2: [100.0, 100.0, 100.0], 10: [100.0, 100.0, 100.0]}
    assert choose(noisy) == 10  # 1 is faster in two rounds of three: noise, not a choice
    once_slower = {1: [110.0, 95.0, 108.0], 10: [100.0, 100.0, 100.0]}
    assert choose(once_slower) == 10  # median +8 %, but slower in one round
    small = {1: [103.0, 103.0, 104.0], 10: [100.0, 100.0, 100.0]}
    assert choose(small) == 10  # faster in every round, by 3-4 % < MARGIN (5 %)
    clear = {1: [112.0, 108.0, 120.0], 5: [106.0, 107.0, 106.0], 10: [100.0, 100.0, 100.0]}
    assert choose(clear) == 1  # both qualify; 1 has the higher median
    # the ratio is taken round by round (drift hits both sizes of a round alike)
    drift = {1: [60.0, 110.0, 160.0], 10: [55.0, 100.0, 150.0]}
    ratios = [a / b for a, b in zip(drift[1], drift[10])]
    assert min(ratios) > 1 and statistics.median(ratios) >= 1 + calibration.MARGIN
    assert choose(drift) == 1
    assert choose({1: [90.0], 10: [100.0]}) == 10


def test_measure_gives_a_rate_per_size_and_round(monkeypatch):
    """Two real timing processes, two sizes, two rounds: a positive rate for each (that
    their windows start together is the next test's)."""
    cfg = _one_arm().arms["lenet5"]
    monkeypatch.setattr(stack_timing, "WINDOW_S", 0.2)
    rates = stack_timing.measure(cfg, sizes=(1, 2), rounds=2, window=0.2, processes=2)
    assert set(rates) == {1, 2} and all(len(v) == 2 and min(v) > 0 for v in rates.values())


def test_timing_processes_start_each_window_together(tmp_path, monkeypatch):
    """A process that is slow to build its models holds the others at the barrier: every
    window starts within a few ms in every process (stamps written by the processes)."""
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    (stamps / "slow").unlink(missing_ok=True)
    cfg = _one_arm().arms["lenet5"]
    real = stack_timing.step_function

    def slow_for_one(cfg, seeds):  # noqa: ANN001, ANN202
        try:  # the first process here builds its models 0.6 s late
            (stamps / "slow").open("x").close()
            time.sleep(0.6)
        except FileExistsError:
            pass
        step = real(cfg, seeds)

        def stamped() -> None:
            (stamps / f"{multiprocessing.current_process().pid}").open("a").write(
                f"{seeds} {time.time()}\n")
            step()

        return stamped

    monkeypatch.setattr(stack_timing, "step_function", slow_for_one)
    # the fork server imported stack_timing before the patch: run the timing in-process
    ctx = multiprocessing.get_context("fork")
    monkeypatch.setattr(stack_timing, "worker_context",
                        lambda: (ctx, multiprocessing.current_process().pid))
    stack_timing.measure(cfg, sizes=(1, 2), rounds=1, window=0.3, processes=2)
    firsts: dict[int, list[float]] = {1: [], 2: []}
    for f in stamps.iterdir():
        if f.name == "slow":
            continue
        lines = [ln.split() for ln in f.read_text().splitlines()]
        for k in (1, 2):  # its first step of the window = third stamp of size k (2 warm)
            firsts[k].append(float([t for s, t in lines if int(s) == k][2]))
    assert len(firsts[1]) == 2
    for k, ts in firsts.items():
        assert max(ts) - min(ts) < 0.15, (k, ts)


# --- the cache and the plan -------------------------------------------------------------------

def test_the_plan_uses_this_machines_calibration_and_records_it(cache):
    exp = _one_arm()
    plain = make_plan(exp, cores=2)["arms"]["lenet5"]
    assert plain["groups"] == [[0, 1], [2, 3]] and "calibrated" not in plain
    assert "not calibrated on this machine" in plain["why"]
    _planted(exp, 1)
    assert cache.is_file() and lookup(exp.arms["lenet5"], 1).stack == 1
    cal = make_plan(exp, cores=2)["arms"]["lenet5"]
    assert cal["groups"] == [[0], [1], [2], [3]] and cal["stack"] == 1
    assert cal["calibrated"]["stack"] == 1 and "calibrated on this machine" in cal["why"]
    # an explicit stack_seeds wins over the calibration
    fixed = make_plan(_one_arm("stack_seeds=2"), cores=2)["arms"]["lenet5"]
    assert fixed["groups"] == [[0, 1], [2, 3]] and "calibrated" not in fixed
    # another model (another key) is not calibrated
    other = load_experiment("quickstart", profile="smoke", overrides=["runs=4"])
    plan = make_plan(other, cores=2)["arms"]
    assert [a for a, v in plan.items() if "calibrated" in v] == ["lenet5"]


def test_another_machines_calibration_is_not_used(cache, monkeypatch):
    exp = _one_arm()
    _planted(exp, 1)
    monkeypatch.setattr(calibration, "describe", lambda: {"cpu": "another", "cores": 64})
    assert lookup(exp.arms["lenet5"], 1) is None
    assert make_plan(exp, cores=2)["arms"]["lenet5"]["groups"] == [[0, 1], [2, 3]]
    # and calibrating there keeps this machine's entry
    data = json.loads(cache.read_text())
    assert len(data["machines"]) == 1


def test_a_cuda_arm_never_uses_a_cpu_calibration(cache):
    exp = _one_arm()
    _planted(exp, 1)
    cuda = _one_arm("device=cuda")
    assert calibration_key(cuda.arms["lenet5"], 1) == calibration_key(exp.arms["lenet5"], 1)
    plan = make_plan(cuda, cores=2)["arms"]["lenet5"]
    assert "calibrated" not in plan and plan["stack"] == 2


def test_grouped_convolutions_on_the_cpu_never_use_a_calibration(cache, capsys):
    """stack_conv = "grouped": one convolution call serves a group, so its size can change
    a seed's rounding; a calibration must not pick the groups (even one planted under its
    very key), and calibrate does not time it."""
    grouped = _one_arm("stack_conv=grouped")
    cfg = grouped.arms["lenet5"]
    calibration.store(calibration_key(cfg, 1),
                      Calibrated(1, "2026-12-02T14:00:00", 2, {1: 100.0, 10: 80.0}),
                      {"model": cfg.model, "batch_size": cfg.batch_size, "rounds": {}})
    plan = make_plan(grouped, cores=2)["arms"]["lenet5"]
    assert "calibrated" not in plan and plan["groups"] == [[0, 1], [2, 3]]
    assert stack_timing.calibrate([cfg], sizes=(1, 2), rounds=1, window=0.1) == []
    assert "stack_conv = 'grouped'" in capsys.readouterr().out


def test_a_damaged_cache_names_the_file(cache):
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    with pytest.raises(SharpenError, match=r"calibration\.json: cannot be read.*delete it"):
        make_plan(_one_arm(), cores=2)
    cache.write_text(json.dumps({"version": 99, "machines": {}}))
    with pytest.raises(SharpenError, match="not a sharpen calibration file of version 1"):
        lookup(_one_arm().arms["lenet5"], 1)


def test_a_calibrated_run_records_it_and_gives_the_same_numbers(cache, tmp_path):
    exp = _one_arm()
    plain, cal = tmp_path / "plain", tmp_path / "cal"
    run_experiment(exp, plain, quiet=True)
    _planted(exp, 1)
    run_experiment(exp, cal, quiet=True)
    rows = [list(csv.DictReader(open(d / "results.csv"))) for d in (plain, cal)]
    drop = ("seconds", "images_per_s", "stacked_seeds")  # the plan, not a number
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows[0]] == \
           [{k: v for k, v in r.items() if k not in drop} for r in rows[1]]
    res = json.loads((cal / "runs" / "lenet5" / "seed-0" / "result.json").read_text())
    assert res["plan"]["stack"] == 1 and res["plan"]["calibrated"]["stack"] == 1
    assert json.loads((cal / "config.json").read_text())["plan"]["arms"]["lenet5"]["calibrated"]
    head = (cal / REPORT).read_text().split("## ")[0]
    assert "Stacking chosen by this machine's calibration" in head and "1 seed(s) per job" in head
    assert "calibration" not in (plain / REPORT).read_text().split("## ")[0]
    # a directory keeps the plan it trained with: resuming after a new calibration
    _planted(exp, 10)
    run_experiment(exp, cal, quiet=True)
    again = json.loads((cal / "config.json").read_text())["plan"]["arms"]["lenet5"]
    assert again["groups"] == [[0], [1], [2], [3]]


def test_calibrate_times_each_model_once_and_caches_the_choice(cache, capsys):
    rows = stack_timing.calibrate(list(_one_arm().arms.values()) * 2, sizes=(1, 2), rounds=1,
                                 window=0.15)
    assert len(rows) == 1 and rows[0]["stack"] in (1, 2)
    stored = calibration.stored()
    assert len(stored) == 1 and set(stored[0]["seed_steps_per_s"]) == {"1", "2"}
    assert stored[0]["processes"] >= 1 and lookup(_one_arm().arms["lenet5"], 1) is not None
    out = capsys.readouterr().out
    assert "lenet5" in out and "cached in" in out
    with pytest.raises(SharpenError, match="two or more increasing stack sizes"):
        stack_timing.calibrate([], sizes=(2, 1))


def test_cli_calibrate_show_forget(cache, capsys):
    with pytest.raises(SystemExit):
        main(["calibrate", "--rounds", "x"])
    assert main(["calibrate"]) == 2  # names nothing: the error says what to give
    assert "name one or more experiments" in capsys.readouterr().err
    assert main(["calibrate", "--show"]) == 0
    assert "0 calibration(s)" in capsys.readouterr().out
    _planted(_one_arm(), 1)
    assert main(["calibrate", "--show"]) == 0
    out = capsys.readouterr().out
    assert "1 calibration(s)" in out and "1 seed(s) per job" in out
    assert main(["calibrate", "--forget"]) == 0
    assert "forgot" in capsys.readouterr().out and calibration.stored() == []
    assert MAX_STACK == max(stack_timing.SIZES)


# --- a hostile user (helper C, 2026-12-02) ----------------------------------------------------

@pytest.mark.parametrize("window", ["nan", "-1", "0", "601"])
def test_a_window_that_times_nothing_or_past_the_drivers_wait_is_the_flags_error(
        cache, capsys, window):
    # nan passed `window <= 0`: every window timed no step, and choose() divided by 0
    assert main(["calibrate", "quickstart", "--profile", "smoke", "--window", window]) == 2
    err = capsys.readouterr().err
    assert f"--window {float(window)}" in err and "0 < window ≤ 60 seconds" in err
    assert not cache.exists()


def test_rounds_past_the_most_are_the_flags_error(cache, capsys):
    assert main(["calibrate", "quickstart", "--profile", "smoke", "--rounds", "1000000000"]) == 2
    assert "--rounds 1000000000, --window 0.6: need 1 ≤ rounds ≤ 100" in capsys.readouterr().err


def _hand_edited(cache: Path, **fields) -> None:
    data = json.loads(cache.read_text())
    (entry,) = next(iter(data["machines"].values()))["choices"].values()
    entry.update(fields)
    for k in [k for k, v in fields.items() if v is ...]:
        del entry[k]
    cache.write_text(json.dumps(data))


@pytest.mark.parametrize("fields,match", [
    ({"stack": 0}, "stack = 0"), ({"stack": -3}, "stack = -3"),
    ({"stack": "two"}, 'stack = "two"'), ({"stack": None}, "stack = null"),
    ({"stack": 2.5}, "stack = 2.5"), ({"stack": ...}, r"stack = \"\(missing\)\""),
    ({"seed_steps_per_s": {}}, "seed_steps_per_s = {}"),
    ({"seed_steps_per_s": {"a": 1}}, 'seed_steps_per_s = {"a": 1}'),
])
def test_a_hand_edited_entry_is_an_error_naming_the_file_field_and_value(cache, capsys,
                                                                          fields, match):
    exp = _one_arm()
    _planted(exp, 1)
    _hand_edited(cache, **fields)
    with pytest.raises(SharpenError, match=rf"calibration\.json: {match} in a calibration of "
                                           r"lenet5: need stack an integer ≥ 1"):
        make_plan(exp, cores=2)
    assert main(["calibrate", "--show"]) == 2  # --show names it too (was a KeyError)
    assert "calibration of lenet5" in capsys.readouterr().err


def test_a_planted_stack_the_calibration_did_not_time_plans_and_describes(cache):
    exp = _one_arm()
    _planted(exp, 1)
    _hand_edited(cache, stack=3)  # not among the sizes timed: describe() had a KeyError
    arm = make_plan(exp, cores=2)["arms"]["lenet5"]
    assert arm["groups"] == [[0, 1], [2, 3]] and "3 seed(s) per job" in arm["why"]  # near-equal
    data = json.loads(cache.read_text())
    next(iter(data["machines"].values()))["choices"] = []
    cache.write_text(json.dumps(data))
    with pytest.raises(SharpenError, match="this machine's entry is not"):
        make_plan(exp, cores=2)


USER_HOOK = '''
from sharpen.training import Hook

class PerBatch(Hook):
    """Treats the batch as one seed's: it does not stack."""
'''


def test_calibrate_skips_an_arm_the_plan_never_stacks_and_says_why(cache, tmp_path,
                                                                   monkeypatch, capsys):
    """A choice printed for an arm whose plan takes stack_seeds as set, or 1 because it
    does not stack, would be one that no run uses: such arms are said, not timed."""
    (tmp_path / "helperc_hook.py").write_text(USER_HOOK)
    monkeypatch.syspath_prepend(str(tmp_path))
    timed: list[str] = []
    monkeypatch.setattr(stack_timing, "measure", lambda cfg, *a: timed.append(cfg.model) or {
        1: [1.0], 2: [1.0]})
    fixed = _one_arm("stack_seeds=2").arms["lenet5"]
    hooked = _one_arm("hooks=[{target='helperc_hook:PerBatch'}]").arms["lenet5"]
    assert stack_timing.calibrate([fixed, hooked], sizes=(1, 2), rounds=1, window=0.1) == []
    out = capsys.readouterr().out
    assert "skipped lenet5: stack_seeds = 2 is set" in out
    assert "skipped lenet5: its seeds train one per job (not stackable: " \
           "helperc_hook:PerBatch (its hook does not stack))" in out
    assert timed == [] and not cache.exists()
    # a stackable arm is still timed
    assert len(stack_timing.calibrate([_one_arm().arms["lenet5"]], sizes=(1, 2), rounds=1,
                                     window=0.1)) == 1 and timed == ["lenet5"]


def test_a_second_calibration_waits_for_the_one_timing(cache, monkeypatch):
    """Two at once would each time with the cores shared by both: the second waits."""
    import fcntl
    import threading

    monkeypatch.setattr(stack_timing, "measure", lambda *a: {1: [1.0], 2: [1.0]})
    cache.parent.mkdir(parents=True)
    said: list[str] = []
    cfg = _one_arm().arms["lenet5"]
    with open(cache.parent / "calibration.json.measuring.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the first calibration, timing
        t = threading.Thread(target=stack_timing.calibrate, args=([cfg],),
                             kwargs={"sizes": (1, 2), "rounds": 1, "window": 0.1,
                                     "log": said.append})
        t.start()
        deadline = time.time() + 20  # it probes the model first: a loaded CI machine is slow
        while not any(m.startswith("waiting") for m in said) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        assert t.is_alive() and [m for m in said if m.startswith("waiting: another")]
        assert not cache.exists()
        fcntl.flock(held, fcntl.LOCK_UN)
    t.join(timeout=10)
    assert not t.is_alive() and lookup(cfg, 1) is not None


def test_an_unwritable_cache_folder_is_said_before_any_timing(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("SHARPEN_CACHE_DIR", str(tmp_path / "file" / "sub"))
    monkeypatch.setattr(stack_timing, "measure", lambda *a: pytest.fail("timed"))
    assert main(["calibrate", "quickstart", "--profile", "smoke"]) == 2
    assert "cannot keep calibrations there" in capsys.readouterr().err


def test_ctrl_c_during_calibrate_says_what_is_kept(cache, monkeypatch, capsys):
    def interrupted(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(stack_timing, "calibrate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["calibrate", "quickstart", "--profile", "smoke"])
    err = capsys.readouterr().err
    assert "finished timing are cached" in err and "finished runs" not in err


def test_the_report_line_says_each_choice_once_in_size_order_and_the_arms_it_did_not_plan():
    """A grid's cells share their model's calibration: said once, with the cells counted,
    the rates in stack-size order (config.json's keys sort "10" before "2"), and the arms
    the calibration did not plan named as such (they were missing from the line)."""
    from sharpen.reports.report import _stacking_line

    rec = {"stack": 2, "measured": "2026-12-02T14:00:00", "processes": 2,
           "seed_steps_per_s": {"1": 90.0, "10": 80.0, "2": 100.0, "5": 95.0}}
    arms = {f"lenet5__lr-{i}": {"calibrated": rec} for i in range(6)}
    arms |= {"dropout__lr-0": {"why": "not stackable"}, "dropout__lr-1": {}}
    (line, blank) = _stacking_line(arms, [])
    assert blank == "" and len(line) < 400
    assert ("up to 2 seed(s) per job (seed-steps/s by stack size with 2 processes busy: "
            "1: 90, 2: 100, 5: 95, 10: 80; 2026-12-02) for 6 arms (lenet5__lr-0, "
            "lenet5__lr-1, …); not by it: dropout__lr-0, dropout__lr-1") in line
    every = _stacking_line({"a": {"calibrated": rec}, "b": {"calibrated": rec}}, [])[0]
    assert " for " not in every and "not by it" not in every
    assert _stacking_line({"a": {}}, []) == []


def test_show_lists_the_rates_in_stack_size_order(cache, capsys):
    _planted(_one_arm(), 1)
    assert main(["calibrate", "--show"]) == 0
    assert "seed-steps/s 1: 100, 2: 99, 5: 90, 10: 80;" in capsys.readouterr().out


def test_the_timed_step_is_the_trainers_under_amp_and_compile(monkeypatch):
    """amp and compile are in the calibration key, so the step timed must use them as the
    trainer does: it timed a plain fp32, uncompiled step and cached it under their key."""
    import torch

    dtypes: list[torch.dtype] = []
    real_total = stack_timing._total
    monkeypatch.setattr(stack_timing, "_total", lambda out: dtypes.append(out.dtype)
                        or real_total(out))
    for amp, want in (("off", torch.float32), ("bf16", torch.bfloat16)):
        stack_timing.step_function(_one_arm(f"amp={amp}").arms["lenet5"], 2)()
        assert dtypes.pop() == want
    compiled: list[object] = []
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: compiled.append(mode)
                        or model)
    stack_timing.step_function(_one_arm("compile='reduce-overhead'").arms["lenet5"], 2)()
    assert compiled == ["reduce-overhead"]


def test_a_directory_grown_after_a_calibration_says_which_seeds_it_stacked(cache, tmp_path):
    """config.json's plan is the latest one: the report reads each seed's result.json,
    so seeds trained before the calibration are not said to be stacked by it."""
    out = tmp_path / "grown"
    run_experiment(_one_arm("runs=2"), out, quiet=True)
    _planted(_one_arm(), 1)
    run_experiment(_one_arm(), out, quiet=True)  # runs=4: seeds 2 and 3 join
    head = (out / REPORT).read_text().split("## ")[0]
    assert ("Stacking chosen by this machine's calibration (`sharpen calibrate`): up to 1 "
            "seed(s) per job (seed-steps/s by stack size with 2 processes busy: 1: 100, "
            "2: 99, 5: 90, 10: 80; 2026-12-02) for lenet5's seeds 2-3; not by it: lenet5's "
            "seeds 0-1") in head


def test_forget_with_an_experiment_named_is_refused_not_a_forget_of_all(cache, capsys):
    _planted(_one_arm(), 1)
    assert main(["calibrate", "quickstart", "--forget"]) == 2
    assert "--forget drops every calibration of this machine, not those of quickstart" \
        in capsys.readouterr().err
    assert main(["calibrate", "--show", "--forget"]) == 2
    assert len(calibration.stored()) == 1  # nothing dropped


def test_the_plans_why_says_the_calibrated_size_is_a_most(cache):
    """One seed trains alone whatever the calibration chose: the plan's why, printed and
    recorded, said "2 seed(s) per job" beside a stack of 1."""
    exp = _one_arm("runs=1")
    _planted(exp, 2)
    arm = make_plan(exp, cores=2)["arms"]["lenet5"]
    assert arm["stack"] == 1 and "up to 2 seed(s) per job" in arm["why"]


def test_a_cache_dir_written_with_a_tilde_is_the_home_folders(tmp_path, monkeypatch):
    """SHARPEN_CACHE_DIR="~/cal" set where no shell expands it (a systemd unit, a .env
    file) made a folder named "~" in whatever directory each command ran from."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHARPEN_CACHE_DIR", "~/cal")
    monkeypatch.chdir(tmp_path)
    _planted(_one_arm(), 1)
    assert (tmp_path / "home" / "cal" / "calibration.json").is_file()
    assert not (tmp_path / "~").exists()


def test_the_key_is_the_model_as_built_not_the_words_that_name_it():
    """mnist and its bundled sample, or a default written out in model_args, build the same
    layers on the same input: one calibration; another layer size is another key."""
    base = load_experiment("sharpening-mnist").arms["baseline"]
    same = [base.model_copy(update={"dataset": "mnist-sample"}),
            base.model_copy(update={"model_args": {}})]
    assert all(calibration_key(c, 1) == calibration_key(base, 1) for c in same)
    other = [base.model_copy(update={"model_args": {"dropout": 0.3}}),
             base.model_copy(update={"batch_size": 64}),
             base.model_copy(update={"optimizer": "sgd"})]
    assert len({calibration_key(c, 1) for c in [base, *other]}) == 4
