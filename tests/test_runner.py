"""The runner's own logic, on runs small enough for mutation testing (each test a few seconds):
what a directory records, which runs a second invocation trains, keeps or skips, and the
plan it reuses. The end-to-end versions (subprocesses, kills, Ray) are in test_experiments,
test_faults and test_stacking."""

from __future__ import annotations

import csv
import json
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import sharpen
from sharpen import SharpenError
from sharpen.experiments import load_experiment, run_experiment, runner
from sharpen.experiments.config import RunConfig
from sharpen.experiments.schedule import found_run
from sharpen.rundir import RunDir

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


@pytest.fixture
def small(tmp_path) -> Path:
    p = tmp_path / "small.toml"
    p.write_text(SMALL)
    return p


@pytest.fixture(autouse=True)
def no_curves(monkeypatch):
    """The report's figures cost seconds per run; the report's tests draw them."""
    from sharpen.reports import report

    monkeypatch.setattr(report, "plot_curves", lambda *a, **k: None)


def run(exp, out, **kw):
    """In this process unless a test says otherwise (a pool costs seconds to start)."""
    return run_experiment(exp, out, **{"workers": 1, **kw})


def exp_of(path: Path, *overrides: str, **kw):
    return load_experiment(str(path), overrides=list(overrides), **kw)


def results_csv(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


def test_backend_is_checked_before_anything_is_written(small, tmp_path):
    with pytest.raises(SharpenError, match=r"^backend must be one of local, serial, processes, "
                                           r"ray, got 'slurm'$"):
        run_experiment(exp_of(small), tmp_path / "r", quiet=True, backend="slurm")
    assert not (tmp_path / "r").exists()


def test_results_csv_has_one_row_per_arm_and_seed_in_plan_order(small, tmp_path):
    out, results = run(exp_of(small, "runs=3"), tmp_path / "r", quiet=True)
    rows = results_csv(out)
    with open(out / "results.csv") as f:
        assert next(csv.reader(f)) == [  # exactly these, in this order (metrics.result_columns)
            "arm", "seed", "status", "test_acc", "best_test_acc", "best_epoch", "train_acc",
            "val_acc", "gap", "train_loss", "test_loss", "digit_acc", "epochs_done", "params",
            "stacked_seeds", "error"]
    assert [(r["arm"], int(r["seed"])) for r in rows] == [
        (a, s) for a in ("a", "b") for s in (5, 6, 7)]
    assert [(r["arm"], r["seed"]) for r in results] == [(r["arm"], int(r["seed"])) for r in rows]
    for r in rows:  # each row is its run's result.json
        res = json.loads((out / "runs" / r["arm"] / f"seed-{r['seed']}" / "result.json")
                         .read_text())
        assert float(r["test_acc"]) == pytest.approx(res["test_acc"], abs=1e-12)
        assert r["status"] == res["status"] == "ok" and r["epochs_done"] == "1"


def test_environment_names_the_versions_the_commit_and_the_hardware(small, tmp_path):
    out, _ = run(exp_of(small), tmp_path / "r", quiet=True)
    env = json.loads((out / "environment.json").read_text())
    assert env["torch"] == torch.__version__ and env["cpu_count"] == os.cpu_count()
    assert env["python"] == platform.python_version() and env["sharpen"] == sharpen.__version__
    assert env["platform"] == platform.platform()
    assert env["processor"] == (platform.processor() or platform.machine())
    assert env["torch_threads"] == torch.get_num_threads()
    assert env["cuda"] is None or env["cuda"] == torch.cuda.get_device_name(0)
    root = Path(runner.__file__).resolve().parents[3]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or None
    assert env["git_commit"] == head
    if head:
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True).stdout.strip()
        assert env["git_dirty"] is bool(dirty)
    with open("/proc/cpuinfo") as f:
        names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
    assert env["cpu_model"] == (names[0] if names else None)


def test_every_invocation_is_logged_once_with_its_jobs_and_wall_time(small, tmp_path):
    # the default workers first (one job, so no process pool is started), then one process
    out, _ = run_experiment(exp_of(small, "runs=1", "select_arms='a'"), tmp_path / "r",
                            quiet=True, command="sharpen run x")
    run(exp_of(small, "runs=3"), out, quiet=True)
    hist = json.loads((out / "history.json").read_text())
    env = json.loads((out / "environment.json").read_text())
    assert len(hist) == 2 and hist[0]["id"] != hist[1]["id"]  # one entry each, updated in place
    for h in hist:
        assert re.fullmatch(r"[0-9a-f]{12}", h["id"])
        assert h["finished"] >= h["started"] and h["wall_s"] >= 0
        assert h["commit"] == env["git_commit"] and h["dirty"] == env["git_dirty"]
        assert h["machine"] == (f"{env['cpu_model'] or env['processor']}, {env['cpu_count']} "
                                "cores")
        assert h["backend"] == "local"
    assert hist[1]["wall_s"] > 0  # five runs: measurably long (the first may round to 0.0)
    # the plan's threads are 1, so the default workers are the cores
    assert hist[0]["workers"] == os.cpu_count() and hist[1]["workers"] == 1
    assert hist[0]["command"] == "sharpen run x" and hist[1]["command"] is None
    # a: seed 5 first; then a's seeds 6 and 7 and b's 5, 6 and 7
    assert (hist[0]["jobs"], hist[0]["runs"]) == (1, 1) and (hist[1]["jobs"], hist[1]["runs"]) == (
        5, 5)


