"""A newcomer's first hour: what a short run, a pipe or a typo shows them."""

from __future__ import annotations

import pytest

from sharpen.experiments import load_experiment, run_experiment
from sharpen.techniques import idle_warnings


def test_a_curriculum_squeezed_into_one_epoch_is_reported_as_doing_nothing(tmp_path, capsys):
    exp = load_experiment("sharpening-mnist", "smoke", [
        "dataset=synthetic", "epochs=1", 'arms.sharpening.blur_n={kind="linear", start=5, end=1}'])
    lines = idle_warnings(exp.arms)
    assert any(ln.startswith("arm 'sharpening': sharpening does nothing in this run: its plan "
                             "has blur_n = 1 in every one of its 1 epoch(s)") for ln in lines)
    run_experiment(exp, tmp_path / "r", quiet=True)
    err = capsys.readouterr().err
    assert err.count("sharpen: warning: arm 'sharpening': sharpening does nothing") == 1
    # the same schedule over 5 epochs acts: no warning
    longer = load_experiment("sharpening-mnist", "smoke", [
        "dataset=synthetic", "epochs=5", 'arms.sharpening.blur_n={kind="linear", start=5, end=1}'])
    assert not [ln for ln in idle_warnings(longer.arms) if "'sharpening'" in ln]


@pytest.mark.parametrize("key,value", [("flip_p", '{kind="step", start=0.0, delta=0.5, every=3}'),
                                       ("label_smoothing", "0.0"),
                                       ("crop_pad", "4"), ("blur_sigma", "0.0")])
def test_other_techniques_scheduled_to_nothing_are_named(key, value):
    sets = ["dataset=synthetic", "epochs=2", f"{key}={value}"]
    if key == "crop_pad":
        sets.append("crop_p=0.0")
    exp = load_experiment("quickstart", "smoke", sets)
    lines = idle_warnings(exp.arms)
    if key in ("crop_pad", "blur_sigma", "flip_p"):
        assert lines and all("does nothing in this run" in ln for ln in lines), lines
    else:  # label_smoothing = 0 is off: nothing to warn about
        assert lines == []


