"""The metric registry (sharpen.metrics.REGISTRY) is the only definition of a run's numbers:
one throwaway entry reaches result.json, results.csv, the report's table and `sharpen
compare` with no other change; without one, the run record keeps the layout it has always
had (the literal lists below are the files' columns as written before the registry owned
them); and no list of metric names is left in src/ outside the registry."""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path

import pytest

from sharpen import metrics
from sharpen.cli import main
from sharpen.experiments import load_experiment, run_experiment
from sharpen.metrics import Metric, Shown

SMALL = """
name = "small"
runs = 2
seed = 5
dataset = "synthetic"
train_size = 100
val_size = 20
test_size = 40
model = "lenet5_dropout"
epochs = 3
batch_size = 50
optimizer = "adam"
lr = 0.003
threads = 1
stack_seeds = 1

[arms.a]

[arms.b]
lr = 0.001
"""

# the files' columns before the registry owned them (results.csv, metrics.csv, table.csv)
RESULTS_CSV = ["arm", "seed", "status", "test_acc", "best_test_acc", "best_epoch", "train_acc",
               "val_acc", "gap", "train_loss", "test_loss", "digit_acc", "epochs_done", "params",
               "stacked_seeds", "error"]
METRICS_CSV = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
               "test_acc", "gap", "lr", "seconds", "images_per_s"]
TABLE_CSV = ["arm", "n", "ok", "diverged", "failed", "test_acc_n", "test_acc_mean",
             "test_acc_std", "test_acc_ci_low", "test_acc_ci_high", "test_acc_best",
             "test_acc_worst", "selected_test_acc_mean", "selected_test_acc_ci_low",
             "selected_test_acc_ci_high", "best_epoch_acc_mean", "best_epoch_acc_std",
             "val_acc_mean", "train_acc_mean", "digit_acc_mean", "gap_mean", "gap_ci_low",
             "gap_ci_high", "seconds_mean", "params"]
RESULT_JSON_NUMBERS = {"test_acc", "best_test_acc", "best_epoch", "train_acc", "val_acc", "gap",
                       "train_loss", "test_loss", "digit_acc", "images_per_s"}

# a throwaway metric from what the loop already measures: training accuracy averaged over
# the epochs, stored in every result and shown last in the report's table
THROWAWAY = Metric("mean_train_acc", "mean training accuracy", "%", True, "mean", "train_acc",
                   selected_on="all epochs", stored="results",
                   table=Shown(("mean",), 1000, "mean train acc %", 1000))


@pytest.fixture(autouse=True)
def no_curves(monkeypatch):
    from sharpen.reports import report

    monkeypatch.setattr(report, "plot_curves", lambda *a, **k: None)