def test_log_invocation_appends_new_ids_and_replaces_its_own(tmp_path):
    RunDir(tmp_path).log_invocation({"id": "x", "n": 1})
    RunDir(tmp_path).log_invocation({"id": "y", "n": 2})
    RunDir(tmp_path).log_invocation({"id": "x", "n": 3})
    assert json.loads((tmp_path / "history.json").read_text()) == [{"id": "x", "n": 3},
                                                                   {"id": "y", "n": 2}]


def test_threads_override_changes_the_recorded_plan(small, tmp_path):
    """The file says 2 threads, --threads 1 runs and records 1. (Nothing here trains with
    2 threads: OpenMP in a forked child of a process that already used it deadlocks, and
    mutmut forks each mutant's tests.)"""
    from sharpen.experiments.plan import make_plan

    two = exp_of(small, "threads=2")
    assert {a["threads"] for a in make_plan(two)["arms"].values()} == {2}
    out, _ = run(exp_of(small, "threads=2"), tmp_path / "r", quiet=True, threads=1)
    cfg = json.loads((out / "config.json").read_text())
    assert {a["threads"] for a in cfg["plan"]["arms"].values()} == {1}
    assert {a["threads"] for a in cfg["arms"].values()} == {1}
    res = json.loads((out / "runs" / "a" / "seed-5" / "result.json").read_text())
    assert res["plan"] == {"threads": 1, "stack": 1, "group": [5]}


def test_progress_lines_count_runs_and_say_what_was_skipped(small, tmp_path, capsys):
    out, _ = run(exp_of(small), tmp_path / "r")
    text = capsys.readouterr().out
    assert "running 4 jobs in this process" in text
    # each job's epochs, one line each (not a terminal: no bar)
    assert re.search(r"^a · seed 5 · epoch 1/1 · test acc \d+\.\d\d % · \d+\.\d s · all jobs "
                     r"\d/4 epochs, ETA \d+:\d\d$", text, re.M), text
    for k, (arm, seed) in enumerate([("a", 5), ("a", 6), ("b", 5), ("b", 6)], 1):
        acc = json.loads((out / "runs" / arm / f"seed-{seed}" / "result.json").read_text())[
            "test_acc"]
        assert re.search(rf"^\[{k}/4\] {arm} seed {seed}: ok test_acc {acc:.4f} \(\d+\.\ds\)$",
                         text, re.M), text
    run(exp_of(small, "runs=3"), out)
    text = capsys.readouterr().out
    assert "[1/6] a seed 5: finished earlier, skipped" in text
    assert "[5/6] b seed 6: finished earlier, skipped" in text
    assert re.search(r"^\[6/6\] b seed 7: ok test_acc", text, re.M)
    assert "running 2 jobs in this process" in text
    run(exp_of(small, "runs=4"), out, quiet=True)  # quiet: nothing, with jobs to run too
    assert capsys.readouterr().out == ""
    run(exp_of(small, "runs=5", "select_arms='a'"), out)
    assert "running 1 job in this process" in capsys.readouterr().out  # was "1 jobs"


def test_finished_runs_are_kept_failed_ones_trained_again(small, tmp_path):
    out, _ = run(exp_of(small), tmp_path / "r", quiet=True)
    res = {s: out / "runs" / "a" / f"seed-{s}" / "result.json" for s in (5, 6)}
    ok = json.loads(res[5].read_text())
    # seed 5 diverged earlier (kept as it is); seed 6 failed (trained again)
    res[5].write_text(json.dumps({**ok, "status": "diverged", "test_acc": 0.125}))
    res[6].write_text(json.dumps({**json.loads(res[6].read_text()), "status": "failed"}))
    assert found_run(out, "a", 5) == ({**ok, "status": "diverged", "test_acc": 0.125}, None)
    assert found_run(out, "a", 6) == (None, None) and found_run(out, "a", 7) == (None, None)
    _, results = run(exp_of(small), out, quiet=True)
    by = {(r["arm"], r["seed"]): r for r in results}
    assert by[("a", 5)]["status"] == "diverged" and by[("a", 5)]["test_acc"] == 0.125
    assert json.loads(res[6].read_text())["status"] == "ok"
    assert json.loads((out / "history.json").read_text())[-1]["runs"] == 1


def test_a_result_json_missing_metrics_gets_them_in_results_csv_from_metrics_csv(small,
                                                                               tmp_path):
    """A finished run whose result.json lacks test_acc (written by hand, or by an older
    version) had a blank test_acc in results.csv while report.md took it from metrics.csv:
    results.csv now takes it from metrics.csv as the report does (no retraining)."""
    out, _ = run(exp_of(small), tmp_path / "r", quiet=True)
    path = out / "runs" / "a" / "seed-5" / "result.json"
    res = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in res.items() if k not in ("test_acc", "gap")}))
    with open(out / "runs" / "a" / "seed-5" / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]  # what the report reads: the final epoch's row
    _, results = run(exp_of(small), out, quiet=True)
    assert json.loads((out / "history.json").read_text())[-1]["runs"] == 0  # none retrained
    row = next(r for r in results_csv(out) if (r["arm"], r["seed"]) == ("a", "5"))
    assert float(row["test_acc"]) == pytest.approx(float(last["test_acc"]), abs=1e-12)
    assert float(row["gap"]) == pytest.approx(float(last["gap"]), abs=1e-12)
    summary = json.loads((out / "summary.json").read_text())
    (arm,) = [a for a in summary["arms"] if a["arm"] == "a"]
    with open(out / "runs" / "a" / "seed-6" / "metrics.csv") as f:
        other = float(list(csv.DictReader(f))[-1]["test_acc"])
    assert arm["test_acc_mean"] == pytest.approx((float(last["test_acc"]) + other) / 2)