@pytest.mark.slow
def test_trackers_log_each_epoch_while_the_run_goes_and_print_the_viewer(tmp_path):
    import subprocess
    import sys
    import time
    from pathlib import Path

    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "r"
    sharpen = Path(sys.executable).with_name("sharpen")
    proc = subprocess.Popen([str(sharpen), "run", "quickstart", "--profile", "quick", "--set",
                             "epochs=8", "--workers", "1", "--log", "tensorboard", "--out",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen_live = 0
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < 300:
        tb = out / "tensorboard" / "lenet5" / "seed-0"
        done = (out / "runs" / "lenet5" / "seed-0" / "result.json").exists()
        if tb.is_dir() and not done:
            acc = EventAccumulator(str(tb))
            acc.Reload()
            if "test_acc" in acc.Tags().get("scalars", []):
                seen_live = max(seen_live, len(acc.Scalars("test_acc")))
        time.sleep(0.3)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    # epochs reached TensorBoard before the run's result existed: logged live
    assert 1 <= seen_live < 8
    assert f"tracking: tensorboard --logdir {out / 'tensorboard'}" in stdout
    final = EventAccumulator(str(out / "tensorboard" / "lenet5" / "seed-0"))
    final.Reload()
    assert [e.step for e in final.Scalars("test_acc")] == list(range(1, 9))  # each epoch once


def test_a_failed_data_load_leaves_no_half_made_run_directory(tmp_path):
    from sharpen import SharpenError

    exp = load_experiment("quickstart", "smoke", ["dataset=fashion-mnist",
                                                  f"data_dir={tmp_path / 'nothing'}"])
    out = tmp_path / "r"
    with pytest.raises(SharpenError, match="not found"):
        run_experiment(exp, out, quiet=True)
    assert not out.exists()


def test_an_interrupted_invocation_is_marked_in_history(tmp_path, monkeypatch):
    import json
    from dataclasses import replace

    from sharpen.experiments import backends

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    exp = load_experiment("quickstart", "smoke", ["dataset=synthetic"])
    monkeypatch.setitem(backends.BACKENDS, "local", replace(backends.BACKENDS["local"], run=stop))
    with pytest.raises(KeyboardInterrupt):
        run_experiment(exp, tmp_path / "r", quiet=True)
    (entry,) = json.loads((tmp_path / "r" / "history.json").read_text())
    assert entry["stopped"] == "interrupted" and entry["ended"] and "wall_s" not in entry
    monkeypatch.undo()
    run_experiment(exp, tmp_path / "r", quiet=True)  # it resumes; the new entry finishes
    first, second = json.loads((tmp_path / "r" / "history.json").read_text())
    assert first["stopped"] == "interrupted" and "stopped" not in second and second["wall_s"] >= 0


def test_bench_train_checks_its_targets_file_before_measuring(tmp_path, monkeypatch, capsys):
    from sharpen.bench import train as bench
    from sharpen.cli import main

    measured = []
    monkeypatch.setattr(bench, "load", lambda *a, **k: measured.append(a) or (_ for _ in ()).throw(
        AssertionError("measuring started")))
    assert main(["bench", "train", "--targets", str(tmp_path / "none.toml"), "--out",
                 str(tmp_path / "b")]) == 2
    assert "--targets" in capsys.readouterr().err and measured == []
    bad = tmp_path / "t.toml"
    bad.write_text("ten_seed_wall = { at_most = 0.4 }\n")
    assert main(["bench", "train", "--targets", str(bad), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "target 'ten_seed_wall' names no measured value" in err and measured == []
    bad.write_text("single_run_ratio = 2.0\n")
    assert main(["bench", "train", "--targets", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "must be { at_least = number }" in capsys.readouterr().err
    # the repository's own file is valid
    from pathlib import Path

    assert bench.read_targets(Path(__file__).parents[1] / "benchmarks" / "train-targets.toml")


def test_an_interrupted_benchmark_does_not_promise_to_resume(monkeypatch, capsys):
    import sharpen.bench
    from sharpen.cli import main

    def stop(*a, **k):
        raise KeyboardInterrupt  # Ctrl-C, or SIGTERM from `timeout` (sharpen.console)

    monkeypatch.setattr(sharpen.bench, "run_train_bench", stop)
    with pytest.raises(KeyboardInterrupt):  # in-process: the caller (pytest) stops as well
        main(["bench", "train"])
    err = capsys.readouterr().err
    assert "does not resume" in err and "to resume" not in err


def test_curves_show_test_accuracy_in_percent_with_clipped_light_bands_and_an_outside_legend(
        tmp_path, monkeypatch):
    from sharpen.io import atomic_write_csv
    from sharpen.reports import curves

    figs = []
    monkeypatch.setattr(curves, "save_figure", lambda fig, path: figs.append(fig) or path)

    def rundir(n_seeds: int) -> dict:
        per_arm = {}
        for arm, base in (("a", 0.95), ("b", 0.97)):
            runs = []
            for s in range(n_seeds):  # accuracies near 1 with seed noise: a t band would pass 100 %
                rows = [{"epoch": e, "test_acc": min(1.0, base + 0.01 * e / 5 + 0.02 * (s % 2)),
                         "val_acc": base, "gap": 0.01 * s, "train_loss": 0.5 / e} for e in (1, 2, 3)]
                atomic_write_csv(tmp_path / arm / f"{s}.csv", rows, list(rows[0]))
                runs.append([{k: str(v) for k, v in r.items()} for r in rows])
            per_arm[arm] = runs
        return per_arm

    curves.plot_curves(tmp_path, ["a", "b"], per_arm=rundir(2))
    fig = figs[-1]
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("test accuracy") and any(t.startswith("validation") for t in titles)
    acc = fig.axes[0]
    assert acc.get_ylabel() == "test accuracy (%)"
    lo, hi = acc.get_ylim()
    assert 0 <= lo and hi <= 100  # percent, and not stretched past 100 by the bands
    line_max = max(max(line.get_ydata()) for line in acc.get_lines())
    assert 90 < line_max <= 100  # in %, not fractions
    for coll in acc.collections:  # bands: light at n = 2 and inside 0–100
        assert coll.get_alpha() <= 0.1
        ys = [v[1] for path in coll.get_paths() for v in path.vertices]
        assert max(ys) <= 100 and min(ys) >= 0
    assert not any(ax.get_legend() for ax in fig.axes) and fig.legends  # one legend, outside
    curves.plot_curves(tmp_path, ["a", "b"], per_arm=rundir(6))
    assert all(c.get_alpha() >= 0.2 for c in figs[-1].axes[0].collections)  # n ≥ 5: full bands


def test_a_gap_band_stays_inside_its_range(tmp_path, monkeypatch):
    """A % metric's band is cut to the metric's range, the gap's (−100 to 100 %) too: two
    seeds with gaps of −99 % and −30 % gave a t band down to −500 %."""
    from sharpen.reports import curves

    figs = []
    monkeypatch.setattr(curves, "save_figure", lambda fig, path: figs.append(fig) or path)
    runs = [[{"epoch": str(e), "gap": str(g), "test_acc": "0.5"} for e in (1, 2)]
            for g in (-0.99, -0.30)]
    curves.plot_curves(tmp_path, ["a"], keys=("gap",), per_arm={"a": runs})
    ys = [v[1] for c in figs[-1].axes[0].collections for p in c.get_paths() for v in p.vertices]
    assert min(ys) == pytest.approx(-100) and max(ys) <= 100
