from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sharpen import SharpenError
from sharpen.cli import main
from sharpen.experiments import load_experiment, run_experiment

TINY = """
name = "tiny"
runs = 2
seed = 5
dataset = "synthetic"
train_size = 300
val_size = 50
test_size = 200
model = "lenet5_dropout"
epochs = 2
batch_size = 50
optimizer = "adam"
lr = 0.003

[arms.a]
model_args = { dropout = 0.0 }

[arms.b]
lr = { kind = "step", start = 0.003, factor = 0.5, every = 1 }

[profiles.smoke]
epochs = 1
"arms.b.batch_size" = 100

[published.a]
test_acc = 0.9
"""


@pytest.fixture
def tiny(tmp_path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


def test_arms_inherit_base_and_profiles_override(tiny):
    exp = load_experiment(str(tiny), profile="smoke", overrides=["runs=3", "arms.a.epochs=4"])
    assert exp.runs == 3 and exp.seeds == [5, 6, 7]
    assert exp.arms["a"].epochs == 4 and exp.arms["b"].epochs == 1
    assert exp.arms["b"].batch_size == 100 and exp.arms["a"].batch_size == 50
    assert exp.arms["a"].model_args == {"dropout": 0.0} and exp.arms["b"].model_args == {}
    assert exp.arms["b"].lr.kind == "step"


def test_run_directory_is_self_describing(tiny, tmp_path):
    exp = load_experiment(str(tiny))
    out, results = run_experiment(exp, tmp_path / "run", quiet=True)
    for f in ("config.json", "environment.json", "experiment.toml", "results.csv",
              "summary.json", "table.csv", "report.md", "curves.png"):
        assert (out / f).is_file(), f
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["arm"], r["seed"]) for r in rows] == [("a", "5"), ("a", "6"), ("b", "5"), ("b", "6")]
    for col in ("arm", "seed", "test_acc", "best_test_acc", "train_acc", "val_acc", "gap",
                "status", "stacked_seeds"):
        assert col in rows[0]
    assert "seconds" not in rows[0]  # timings live in result.json: results.csv is reproducible
    res = json.loads((out / "runs" / "a" / "seed-5" / "result.json").read_text())
    assert res["seconds"] > 0 and res["plan"]["group"] == [5, 6]
    for r in rows:
        assert r["status"] == "ok" and 0 <= float(r["test_acc"]) <= 1
        metrics = list(csv.DictReader(open(out / "runs" / r["arm"] / f"seed-{r['seed']}" / "metrics.csv")))
        assert len(metrics) == 2
        assert float(metrics[-1]["test_acc"]) == float(r["test_acc"])
        assert float(r["best_test_acc"]) == max(float(m["test_acc"]) for m in metrics)
    env = json.loads((out / "environment.json").read_text())
    assert {"python", "torch", "sharpen", "cpu_count"} <= set(env)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["arms"]["b"]["lr"]["kind"] == "step" and cfg["arms"]["a"]["epochs"] == 2
    summary = json.loads((out / "summary.json").read_text())
    a = next(s for s in summary["arms"] if s["arm"] == "a")
    accs = [float(r["test_acc"]) for r in rows if r["arm"] == "a"]
    assert a["test_acc_mean"] == pytest.approx(sum(accs) / 2)
    assert a["test_acc_best"] == max(accs) and a["test_acc_worst"] == min(accs)
    report = (out / "report.md").read_text()
    assert "| a |" in report and "published" in report


def test_report_rebuilds_from_files_alone(tiny, tmp_path):
    out, _ = run_experiment(load_experiment(str(tiny), profile="smoke"), tmp_path / "r", quiet=True)
    before = (out / "report.md").read_text()
    for f in ("report.md", "summary.json", "table.csv", "curves.png"):
        (out / f).unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == before and (out / "curves.png").exists()