def test_files_left_half_written_by_a_killed_writer_are_removed(small, tmp_path):
    out, _ = run(exp_of(small), tmp_path / "r", quiet=True)
    stale = [out / ".results.csv.x.tmp", out / "runs" / "a" / "seed-5" / ".metrics.csv.y.tmp"]
    for p in stale:
        p.write_text("half")
    keep = out / "runs" / "a" / "notes.tmp"  # not a writer's temporary file
    keep.write_text("mine")
    run(exp_of(small), out, quiet=True)
    assert not any(p.exists() for p in stale) and keep.read_text() == "mine"


def test_a_changed_configuration_is_refused_with_its_differences(small, tmp_path):
    out, _ = run(exp_of(small), tmp_path / "r", quiet=True)
    before = (out / "config.json").read_bytes()
    with pytest.raises(SharpenError, match=re.escape(
            f"{out} holds runs of a different configuration (arms.a.batch_size: 50 → 20; "
            "arms.b.batch_size: 50 → 20); use another --out")):
        run(exp_of(small, "batch_size=20"), out, quiet=True)
    many = ["batch_size=20", "epochs=2", "optimizer='sgd'", "momentum=0.5", "train_size=80",
            "val_size=10"]  # 12 differences over two arms: 8 shown
    with pytest.raises(SharpenError, match=r"; … 4 more\); use another --out") as e:
        run(exp_of(small, *many), out, quiet=True)
    assert str(e.value).count("arms.") == 8
    eight = many[:4]  # 4 keys × 2 arms: all shown, no "more"
    with pytest.raises(SharpenError, match=r'"adam" → "sgd"\); use another --out') as e:
        run(exp_of(small, *eight), out, quiet=True)
    assert "more" not in str(e.value) and str(e.value).count("arms.") == 8
    with pytest.raises(SharpenError, match=r"; … 1 more\); use another --out"):
        run(exp_of(small, *eight, "lr=0.01"), out, quiet=True)  # b keeps its own lr: 9
    assert (out / "config.json").read_bytes() == before


def test_config_diff_lists_changes_and_treats_new_keys_as_their_defaults():
    base = json.loads(RunConfig().model_dump_json())
    old = {"a": dict(base), "gone": dict(base)}
    new = {"a": {**base, "epochs": 7}, "added": dict(base)}
    assert runner.config_diff(old, new) == [
        "arm 'added' is new", "arm 'gone' is missing", f"arms.a.epochs: {base['epochs']} → 7"]
    assert runner.config_diff(old, new, common_only=True) == [
        f"arms.a.epochs: {base['epochs']} → 7"]
    without = {k: v for k, v in base.items() if k != "mixup_alpha"}
    assert runner.config_diff({"a": without}, {"a": dict(base)}) == []
    assert runner.config_diff({"a": without}, {"a": {**base, "mixup_alpha": 0.5}}) == [
        "arms.a.mixup_alpha: null → 0.5"]
    assert runner.config_diff({"a": {**base, "x": 1}}, {"a": dict(base)}) == [
        "arms.a.x: 1 → null"]
    # either side may lack the key: at its default it is no change
    assert runner.config_diff({"a": dict(base)}, {"a": without}) == []


def test_a_resumed_directory_keeps_its_recorded_plan(small, tmp_path):
    """Seeds 5 and 6 were recorded as two groups (another machine's plan); resuming with a
    configuration that would stack them keeps the recorded groups, so the numbers match."""
    out, _ = run(exp_of(small, "stack_seeds=2"), tmp_path / "r", quiet=True)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["plan"]["arms"]["a"]["groups"] == [[5, 6]]
    cfg["plan"]["arms"]["a"]["groups"] = [[5], [6]]
    cfg["plan"]["arms"]["a"]["stack"] = 1
    (out / "config.json").write_text(json.dumps(cfg))
    for s in (5, 6):
        (out / "runs" / "a" / f"seed-{s}" / "result.json").unlink()
    _, results = run(exp_of(small, "stack_seeds=2"), out, quiet=True)
    assert [r["stacked_seeds"] for r in results if r["arm"] == "a"] == [1, 1]
    assert json.loads((out / "config.json").read_text())["plan"]["arms"]["a"]["groups"] == [
        [5], [6]]
    # more seeds: the new ones are planned afresh, and the record keeps 5 and 6 in the
    # groups they trained in (issue 32: not the regrouping [[5, 6], [7, 8]] that never ran)
    _, results = run(exp_of(small, "stack_seeds=2", "runs=4"), out, quiet=True)
    plan = json.loads((out / "config.json").read_text())["plan"]["arms"]["a"]
    assert plan["groups"] == [[5], [6], [7, 8]]
    assert [r["stacked_seeds"] for r in results if r["arm"] == "a"] == [1, 1, 2, 2]