def _run(tmp_path: Path) -> Path:
    p = tmp_path / "small.toml"
    p.write_text(SMALL)
    out, _ = run_experiment(load_experiment(str(p)), tmp_path / "r", workers=1, quiet=True)
    return out


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_new_registry_entry_reaches_every_file_table_and_compare(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(metrics.REGISTRY, THROWAWAY.name, THROWAWAY)
    out = _run(tmp_path)
    per_arm: dict[str, list[float]] = {}
    results = {(r["arm"], r["seed"]): r for r in _read(out / "results.csv")}
    for arm in ("a", "b"):
        for seed in (5, 6):
            d = out / "runs" / arm / f"seed-{seed}"
            rows = _read(d / "metrics.csv")
            assert len(rows) == 3
            want = sum(float(r["train_acc"]) for r in rows) / len(rows)  # by hand
            res = json.loads((d / "result.json").read_text())
            assert res["mean_train_acc"] == pytest.approx(want, abs=1e-12)
            assert float(results[(arm, str(seed))]["mean_train_acc"]) == res["mean_train_acc"]
            per_arm.setdefault(arm, []).append(want)
    with open(out / "results.csv") as f:  # a stored metric's column: after the others
        assert next(csv.reader(f)) == RESULTS_CSV[:12] + ["mean_train_acc"] + RESULTS_CSV[12:]

    # the report's table: its own column, last, each arm's mean over seeds in %
    lines = (out / "report.md").read_text().splitlines()
    head = next(ln for ln in lines if ln.startswith("| arm | runs (ok/div/fail)"))
    assert head.endswith("| params | mean train acc % |")
    for arm, xs in per_arm.items():
        row = next(ln for ln in lines if ln.startswith(f"| {arm} | 2 (2/0/0)"))
        assert row.endswith(f" | {100 * sum(xs) / len(xs):.2f} |")
    table = {r["arm"]: r for r in _read(out / "table.csv")}
    assert float(table["a"]["mean_train_acc_mean"]) == pytest.approx(sum(per_arm["a"]) / 2)

    # sharpen compare: the metric by name, its description and each arm's mean
    capsys.readouterr()
    assert main(["compare", str(out), "--metric", "mean_train_acc"]) in (0, None)
    text = capsys.readouterr().out
    assert "Metric: mean training accuracy (mean_train_acc, mean over the epochs)." in text
    for arm, xs in per_arm.items():
        assert f"| {arm} | 2 | {100 * sum(xs) / len(xs):.2f} % |" in text


def test_without_a_new_entry_the_run_record_keeps_its_layout(tmp_path):
    from sharpen.reports.tables import table_columns

    assert metrics.result_columns() == RESULTS_CSV
    assert metrics.epoch_columns() == METRICS_CSV
    assert table_columns() == TABLE_CSV
    out = _run(tmp_path)
    with open(out / "results.csv") as f:
        assert next(csv.reader(f)) == RESULTS_CSV
    with open(out / "table.csv") as f:
        assert next(csv.reader(f)) == TABLE_CSV
    d = out / "runs" / "a" / "seed-5"
    with open(d / "metrics.csv") as f:
        assert next(csv.reader(f)) == METRICS_CSV
    res = json.loads((d / "result.json").read_text())
    bookkeeping = {"arm", "seed", "status", "error", "seconds", "params", "epochs_done",
                   "stacked_seeds", "deterministic", "plan"}
    assert set(res) - bookkeeping == RESULT_JSON_NUMBERS  # digit_acc: null, as before


def test_the_stored_numbers_are_the_ones_written_by_hand_and_read_back():
    """result.json's numbers against the loop rows computed by hand (the old summary: last
    epoch, earliest best test epoch, mean images/s; None where a row lacks a value), and
    the reports' reading of metrics.csv gives the same."""
    rows = [{"epoch": 1, "train_loss": 0.9, "train_acc": 0.5, "test_loss": 1.0, "test_acc": 0.6,
             "gap": -0.1, "images_per_s": 100.0},
            {"epoch": 2, "train_loss": 0.7, "train_acc": 0.7, "test_loss": 0.8, "test_acc": 0.8,
             "gap": -0.1, "images_per_s": 300.0},
            {"epoch": 3, "train_loss": 0.5, "train_acc": 0.9, "test_loss": 0.9, "test_acc": 0.8,
             "gap": 0.1, "images_per_s": 200.0}]
    rec = metrics.run_record(rows)
    assert rec == {"test_acc": 0.8, "best_test_acc": 0.8, "best_epoch": 2, "train_acc": 0.9,
                   "val_acc": None, "gap": 0.1, "train_loss": 0.5, "test_loss": 0.9,
                   "digit_acc": None, "images_per_s": 200.0}
    assert metrics.run_record([]) == {}
    from sharpen.reports.claims import values_of_run

    as_csv = [{k: repr(v) for k, v in r.items()} for r in rows]
    read = values_of_run(as_csv, {"seconds": 4.0})
    assert {k: read[k] for k in rec if rec[k] is not None and k != "best_epoch"} == \
        {k: v for k, v in rec.items() if v is not None and k != "best_epoch"}
    assert read["test_error"] == pytest.approx(0.2) and read["seconds"] == 4.0


def _name_lists(tree: ast.AST, names: set[str]) -> list[int]:
    """Lines of list/tuple/set literals of strings naming two or more metrics."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            strs = {e.value for e in node.elts if isinstance(e, ast.Constant)
                    and isinstance(e.value, str)}
            if len(strs & names) >= 2:
                out.append(node.lineno)
    return out


def test_no_list_of_metric_names_is_left_outside_the_registry():
    from sharpen.reports.tables import table_columns

    names = set(metrics.REGISTRY) | {m.column for m in metrics.REGISTRY.values()} | set(
        metrics.result_columns()) | set(metrics.epoch_columns()) | set(table_columns())
    # words other lists use too
    names -= {"arm", "seed", "status", "error", "epoch", "lr", "n", "ok", "diverged", "failed"}
    src = Path(metrics.__file__).parent
    found = {str(p.relative_to(src)): lines for p in sorted(src.rglob("*.py"))
             if p.name != "metrics.py"
             and (lines := _name_lists(ast.parse(p.read_text()), names))}
    assert found == {}, f"lists of metric names outside sharpen/metrics.py: {found}"


@pytest.mark.parametrize("kw, message", [
    ({"stored": "result"}, "x: stored 'result' is not one of '', 'run', 'results'"),
    ({"source": "best"}, "x: source 'best' is not one of"),
    ({"curve": "yes"}, "x: curve 'yes' is not one of '', 'always', 'any'"),
    ({"table": Shown(("mean",), 1)}, None),
])
def test_a_misspelt_choice_in_an_entry_is_refused_not_silently_dropped(kw, message):
    entry = {"name": "x", "label": "x", "unit": "%", "higher_is_better": True, "source": "final",
             "column": "x", **kw}
    if message is None:
        assert Metric(**entry).table == kw["table"]
        return
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        Metric(**entry)


def test_a_misspelt_table_choice_is_refused():
    with pytest.raises(ValueError, match=r"^Shown.when 'alway' is not one of 'always', 'any', "
                                         r"'keep_best'$"):
        Shown(("mean",), 1, when="alway")
    with pytest.raises(ValueError, match=r"^Shown.stats 'sd' is not one of 'n', 'mean', 'std'"):
        Shown(("mean", "sd"), 1)
    with pytest.raises(ValueError, match=r"^Shown.cell 'ci' is not one of"):
        Shown(("mean",), 1, cell="ci")