def test_rerun_skips_finished_and_refuses_changed_config(tiny, tmp_path):
    exp = load_experiment(str(tiny), profile="smoke")
    out, _ = run_experiment(exp, tmp_path / "r", quiet=True)
    res = out / "runs" / "a" / "seed-5" / "result.json"
    stamp, content = res.stat().st_mtime_ns, res.read_bytes()
    more = load_experiment(str(tiny), profile="smoke", runs=3)
    _, results = run_experiment(more, out, quiet=True)
    assert len(results) == 6
    assert res.stat().st_mtime_ns == stamp and res.read_bytes() == content
    changed = load_experiment(str(tiny), profile="smoke", overrides=["lr=0.1"])
    # arm b has an lr schedule of its own, so only arm a changed: the message says so
    with pytest.raises(SharpenError, match=r"different configuration \(arms.a.lr: 0.003 → 0.1\);"):
        run_experiment(changed, out, quiet=True)
    # each invocation is logged with its wall time and commit; the report sums them
    hist = json.loads((out / "history.json").read_text())
    # 2 arms × 2 seeds, then seed 7 of each; the refused third invocation never started
    assert [h["runs"] for h in hist] == [4, 2]
    assert all(h["wall_s"] > 0 and h["finished"] >= h["started"] for h in hist)
    assert all(h["commit"] == json.loads((out / "environment.json").read_text())["git_commit"]
               for h in hist)
    md = (out / "report.md").read_text()
    assert f"Wall time: {sum(h['wall_s'] for h in hist) / 60:.1f} min over 2 invocation(s)" in md


def test_cli_list_and_errors(capsys):
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert "lenet5_dropout" in out and "44,426" in out
    assert main(["run", "nope-not-here"]) == 2
    assert "no experiment file or bundled experiment named 'nope-not-here'" in capsys.readouterr().err


def test_cli_data_verify_bundled(capsys):
    assert main(["data", "verify", "mnist-sample"]) == 0
    assert capsys.readouterr().out.count("ok ") == 4


@pytest.mark.slow
def test_quickstart_reaches_95_percent_on_real_mnist_test_set(mnist_dir, tmp_path, capsys):
    """The acceptance bar: quickstart's quick profile on real MNIST (5k train, full 10k test)."""
    code = main(["run", "quickstart", "--profile", "quick", "--out", str(tmp_path / "qs"),
                 "--set", "dataset=mnist", "--set", f"data_dir='{mnist_dir}'", "--no-verify",
                 "--arms", "lenet5_dropout", "--quiet"])  # the arm the bar is about
    assert code == 0
    rows = list(csv.DictReader(open(tmp_path / "qs" / "results.csv")))
    mean = {a: sum(float(r["test_acc"]) for r in rows if r["arm"] == a) / 2
            for a in {r["arm"] for r in rows}}
    print("quickstart on real MNIST (mean test acc of 2 seeds):", mean)
    assert mean["lenet5_dropout"] >= 0.95
    from sharpen.data import load

    assert len(load("mnist", "test", root=mnist_dir, verify=True)[1]) == 10000


@pytest.mark.slow
def test_bundled_experiments_validate_in_every_standard_profile():
    from sharpen.experiments import list_bundled

    assert len(list_bundled()) >= 7
    for name in list_bundled():
        for profile in (None, "full", "quick", "smoke"):
            exp = load_experiment(name, profile=profile)
            assert exp.arms, (name, profile)


@pytest.mark.slow
def test_grid_expands_arms_times_cells_and_tabulates(tiny, tmp_path, capsys):
    # b's own lr schedule (and the smoke profile's b batch size) would be set by these axes
    # in every cell, never used: refused (tests/test_grid_claims.py); here b differs otherwise
    with pytest.raises(SharpenError, match=r"field arms.b.lr is never used: the grid axis lr"):
        load_experiment(str(tiny), profile="smoke", axes=["lr=0.01,1e6", "batch_size=50,100"])
    tiny.write_text(TINY.replace('lr = { kind = "step", start = 0.003, factor = 0.5, every = 1 }',
                                 "weight_decay = 0.0001").replace('"arms.b.batch_size" = 100\n', ""))
    exp = load_experiment(str(tiny), profile="smoke", axes=["lr=0.01,1e6", "batch_size=50,100"])
    assert len(exp.arms) == 2 * 2 * 2
    assert exp.cells["a__lr-0.01__batch_size-100"] == {"arm": "a", "lr": 0.01, "batch_size": 100}
    assert exp.arms["b__lr-1000000.0__batch_size-50"].lr == 1e6
    code = main(["grid", str(tiny), "--profile", "smoke", "--runs", "1", "--quiet",
                 "--set", "optimizer='sgd'", "--axis", "lr=0.05,1e6", "--axis", "batch_size=50",
                 "--out", str(tmp_path / "g")])
    assert code == 0  # diverged cells are recorded, not failures
    out = capsys.readouterr().out  # the terminal's table: the axes lead, then the arm
    assert re.search(r"^(lr +batch_size|batch_size +lr) +arm +n +test acc", out, re.M), out
    assert re.search(r"^(1000000\.0 +50|50 +1000000\.0) +a +0 of 1 .*not counted: 1 diverged$",
                     out, re.M), out
    rows = list(csv.DictReader(open(tmp_path / "g" / "results.csv")))
    assert {r["grid_lr"] for r in rows} == {"0.05", "1000000.0"}
    assert {r["status"] for r in rows if r["grid_lr"] == "1000000.0"} == {"diverged"}
    assert (tmp_path / "g" / "grid.csv").exists()