def test_arms_not_named_again_stay_with_their_runs_and_do_not_train(small, tmp_path):
    small.write_text(SMALL + "\n[grid]\nbatch_size = [50, 100]\n")
    out, _ = run(exp_of(small), tmp_path / "r", quiet=True)
    cfg = json.loads((out / "config.json").read_text())
    cells = sorted(cfg["cells"])
    assert len(cells) == 4
    lost = out / "runs" / cells[-1] / "seed-6" / "result.json"
    lost.unlink()
    first = cells[0]
    _, results = run(exp_of(small, f"select_arms='{first.split('__')[0]}'"), out,
                                quiet=True)
    assert not lost.exists()  # an arm this invocation does not name is not trained
    after = json.loads((out / "config.json").read_text())
    assert sorted(after["arms"]) == cells and after["cells"] == cfg["cells"]
    assert after["plan"]["arms"] == cfg["plan"]["arms"]
    assert len(results) == 7  # every finished run, the kept arms' too
    rows = results_csv(out)
    assert {r["base_arm"] for r in rows} == {"a", "b"}
    assert {r["grid_batch_size"] for r in rows} == {"50", "100"}


def test_fewer_runs_than_finished_keep_the_finished_ones_in_results_csv(small, tmp_path):
    """`--runs 2` (or another `seed`) on a directory holding more finished seeds: results.csv
    lists every finished run, as report.md's table counts them (it listed only the plan's
    seeds: a silent disagreement between the two files); an unfinished seed the plan does
    not name is not trained."""
    out, _ = run(exp_of(small, "runs=3"), tmp_path / "r", quiet=True)
    (out / "runs" / "b" / "seed-7" / "result.json").unlink()  # b's seed 7 never finished
    _, results = run(exp_of(small, "runs=2"), out, quiet=True)
    want = [("a", 5), ("a", 6), ("a", 7), ("b", 5), ("b", 6)]
    assert [(r["arm"], int(r["seed"])) for r in results_csv(out)] == want
    assert [(r["arm"], r["seed"]) for r in results] == want
    assert not (out / "runs" / "b" / "seed-7" / "result.json").exists()
    table = {r["arm"]: r["n"] for r in csv.DictReader(open(out / "table.csv"))}
    assert table == {"a": "3", "b": "2"}
    plan = json.loads((out / "config.json").read_text())["plan"]["arms"]["a"]
    assert plan["groups"] == [[5], [6], [7]]  # as they trained (stack_seeds = 1)
    # another base seed: seeds 8 and 9 join the directory, 5-7 stay in results.csv
    _, results = run(exp_of(small, "seed=8", "select_arms='a'"), out, quiet=True)
    assert [(r["arm"], int(r["seed"])) for r in results_csv(out)] == [
        ("a", s) for s in (5, 6, 7, 8, 9)] + [("b", 5), ("b", 6)]


def test_the_experiment_file_is_copied_once(small, tmp_path):
    out, _ = run(exp_of(small), tmp_path / "r", quiet=True)
    assert (out / "experiment.toml").read_text() == SMALL
    small.write_text(SMALL + "# edited later\n")
    run(exp_of(small), out, quiet=True)
    assert (out / "experiment.toml").read_text() == SMALL


