"""tools/check_trainer.py's comparison: a changed number is a difference, a timing or a new
plan column is not."""
import importlib.util
import json
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "check_trainer", Path(__file__).parents[1] / "tools" / "check_trainer.py")
check_trainer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_trainer)


def _run(d: Path, result: dict, metrics: str) -> Path:
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps(result))
    (d / "metrics.csv").write_text(metrics)
    return d


RESULT = {"test_acc": 0.92, "best_epoch": 2, "seconds": 4.5, "images_per_s": 900.0,
          "plan": {"group": [0, 1], "stack": 2, "threads": 1}}
METRICS = "epoch,train_loss,test_acc,seconds,images_per_s\n1,0.5,0.9,1.0,10\n2,0.4,0.92,1.1,11\n"


def test_identical_runs_differ_only_in_timing(tmp_path):
    a = _run(tmp_path / "a", RESULT, METRICS)
    b = _run(tmp_path / "b", {**RESULT, "seconds": 9.0, "images_per_s": 1.0},
             METRICS.replace("1.0,10", "3.0,30").replace("1.1,11", "2.2,22"))
    assert check_trainer.compare_run(a, b) == ([], [])


def test_a_changed_number_anywhere_is_a_difference(tmp_path):
    a = _run(tmp_path / "a", RESULT, METRICS)
    b = _run(tmp_path / "b", {**RESULT, "test_acc": 0.921}, METRICS)
    assert check_trainer.compare_run(a, b) == (["result.json test_acc: 0.92 -> 0.921"], [])
    c = _run(tmp_path / "c", RESULT, METRICS.replace("2,0.4,", "2,0.41,"))
    assert check_trainer.compare_run(a, c) == (["metrics.csv row 2: train_loss differ"], [])
    d = _run(tmp_path / "d", {**RESULT, "plan": {"group": [0], "stack": 1, "threads": 1}},
             METRICS)
    assert check_trainer.compare_run(a, d)[0][0].startswith("result.json plan:")
    e = _run(tmp_path / "e", RESULT, "".join(METRICS.splitlines(keepends=True)[:2]))  # 1 epoch
    assert check_trainer.compare_run(a, e) == (["metrics.csv: 2 rows -> 1"], [])


def test_a_new_plan_column_is_listed_not_counted_and_a_missing_run_is(tmp_path):
    a = _run(tmp_path / "a", RESULT, METRICS)
    lines = METRICS.splitlines()
    wider = "\n".join([lines[0] + ",ema_decay"] + [x + ",0.99" for x in lines[1:]]) + "\n"
    b = _run(tmp_path / "b", RESULT, wider)
    assert check_trainer.compare_run(a, b) == ([], ["metrics.csv ema_decay: new"])
    assert check_trainer.compare_run(b, a) == ([], ["metrics.csv ema_decay: gone"])
    assert check_trainer.compare_run(tmp_path / "nowhere", a)[0] == [
        f"{tmp_path / 'nowhere'} has no result.json"]