@pytest.mark.slow
def test_killed_long_run_resumes_from_its_last_epoch_with_the_same_numbers(tiny, tmp_path):
    args = ["--set", "epochs=6", "--set", "runs=1", "--arms", "b", "--quiet"]
    ref = tmp_path / "ref"
    assert main(["run", str(tiny), "--out", str(ref), *args]) == 0
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "sharpen.cli", "run", str(tiny), "--out", str(out), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = out / "runs" / "b" / "seed-5" / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(list(csv.DictReader(open(metrics)))) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "runs" / "b" / "seed-5" / "checkpoint.pt").exists()
    assert not (out / "runs" / "b" / "seed-5" / "result.json").exists()
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    def numbers(d):
        rows = list(csv.DictReader(open(d / "runs" / "b" / "seed-5" / "metrics.csv")))
        return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in rows]

    assert numbers(out) == numbers(ref) and len(numbers(out)) == 6
    assert not (out / "runs" / "b" / "seed-5" / "checkpoint.pt").exists()


@pytest.mark.slow
def test_ray_backend_gives_the_local_results(tiny, tmp_path):
    ray = pytest.importorskip("ray")
    timing = {"seconds", "images_per_s"}

    def values(d):
        return [{k: v for k, v in r.items() if k not in timing}
                for r in csv.DictReader(open(d / "results.csv"))]

    tiny.write_text(TINY + '\n[arms.boom]\noptimizer = "sgd"\nlr = 1e6\n')
    # a grid with a diverging arm (stacked groups through Ray: tests/test_stacking.py)
    args = ["grid", str(tiny), "--profile", "smoke", "--threads", "1", "--quiet",
            "--axis", "weight_decay=0,0.0001"]  # a key no arm sets (batch_size: arm b's own)
    assert main([*args, "--workers", "1", "--out", str(tmp_path / "local")]) == 0
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        assert main([*args, "--backend", "ray", "--out", str(tmp_path / "ray")]) == 0
    finally:
        ray.shutdown()
    assert values(tmp_path / "ray") == values(tmp_path / "local")
    statuses = {r["status"] for r in values(tmp_path / "ray")}
    assert statuses == {"ok", "diverged"}  # the diverged cells are recorded, the rest go on
    assert (tmp_path / "ray" / "report.md").read_text().count("| a__") >= 2


def test_stacked_rerun_finishes_only_the_missing_seeds(tiny, tmp_path):
    exp = load_experiment(str(tiny), profile="smoke", overrides=["runs=3", "stack_seeds=3"])
    out, _ = run_experiment(exp, tmp_path / "r", quiet=True)
    lost = out / "runs" / "a" / "seed-6" / "result.json"
    lost.unlink()  # as if the driver died before this seed's result was written
    kept = {p: p.read_bytes() for p in out.glob("runs/*/*/result.json")}
    _, results = run_experiment(load_experiment(str(tiny), profile="smoke",
                                                overrides=["runs=3", "stack_seeds=3"]),
                                out, quiet=True)
    assert all(p.read_bytes() == b for p, b in kept.items())
    redo = json.loads(lost.read_text())
    assert redo["status"] == "ok" and redo["stacked_seeds"] == 1  # rerun alone
    assert len(results) == 6 and all(r["status"] == "ok" for r in results)


def _bundled() -> list[str]:
    from sharpen.experiments import list_bundled

    return list_bundled()