def test_a_group_with_a_checkpoint_resumes_whole_and_one_without_trains_the_missing(
        small, tmp_path, monkeypatch):
    """The driver dies after a stacked group wrote its first seed's result: the group's
    checkpoint is still there, so the group resumes whole from it (the missing seed keeps
    its stacked numbers); without the checkpoint only the missing seed trains, alone."""
    from sharpen.experiments import job

    ref, _ = run(exp_of(small, "stack_seeds=2", "epochs=2"), tmp_path / "ref",
                            quiet=True)
    real = job.record
    calls = []

    def dying(res, arm, cell, rdir):
        calls.append(res["seed"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(res, arm, cell, rdir)

    monkeypatch.setattr(job, "record", dying)
    out = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        run(exp_of(small, "stack_seeds=2", "epochs=2", "select_arms='a'"), out,
                       quiet=True)
    monkeypatch.setattr(job, "record", real)
    a = out / "runs" / "a"
    assert (a / "seed-5" / "checkpoint.pt").exists() and not (a / "seed-6" / "result.json").exists()
    kept = (a / "seed-5" / "result.json").read_bytes()
    _, results = run(exp_of(small, "stack_seeds=2", "epochs=2", "select_arms='a'"),
                                out, quiet=True)
    assert (a / "seed-5" / "result.json").read_bytes() == kept
    assert [(r["arm"], r["seed"]) for r in results] == [("a", 5), ("a", 6)]
    six = json.loads((a / "seed-6" / "result.json").read_text())
    want = json.loads((ref / "runs" / "a" / "seed-6" / "result.json").read_text())
    assert six["stacked_seeds"] == 2 and six["test_acc"] == want["test_acc"]
    assert not (a / "seed-5" / "checkpoint.pt").exists()
    # the same loss without a checkpoint: seed 6 trains on its own
    (a / "seed-6" / "result.json").unlink()
    _, results = run(exp_of(small, "stack_seeds=2", "epochs=2", "select_arms='a'"),
                                out, quiet=True)
    assert json.loads((a / "seed-6" / "result.json").read_text())["stacked_seeds"] == 1
    assert (a / "seed-5" / "result.json").read_bytes() == kept


def test_default_out_dir_and_run_dir_layout(small):
    d = runner.default_out_dir(exp_of(small))
    assert re.fullmatch(r"runs/small/\d{8}-\d{6}", d.as_posix())
    assert runner.run_dir(Path("o"), "a", 7) == Path("o/runs/a/seed-7")


def test_trackers_get_each_finished_run_then_close(small, tmp_path, monkeypatch, capsys):
    """The runner's side of --log (the trackers themselves: test_experiments): every run
    that finished, this time or earlier, and only with a tracker named."""
    from sharpen.reports import trackers

    made = []

    class Fake:
        def __init__(self, names, out, cfg):
            self.names, self.out, self.cfg, self.runs, self.closed = names, out, cfg, [], False
            made.append(self)

        def log_run(self, arm, seed):
            self.runs.append((arm, seed))

        def close(self):
            self.closed = True

        def viewers(self):
            return [f"view {' '.join(self.names)}"]

        def watch(self, pairs):
            import contextlib

            self.watched = list(pairs)
            return contextlib.nullcontext()

    monkeypatch.setattr(trackers, "Trackers", Fake)
    out, _ = run(exp_of(small, "select_arms='a'"), tmp_path / "r", quiet=True)
    assert made == []  # no tracker named
    small.write_text(SMALL.replace('threads = 1', 'threads = 1\nlog = ["tensorboard"]'))
    run(exp_of(small), out, quiet=True, log=["mlflow"])
    (t,) = made
    assert t.names == ["tensorboard", "mlflow"] and t.out == out and t.closed
    assert set(t.cfg["arms"]) == {"a", "b"}
    # b's runs as they finish, then every run of the directory (the tracker logs each once)
    assert t.runs == [("b", 5), ("b", 6), ("a", 5), ("a", 6), ("b", 5), ("b", 6)]
    assert t.watched == [("b", 5), ("b", 6)]  # the runs that train are logged live too
    run(exp_of(small), out, quiet=True)  # the file's log alone
    assert len(made) == 2 and made[1].names == ["tensorboard"]
    small.write_text(SMALL)
    run(exp_of(small), out, quiet=True, log=["mlflow"])  # --log alone
    assert len(made) == 3 and made[2].names == ["mlflow"]
    assert "tracking:" not in capsys.readouterr().out  # quiet: nothing said
    run(exp_of(small), out, log=["mlflow"])
    assert "tracking: view mlflow\n" in capsys.readouterr().out


@pytest.mark.parametrize("backend,workers,jobs,want", [
    ("ray", 1, 2, "ray"), ("ray", 4, 1, "ray"), ("ray", 1, 0, "serial"),
    ("local", 2, 2, "processes"), ("local", 4, 3, "processes"), ("local", 1, 3, "serial"),
    ("local", 2, 1, "serial"), ("local", 4, 0, "serial"),
    ("serial", 4, 3, "serial"), ("processes", 1, 3, "processes"), ("processes", 4, 1, "processes")])
def test_each_backend_of_the_registry_places_jobs_where_it_says(monkeypatch, backend, workers,
                                                                jobs, want):
    from sharpen.experiments import backends

    calls, ready = [], []
    monkeypatch.setattr(backends, "run_ray", lambda *a: calls.append(("ray", a)))
    monkeypatch.setattr(backends, "run_serial", lambda *a: calls.append(("serial", a)))

    def processes(todo, n, report, while_running):
        while_running()  # the figures are drawn while the pool trains
        calls.append(("processes", (todo, n, report)))

    monkeypatch.setattr(backends, "run_processes", processes)
    todo = [backends.Job(backends.Group("a", (k,)), {}, (f"/r/{k}",), None, {"threads": 1},
                         (k,)) for k in range(jobs)]
    report, log = object(), object()
    place = backends.Placement(workers, "ray://here", log)
    backends.get_backend(backend).run(todo, report, place, lambda: ready.append(1))
    (name, args), = calls
    assert name == want and ready == [1]  # the figures once, whatever the backend
    assert args == {"ray": (todo, report, "ray://here"),
                    "processes": (todo, max(1, min(workers, jobs)), report),
                    "serial": (todo, report, log)}[want]
    # the CLI offers exactly the registry's backends
    from sharpen.cli import build_parser

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    (opt,) = [a for a in run._actions if "--backend" in a.option_strings]
    assert opt.choices == list(backends.BACKENDS) == ["local", "serial", "processes", "ray"]


class _Git:
    """Stands in for subprocess.run: what git prints, and the calls it got."""

    def __init__(self, head: str, status: str):
        self.head, self.status, self.calls = head, status, []

    def __call__(self, cmd, **kw):
        self.calls.append((cmd, kw))
        out = self.head if "rev-parse" in cmd else self.status
        return SimpleNamespace(stdout=out + "\n" if kw.get("text") else (out + "\n").encode())


@pytest.mark.parametrize("head,status,commit,dirty", [
    ("abc123", "", "abc123", False), ("abc123", " M src/sharpen/x.py", "abc123", True),
    ("", " M src/x.py", None, False)])
def test_environment_asks_git_for_the_commit_and_changes_under_src(monkeypatch, head, status,
                                                                    commit, dirty):
    git = _Git(head, status)
    monkeypatch.setattr(runner.subprocess, "run", git)
    env = runner.environment()
    assert env["git_commit"] == commit and env["git_dirty"] is dirty
    root = Path(runner.__file__).resolve().parents[3]
    assert (root / "src" / "sharpen" / "experiments" / "runner.py").is_file()
    assert [c for c, _ in git.calls][0] == ["git", "-C", str(root), "rev-parse", "HEAD"]
    if commit:
        assert [c for c, _ in git.calls][1] == ["git", "-C", str(root), "status", "--porcelain",
                                                "--", "src"]
    for _, kw in git.calls:  # text output, and a hung git cannot hang a run
        assert kw["capture_output"] is True and kw["text"] is True and 0 < kw["timeout"] <= 10


def test_environment_without_git_records_none(monkeypatch):
    def no_git(*a, **k):
        raise FileNotFoundError("git")

    monkeypatch.setattr(runner.subprocess, "run", no_git)
    env = runner.environment()
    assert env["git_commit"] is None and env["git_dirty"] is None


def test_cpu_model_is_the_first_model_name_line_whole(monkeypatch):
    text = "processor\t: 0\nmodel name\t: Odd: CPU @ 2.0GHz\nmodel name\t: second\n"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: text)
    assert runner.cpu_model() == "Odd: CPU @ 2.0GHz"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "processor\t: 0\n")
    assert runner.cpu_model() is None

    def unreadable(self, *a, **k):
        raise PermissionError(str(self))

    monkeypatch.setattr(Path, "read_text", unreadable)
    assert runner.cpu_model() is None


def _serial_pool(todo, n, report, while_running=None):
    """A stand-in for the process pool that runs the jobs here (pools cannot start inside
    mutmut's forked test process)."""
    from sharpen.experiments import backends

    if while_running:
        while_running()
    backends.run_serial(todo, report, None)


def test_where_jobs_run_is_said_and_passed_on(small, tmp_path, monkeypatch, capsys):
    from sharpen.experiments import backends

    seen = {}

    def fake_ray(todo, report, address):
        seen["ray"] = (len(todo), address)
        backends.run_serial(todo, report, None)

    monkeypatch.setattr(backends, "run_ray", fake_ray)
    monkeypatch.setattr(backends, "run_processes", _serial_pool)
    out, results = run_experiment(exp_of(small), tmp_path / "ray", backend="ray",
                                  address="ray://head:10001")
    assert "running 4 jobs in Ray tasks" in capsys.readouterr().out
    assert seen["ray"] == (4, "ray://head:10001") and len(results) == 4
    assert json.loads((out / "history.json").read_text())[0]["backend"] == "ray"
    run_experiment(exp_of(small, "runs=1"), tmp_path / "pool", workers=3)
    assert "running 2 jobs in 2 processes" in capsys.readouterr().out
    run_experiment(exp_of(small), tmp_path / "two", workers=2)
    assert "running 4 jobs in 2 processes" in capsys.readouterr().out


def test_without_out_a_timestamped_directory_under_runs_is_made(small, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out, _ = run(exp_of(small, "runs=1", "select_arms='a'"), None, quiet=True)
    assert re.fullmatch(r"runs/small/\d{8}-\d{6}", out.as_posix())
    assert (tmp_path / out / "results.csv").is_file()


def test_an_experiment_without_a_source_file_runs_and_copies_nothing(small, tmp_path):
    exp = exp_of(small, "runs=1", "select_arms='a'")
    exp.source = None
    out, _ = run(exp, tmp_path / "r", quiet=True)
    assert not list(out.glob("experiment.*")) and (out / "results.csv").is_file()


def test_a_directory_from_before_plans_were_recorded_still_resumes(small, tmp_path):
    out, _ = run(exp_of(small), tmp_path / "r", quiet=True)
    cfg = json.loads((out / "config.json").read_text())
    del cfg["plan"]
    (out / "config.json").write_text(json.dumps(cfg))
    _, results = run(exp_of(small, "runs=3"), out, quiet=True)
    assert len(results) == 6 and "plan" in json.loads((out / "config.json").read_text())


def test_the_machine_line_names_the_cpu_or_processor_the_cores_and_a_gpu(small, tmp_path,
                                                                         monkeypatch):
    fake = {"python": "3", "torch": "t", "sharpen": "s", "platform": "p", "processor": "x86_64",
            "cpu_model": None, "cpu_count": 7, "torch_threads": 1, "cuda": "H100",
            "git_commit": None, "git_dirty": None}
    monkeypatch.setattr(runner, "environment", lambda: dict(fake))
    out, _ = run(exp_of(small, "runs=1", "select_arms='a'"), tmp_path / "r", quiet=True)
    monkeypatch.setattr(runner, "environment", lambda: {**fake, "cpu_model": "EPYC", "cuda": None})
    run(exp_of(small, "runs=1", "select_arms='a'"), out, quiet=True)
    hist = json.loads((out / "history.json").read_text())
    assert [h["machine"] for h in hist] == ["x86_64, 7 cores, H100", "EPYC, 7 cores"]


@pytest.mark.parametrize("cores,want", [(1, 1), (None, 1), (5, 5)])
def test_default_workers_are_the_cores_over_the_plans_threads(small, tmp_path, monkeypatch,
                                                              cores, want):
    out, _ = run(exp_of(small), tmp_path / "r", quiet=True)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: cores)
    run_experiment(exp_of(small), out, quiet=True)  # nothing left to run: no pool starts
    got = json.loads((out / "history.json").read_text())[-1]["workers"]
    assert got == want and type(got) is int