# every bundled experiment, found in the package: a new one is one file, no line here
BUNDLED = _bundled()


def test_the_smoke_test_list_covers_every_bundled_experiment():
    assert {"quickstart", "sharpening-mnist", "sharpening-signals", "pairs-direct-shres",
            "pairs-sublenet", "deblur-cifar10", "vgg-cifar100", "techniques-cifar10",
            "sharpening-map", "deblur-map"} <= set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
@pytest.mark.slow
def test_every_bundled_experiment_runs_its_smoke_profile(name, tmp_path, request):
    """Lightning's fast_dev_run: every bundled experiment runs end to end in seconds."""
    args = ["run", name, "--profile", "smoke", "--out", str(tmp_path / "r"), "--quiet"]
    exp = load_experiment(name, profile="smoke")
    if any(a.dataset == "cifar10" for a in exp.arms.values()):  # the real CIFAR-10 (CI has it)
        args += ["--set", f"data_dir='{request.getfixturevalue('cifar10_dir')}'", "--no-verify"]
    assert main(args) == 0
    rows = list(csv.DictReader(open(tmp_path / "r" / "results.csv")))
    assert rows and all(r["status"] == "ok" for r in rows)
    assert len(rows) == len(exp.arms) * exp.runs
    assert (tmp_path / "r" / "report.md").is_file()


@pytest.mark.slow
def test_a_run_directory_reruns_itself_and_repeats_elsewhere(tiny, tmp_path, capsys):
    first = tmp_path / "first"
    args = ["run", str(tiny), "--profile", "smoke", "--set", "epochs=2", "--out", str(first),
            "--quiet"]
    assert main(args) == 0
    hist = json.loads((first / "history.json").read_text())
    assert hist[0]["command"] == "sharpen " + " ".join(args)  # the command line, as typed
    res = first / "runs" / "a" / "seed-5" / "result.json"
    stamp = res.stat().st_mtime_ns
    # `sharpen run DIR` continues the directory from its resolved config.json: nothing to do
    assert main(["run", str(first), "--quiet"]) == 0
    assert res.stat().st_mtime_ns == stamp
    assert main(["run", str(first), "--runs", "3", "--quiet"]) == 0  # grows it in place
    assert (first / "runs" / "b" / "seed-7" / "result.json").is_file()
    assert res.stat().st_mtime_ns == stamp
    # ... and with --out elsewhere repeats the experiment, overrides included: same numbers
    assert main(["run", str(first), "--runs", "2", "--out", str(tmp_path / "again"),
                 "--quiet"]) == 0
    again = list(csv.DictReader(open(tmp_path / "again" / "results.csv")))
    mine = [r for r in csv.DictReader(open(first / "results.csv")) if r["seed"] != "7"]
    assert again == mine
    # the resolved config is a valid experiment for the other commands too
    assert main(["schedule", str(first / "config.json")]) == 0
    assert "arm a:" in capsys.readouterr().out
    with pytest.raises(SharpenError, match="--profile and --axis apply to experiment files"):
        load_experiment(str(first), profile="smoke")


@pytest.mark.slow
def test_adding_an_arm_to_a_finished_directory_runs_only_the_new_arm(tiny, tmp_path):
    out = tmp_path / "r"
    run_experiment(load_experiment(str(tiny), profile="smoke", overrides=["select_arms='a'"]),
                   out, quiet=True)
    done = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/result.json")}
    assert {p.parent.parent.name for p in done} == {"a"}
    _, results = run_experiment(load_experiment(str(tiny), profile="smoke"), out, quiet=True)
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # a's runs were kept
    assert sorted((r["arm"], r["seed"]) for r in results) == [("a", 5), ("a", 6), ("b", 5),
                                                              ("b", 6)]
    # naming one arm again keeps the other's finished runs in the directory and its report
    _, results = run_experiment(load_experiment(str(tiny), profile="smoke",
                                                overrides=["select_arms='b'"]), out, quiet=True)
    assert {r["arm"] for r in results} == {"a", "b"}
    assert set(json.loads((out / "config.json").read_text())["arms"]) == {"a", "b"}
    assert "| a |" in (out / "report.md").read_text()