def test_the_wall_time_is_the_invocations_own_to_a_tenth_of_a_second(small, tmp_path,
                                                                      monkeypatch):
    ticks = iter([100.0, 112.345])
    monkeypatch.setattr(runner, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    out, _ = run(exp_of(small, "runs=1", "select_arms='a'"), tmp_path / "r", quiet=True)
    assert json.loads((out / "history.json").read_text())[0]["wall_s"] == 12.3


def test_progress_watches_each_groups_first_folder(small, tmp_path, monkeypatch):
    from sharpen.experiments import progress

    made = []

    class Fake:
        def __init__(self, jobs, enabled=None, workers=1):
            made.append((jobs, enabled))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, line):
            print(line)

    monkeypatch.setattr(progress, "Progress", Fake)
    out = tmp_path / "r"
    run(exp_of(small, "stack_seeds=2", "epochs=2"), out, quiet=True)
    run(exp_of(small, "stack_seeds=2", "epochs=2", "runs=3"), out)
    (jobs, quiet_enabled), (more, enabled) = made
    assert quiet_enabled is False and enabled is None  # None: a bar on a terminal, else lines
    first = (out / "runs" / "a" / "seed-5").resolve()
    assert (jobs[0].folder, jobs[0].epochs, jobs[0].seeds) == (first, 2, (5, 6))
    assert [j.label for j in jobs] == ["a · seeds 5–6", "b · seeds 5–6"]
    assert [j.label for j in more] == ["a · seed 7", "b · seed 7"]


def test_a_run_without_a_test_accuracy_prints_its_status_alone(small, tmp_path, capsys):
    small.write_text(SMALL + '\n[arms.boom]\noptimizer = "sgd"\nlr = 1e30\n')
    run(exp_of(small, "runs=1", "select_arms='boom'"), tmp_path / "r")
    text = capsys.readouterr().out
    assert re.search(r"^\[1/1\] boom seed 5: diverged \(\d+\.\ds\)$", text, re.M), text


# ---- twin runs through the runner (tests/test_twins.py compares a copy with a training) --

GRID = SMALL.replace("epochs = 1", "epochs = 3").replace('[arms.a]\n\n[arms.b]\nlr = 0.001\n',
                                                     '''grid = { blur_stages = [1, 2] }

[arms.base]

[arms.sharp]
blur_n = "stages"
stage_epochs = 1
''')


def _res(out: Path, arm: str, seed: int) -> dict:
    return json.loads((out / "runs" / arm / f"seed-{seed}" / "result.json").read_text())


def _check_copies(out: Path, results: list[dict]) -> None:
    for s in (5, 6):
        copy, src = _res(out, "base__blur_stages-2", s), _res(out, "base__blur_stages-1", s)
        assert copy["twin_of"] == "base__blur_stages-1" and "twin_of" not in src
        assert (copy["arm"], copy["base_arm"], copy["grid_blur_stages"]) == \
            ("base__blur_stages-2", "base", 2)
        assert copy["test_acc"] == src["test_acc"] and copy["seed"] == s
        for arm in ("sharp__blur_stages-1", "sharp__blur_stages-2"):  # the keys change these
            assert "twin_of" not in _res(out, arm, s)
    assert sorted((r["arm"], r["seed"]) for r in results) == sorted(
        (f"{a}__blur_stages-{k}", s) for a in ("base", "sharp") for k in (1, 2) for s in (5, 6))
    rows = {(r["arm"], r["seed"]): r for r in results_csv(out)}
    assert rows[("base__blur_stages-2", "5")]["grid_blur_stages"] == "2"
    assert rows[("base__blur_stages-2", "5")]["test_acc"] == \
        rows[("base__blur_stages-1", "5")]["test_acc"]


def test_one_invocation_trains_a_twin_group_once_and_copies_it_after(tmp_path):
    p = tmp_path / "grid.toml"
    p.write_text(GRID)
    out, results = run(exp_of(p), tmp_path / "g", quiet=True)
    _check_copies(out, results)
    assert (out / "schedule.png").stat().st_size > 0  # drawn while the jobs ran
    (entry,) = json.loads((out / "history.json").read_text())
    assert (entry["jobs"], entry["runs"]) == (6, 6)  # base once, sharp in each cell


def test_cell_by_cell_a_twin_on_disk_is_copied_and_said(tmp_path, capsys):
    p = tmp_path / "grid.toml"
    p.write_text(GRID)
    exp = exp_of(p)
    out = tmp_path / "g"
    for k in (1, 2):  # the --until-decided way: the first cell's arms kept from the record
        arms = {a: c for a, c in exp.arms.items() if a.endswith(f"-{k}")}
        _, results = run(exp.model_copy(update={
            "arms": arms, "cells": {a: exp.cells[a] for a in arms}}), out)
    text = capsys.readouterr().out
    for n, s in ((3, 5), (4, 6)):  # numbered in the file's order: base's first cell first
        assert f"[{n}/8] base__blur_stages-2 seed {s}: the same run as " \
               "base__blur_stages-1's, copied\n" in text
    _check_copies(out, results)  # the kept cell's runs among them, read from disk
    entry = json.loads((out / "history.json").read_text())[-1]
    assert (entry["jobs"], entry["runs"]) == (2, 2)  # only the second cell's sharp arm


# ---- what an invocation that stops leaves behind --------------------------------------

def test_a_corrupt_result_is_said_on_stderr_and_trained_again(small, tmp_path, capsys):
    out, _ = run(exp_of(small), tmp_path / "r", quiet=True)
    (out / "runs" / "a" / "seed-6" / "result.json").write_text("{half")
    capsys.readouterr()
    run(exp_of(small), out, quiet=True)
    err = capsys.readouterr()
    lines = [ln for ln in err.err.splitlines() if "again" in ln]
    assert len(lines) == 1 and "again" not in err.out
    assert lines[0].startswith("sharpen: ") and "seed-6/result.json: cannot be read" in lines[0]
    assert lines[0].endswith("; training a seed 6 again")
    assert _res(out, "a", 6)["status"] == "ok"


@pytest.mark.parametrize("exc, said", [(RuntimeError("boom\nmore detail"), "RuntimeError: boom"),
                                       (KeyboardInterrupt(), "interrupted"),
                                       (SharpenError("x" * 400), "SharpenError: " + "x" * 286)])
def test_a_stopped_invocation_says_when_and_why_in_the_history(small, tmp_path, monkeypatch,
                                                               exc, said):
    import sharpen.reports

    def fail(out):
        raise exc

    monkeypatch.setattr(sharpen.reports, "write_report", fail)
    with pytest.raises(type(exc)):
        run(exp_of(small), tmp_path / "r", quiet=True)
    (entry,) = json.loads((tmp_path / "r" / "history.json").read_text())
    assert entry["stopped"] == said and entry["ended"] >= entry["started"]
    assert (tmp_path / "r" / "runs" / "a" / "seed-5" / "result.json").exists()  # kept


def test_a_directory_this_invocation_made_is_removed_when_nothing_finished(small, tmp_path,
                                                                          monkeypatch):
    from sharpen.experiments import job

    real = job.run_group

    def no_data(*a, **k):
        raise SharpenError("data_dir: no such folder")

    monkeypatch.setattr(job, "run_group", no_data)
    with pytest.raises(SharpenError, match="no such folder"):
        run(exp_of(small), tmp_path / "new", quiet=True)
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()  # an empty folder holds nothing to lose either
    with pytest.raises(SharpenError):
        run(exp_of(small), tmp_path / "empty", quiet=True)
    assert not (tmp_path / "empty").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    with pytest.raises(SharpenError):
        run(exp_of(small), tmp_path / "mine", quiet=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "the user's"
    # one it made that already holds a finished run, or a checkpoint to resume, is kept
    calls = []

    def second_fails(cfg, arm, seeds, rdirs, *a, **k):
        calls.append(arm)
        if len(calls) == 1:
            return real(cfg, arm, seeds, rdirs, *a, **k)
        raise SharpenError("data_dir: gone")

    def checkpoint_then_fail(cfg, arm, seeds, rdirs, *a, **k):
        Path(rdirs[0]).mkdir(parents=True, exist_ok=True)
        (Path(rdirs[0]) / "checkpoint.pt").write_bytes(b"a training's state")
        raise SharpenError("data_dir: gone")

    monkeypatch.setattr(job, "run_group", second_fails)
    with pytest.raises(SharpenError, match="gone"):
        run(exp_of(small), tmp_path / "half", quiet=True)
    assert (tmp_path / "half" / "runs" / "a" / "seed-5" / "result.json").exists()
    monkeypatch.setattr(job, "run_group", checkpoint_then_fail)
    with pytest.raises(SharpenError, match="gone"):
        run(exp_of(small), tmp_path / "ck", quiet=True)
    assert (tmp_path / "ck" / "runs" / "a" / "seed-5" / "checkpoint.pt").exists()


def test_warnings_go_to_stderr_and_a_resume_is_said_indented(small, tmp_path, capsys,
                                                             monkeypatch):
    """An idle technique is warned about once on stderr; a group resuming from its
    checkpoint says so on stdout, indented under its job."""
    from sharpen.experiments import job

    small.write_text(SMALL.replace("[arms.b]\nlr = 0.001\n",
                                   '[arms.b]\nlr = 0.001\n'
                                   'flip_p = {kind = "step", start = 0.0, delta = 0.5, every = 3}\n'))
    sets = ("runs=1", "epochs=2", "select_arms='a'")
    real = job.record

    def dying(res, arm, cell, rdir):  # the driver dies after the last epoch's checkpoint
        raise KeyboardInterrupt

    monkeypatch.setattr(job, "record", dying)
    with pytest.raises(KeyboardInterrupt):
        run(exp_of(small, *sets), tmp_path / "r", quiet=True)
    monkeypatch.setattr(job, "record", real)
    shutil.copytree(tmp_path / "r", tmp_path / "q")
    capsys.readouterr()
    run(exp_of(small, *sets), tmp_path / "q", quiet=True)
    assert capsys.readouterr().out == ""  # quiet: not even the resume
    run(exp_of(small, *sets), tmp_path / "r")
    out = capsys.readouterr().out
    assert re.search(r"^    resuming after epoch \d from .*checkpoint\.pt$", out, re.M), out
    run(exp_of(small, "runs=1", "epochs=2", "select_arms='b'"), tmp_path / "w", quiet=True)
    cap = capsys.readouterr()
    assert cap.err.count("sharpen: warning: arm 'b': ") == 1 and "warning" not in cap.out


def test_a_failure_before_the_invocation_starts_leaves_the_history_as_it_was(small, tmp_path,
                                                                            monkeypatch):
    out, _ = run(exp_of(small), tmp_path / "r", quiet=True)
    before = (out / "history.json").read_text()

    def broken():
        raise SharpenError("no git, no platform")

    monkeypatch.setattr(runner, "environment", broken)
    with pytest.raises(SharpenError, match="no git, no platform"):  # the error itself
        run(exp_of(small), out, quiet=True)
    assert (out / "history.json").read_text() == before