def test_grid_differs_from_run_and_list_v_shows_profiles(capsys):
    assert main(["grid", "quickstart", "--profile", "smoke"]) == 2
    assert "no grid to run; give --axis KEY=V1,V2,..." in capsys.readouterr().err
    assert main(["list", "experiments", "-v"]) == 0
    out = capsys.readouterr().out
    assert "pairs-sublenet  (paper 004; profiles: full, lr-grid, batch-grid, quick, smoke)" in out
    assert "vgg-cifar100  (paper 003; profiles: full, cpu, quick, smoke)" in out


@pytest.mark.parametrize("which", ["final", "best_val"])
@pytest.mark.slow
def test_saved_weights_load_with_one_call_and_give_the_recorded_accuracy(tiny, tmp_path, which):
    import sharpen
    from sharpen.data.prepare import build_data
    from sharpen.experiments import RunConfig

    out, _ = run_experiment(load_experiment(str(tiny), profile="smoke", overrides=[
        "epochs=3", f"save_weights='{which}'", "select_arms='a'"]), tmp_path / "w", quiet=True)
    seed_dir = out / "runs" / "a" / "seed-5"
    model = sharpen.load_model(str(seed_dir))
    rows = list(csv.DictReader(open(seed_dir / "metrics.csv")))
    epoch = len(rows) if which == "final" else max(
        range(1, len(rows) + 1), key=lambda e: (float(rows[e - 1]["val_acc"]), -e))
    saved = torch.load(seed_dir / "weights.pt", weights_only=True)
    assert saved["epoch"] == epoch and saved["which"] == which
    cfg = RunConfig.model_validate(json.loads((out / "config.json").read_text())["arms"]["a"])
    data = build_data(cfg, torch.device("cpu"))
    mean = torch.tensor(data.mean).view(1, -1, 1, 1) * 255
    std = torch.tensor(data.std).view(1, -1, 1, 1) * 255
    with torch.no_grad():
        acc = (model((data.test.x.float() - mean) / std).argmax(1) == data.test.y).double().mean()
    assert float(acc) == pytest.approx(float(rows[epoch - 1]["test_acc"]), abs=1e-9)
    with pytest.raises(SharpenError, match="no saved weights"):
        sharpen.load_model(str(out / "runs" / "a" / "seed-6" / ".."))


def test_progress_counts_epochs_from_the_run_directory_and_estimates_time_left(tmp_path):
    from sharpen.experiments.progress import PROGRESS, Progress, Watch, eta
    from sharpen.io import atomic_write_csv

    a, b = tmp_path / "a", tmp_path / "b"
    atomic_write_csv(a / "metrics.csv", [{"epoch": e, "seconds": 2.0} for e in (1, 2, 3)],
                     ["epoch", "seconds"])
    (a / PROGRESS).write_text("3.5\n")  # half of epoch 4 done
    jobs = [Watch("a", (0, 1), a, 10), Watch("b", (0,), b, 5)]  # b has not started
    s = Progress(jobs, enabled=False, workers=1).snapshot(elapsed=7.0)
    assert (s["done"], s["total"]) == (3.5, 15)
    # a: 6.5 epochs left at 2 s; b: 5 at the pace seen so far (2 s): one worker does both
    assert s["eta"] == pytest.approx(6.5 * 2 + 5 * 2)
    assert [(w.label, d, left) for w, d, left in s["running"]] == [("a · seeds 0–1", 3.5, 13.0)]
    # two workers share them: a's own 13 s bound the ETA
    assert Progress(jobs, enabled=False, workers=2).snapshot(7.0)["eta"] == pytest.approx(13.0)
    (a / PROGRESS).write_text("9.9\n")  # a stale file from an earlier epoch count is ignored
    assert Progress(jobs, enabled=False).snapshot(7.0)["done"] == 3
    assert eta(5.0, 0, 10) is None
    assert Watch("x", (5,), a, 1).label == "x · seed 5"
    assert Watch("x", (0, 2), a, 1).label == "x · seeds 0,2"
    p = Progress(jobs, enabled=False)
    with p:  # off: nothing starts, nothing is printed
        assert p._thread is None


@pytest.mark.slow
def test_tensorboard_and_mlflow_read_back_what_metrics_csv_holds(tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = run_experiment(load_experiment(str(tiny), profile="smoke", overrides=["epochs=2"]),
                            tmp_path / "t", quiet=True, log=["tensorboard", "mlflow"])
    csvs = {(p.parent.parent.name, int(p.parent.name[5:])): list(csv.DictReader(open(p)))
            for p in out.glob("runs/*/seed-*/metrics.csv")}
    assert len(csvs) == 4
    for (arm, seed), rows in csvs.items():  # TensorBoard's own reader
        acc = EventAccumulator(str(out / "tensorboard" / arm / f"seed-{seed}"))
        acc.Reload()
        for tag, col in (("train_loss", "train_loss"), ("test_acc", "test_acc"), ("lr", "lr")):
            got = [(e.step, e.value) for e in acc.Scalars(tag)]
            assert got == [(int(r["epoch"]), pytest.approx(float(r[col]), rel=1e-6))
                           for r in rows], (arm, seed, tag)
    client = MlflowClient(tracking_uri=f"sqlite:///{out.resolve()}/mlflow.db")
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id])
    by = {(r.data.tags["arm"], int(r.data.tags["seed"])): r for r in runs if "arm" in r.data.tags}
    assert set(by) == set(csvs)
    for key, rows in csvs.items():
        hist = client.get_metric_history(by[key].info.run_id, "test_acc")
        assert sorted((m.step, m.value) for m in hist) == [
            (int(r["epoch"]), pytest.approx(float(r["test_acc"]))) for r in rows]
        assert by[key].data.params["batch_size"] == "50" if key[0] == "a" else True
    report = next(r for r in runs if r.info.run_name == "report")
    names = {a.path for a in client.list_artifacts(report.info.run_id)}
    assert {"report.md", "results.csv", "config.json"} <= names
    assert (out / "mlflow-artifacts").is_dir() and not (Path.cwd() / "mlruns").exists()


@pytest.mark.slow
def test_mlflow_prints_no_info_lines_into_the_output(tiny, tmp_path):
    """--log mlflow printed "2026/.. INFO mlflow.store.db.utils: Creating initial MLflow
    database tables..." and "Updating database tables" among sharpen's own lines."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    r = subprocess.run([sys.executable, "-m", "sharpen.cli", "run", str(tiny), "--profile",
                        "smoke", "--runs", "1", "--arms", "a", "--workers", "1", "--log",
                        "mlflow", "--out", str(tmp_path / "m")],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    both = r.stdout + r.stderr
    assert "tracking: mlflow ui --backend-store-uri sqlite:///" in both
    assert not re.search(r"\bINFO\b", both), both
    assert (tmp_path / "m" / "mlflow.db").is_file()  # the tracker did run


def test_every_command_line_option_has_help():
    from sharpen.cli import build_parser

    p = build_parser()
    sub = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [(name, a.dest) for name, sp in sub.choices.items() for a in sp._actions
               if not a.help and a.dest != "help"]
    assert missing == []


def test_every_help_text_is_plain_words_without_rst_markup(capsys):
    """`sharpen --help` printed the module docstring, rst backticks and all (and a help
    with a bare % made argparse raise instead of printing)."""
    from sharpen.cli import build_parser

    p = build_parser()
    sub = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, text in [("sharpen", p.format_help())] + [
            (n, sp.format_help()) for n, sp in sub.choices.items()]:
        for markup in ("``", ":func:", ":class:", ":mod:", ":meth:", "`"):
            assert markup not in text, (name, markup)
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "run, report and compare experiments" in capsys.readouterr().out


@pytest.mark.slow
def test_a_directory_made_before_a_key_existed_still_resumes(tiny, tmp_path):
    exp = load_experiment(str(tiny), profile="smoke")
    out, _ = run_experiment(exp, tmp_path / "r", quiet=True)
    cfg = json.loads((out / "config.json").read_text())
    for arm in cfg["arms"].values():  # as written by a sharpen without these keys
        for k in ("mixup_alpha", "ema_decay", "warmup"):
            del arm[k]
    (out / "config.json").write_text(json.dumps(cfg))
    _, results = run_experiment(load_experiment(str(tiny), profile="smoke"), out, quiet=True)
    assert len(results) == 4
    with pytest.raises(SharpenError, match=r"arms.a.mixup_alpha: 0.0 → 0.2"):  # not a default
        run_experiment(load_experiment(str(tiny), profile="smoke",
                                       overrides=["mixup_alpha=0.2"]), out, quiet=True)
