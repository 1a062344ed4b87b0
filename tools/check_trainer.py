"""Does the current trainer still make the numbers in docs/results/?

For each reproduction folder, re-run one arm (or one grid cell) with the code checked out
now, into a scratch folder, and compare every run's result.json, metrics.csv and
gradflow.csv with the stored ones, field by field. Timing fields (seconds, images_per_s)
are expected to differ and are left out; everything else — each epoch's losses and
accuracies, the best epoch, the plan — must be identical, bit for bit as printed. A plan
column that only one of the two has (a technique that now also reports its setting) is
listed, not counted as a difference. The arm chosen is the one the folder's headline claim
leans on. Threads are fixed to 1 and the stack size to the recorded one: the plan every
folder recorded.

    python tools/check_trainer.py --data /tmp/data [--only NAME ...]

Float results depend on the CPU's kernels, so a folder made on another CPU model cannot be
matched bit for bit here. For those, make a reference on this machine with the code before
a change (``--keep DIR``, run with that code on PYTHONPATH), then check the code after the
change against it (``--reference DIR``): the same question — does the change move a
number? — asked on one machine.

--data is a folder holding mnist/ (the files the folders were made from), fashion-mnist/
and cifar10/ (extracted CIFAR-10 python batches). The answer, with the commit it checked
and the wall time of each re-run, goes to docs/results/trainer-check.json and a table on
stdout; the exit status is 1 if any run differs.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sharpen.io import atomic_write_json
from sharpen.metrics import timing_keys

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
TIMING = timing_keys()  # seconds, images_per_s

# folder -> the `sharpen run` arguments that re-make one of its arms ({data} is --data)
CHECKS: dict[str, list[str]] = {
    "pairs-sublenet-full": ["pairs-sublenet", "--profile", "full", "--set",
                            "data_dir={data}/mnist", "--arms", "sub_lenet5_ws_al"],
    "pairs-sublenet-lr-grid": ["pairs-sublenet", "--profile", "lr-grid", "--set",
                               "data_dir={data}/mnist", "--arms", "sub_lenet5_ws",
                               "--axis", "lr=0.01"],
    "pairs-sublenet-batch-grid": ["pairs-sublenet", "--profile", "batch-grid", "--set",
                                  "data_dir={data}/mnist", "--arms", "sub_lenet5",
                                  "--axis", "batch_size=1000"],
    "pairs-sublenet-quick": ["pairs-sublenet", "--profile", "quick", "--arms",
                             "sub_lenet5_ws_al_adaptive"],
    "pairs-direct-shres-full": ["pairs-direct-shres", "--profile", "full", "--set",
                                "data_dir={data}/mnist", "--arms", "shres_alws_asym"],
    "pairs-direct-shres-quick": ["pairs-direct-shres", "--profile", "quick", "--arms",
                                 "shres_alws_asym"],
    "sharpening-mnist-10seeds": ["sharpening-mnist", "--profile", "full", "--runs", "10", "--set",
                                 "data_dir={data}/mnist", "--set", "val_size=500",
                                 "--arms", "sharpening"],
    "techniques-cifar10-quick": ["techniques-cifar10", "--profile", "quick", "--set",
                                 "data_dir={data}/cifar10", "--arms", "deblur"],
    "vgg-cifar100-quick": ["vgg-cifar100", "--profile", "quick", "--runs", "3", "--set",
                           "data_dir={data}/cifar10", "--arms", "vgg38"],
    "vgg-cifar10-cpu": ["vgg-cifar100", "--profile", "cpu", "--set", "data_dir={data}/cifar10",
                        "--arms", "vgg08"],
}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def compare_run(stored: Path, fresh: Path) -> tuple[list[str], list[str]]:
    """(every difference in a number, every column only one of the two has) between two run
    folders, timing fields left out: a plan column a newer technique reports is not a
    different result, a changed loss is."""
    diffs, columns = [], []
    if not (stored / "result.json").is_file():
        return [f"{stored} has no result.json"], []
    a = json.loads((stored / "result.json").read_text())
    b = json.loads((fresh / "result.json").read_text())
    for k in sorted(set(a) | set(b)):
        if k in TIMING:
            continue
        if k not in a:  # a field the run now also records (deterministic mode): not a number
            columns.append(f"result.json {k}: new")
        elif a.get(k) != b.get(k):
            diffs.append(f"result.json {k}: {a.get(k)!r} -> {b.get(k)!r}")
    for name in ("metrics.csv", "gradflow.csv"):
        if not (stored / name).exists() and not (fresh / name).exists():
            continue
        if not (stored / name).exists() or not (fresh / name).exists():
            diffs.append(f"{name}: only in one of the two")
            continue
        ra, rb = _rows(stored / name), _rows(fresh / name)
        if len(ra) != len(rb):
            diffs.append(f"{name}: {len(ra)} rows -> {len(rb)}")
            continue
        ka, kb = set(ra[0]) if ra else set(), set(rb[0]) if rb else set()
        columns += [f"{name} {c}: {'new' if c in kb else 'gone'}" for c in sorted(ka ^ kb)]
        for i, (x, y) in enumerate(zip(ra, rb)):
            bad = [c for c in sorted(ka & kb) if x[c] != y[c]]
            if bad:
                diffs.append(f"{name} row {i + 1}: {', '.join(bad)} differ")
    return diffs, columns


def check(name: str, args: list[str], data: str, scratch: Path,
          reference: Path | None = None) -> dict[str, object]:
    out = scratch / name
    ref = (reference or RESULTS) / name
    # the same seeds train together as when the folder was made: `auto` would stack
    # differently for one arm than for all of them, which changes float rounding
    arm = args[args.index("--arms") + 1]
    runs = RESULTS / name / "runs"
    stored = next(p for pattern in (f"{arm}/*/result.json", f"{arm}__*/*/result.json")
                  for p in sorted(runs.glob(pattern)))  # the arm, or one of its grid cells
    stack = json.loads(stored.read_text())["plan"]["stack"]
    cmd = ["sharpen", "run", *[a.format(data=data) for a in args], "--set",
           f"stack_seeds={stack}", "--no-verify", "--threads", "1", "--out", str(out), "--quiet"]
    t0 = time.perf_counter()
    exe = shutil.which("sharpen") or str(Path(sys.executable).with_name("sharpen"))
    proc = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"folder": name, "command": " ".join(cmd[:-3]), "error": proc.stderr[-2000:],
                "runs_compared": 0, "runs_identical": 0, "differences": {}}
    fresh_runs = sorted(p.parent for p in (out / "runs").glob("*/*/result.json"))
    diffs: dict[str, list[str]] = {}
    columns: set[str] = set()
    for run in fresh_runs:
        rel = run.relative_to(out)
        d, cols = compare_run(ref / rel, run)
        columns.update(cols)
        if d:
            diffs[str(rel)] = d
    made = sorted({i["commit"][:7] for i in json.loads((RESULTS / name / "history.json")
                                                       .read_text())})
    now = json.loads((out / "history.json").read_text())[-1]
    if reference is not None:  # made by the reference run, on this machine
        made = sorted({i["commit"][:7] for i in json.loads((ref / "history.json").read_text())})
    return {"folder": name, "made_by": made, "checked_by": now["commit"][:7],
            "reference": "stored folder" if reference is None else "the same command at "
            f"{','.join(made)} on this machine",
            "dirty": now["dirty"], "machine": now["machine"], "command": " ".join(cmd[:-3]),
            "runs_compared": len(fresh_runs), "runs_identical": len(fresh_runs) - len(diffs),
            "differences": diffs, "columns": sorted(columns), "wall_s": round(wall, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder with mnist/ and cifar10/")
    ap.add_argument("--only", nargs="*", default=None, choices=sorted(CHECKS),
                    help="folders to check (default all)")
    ap.add_argument("--keep", type=Path, help="keep the fresh folders here (a reference)")
    ap.add_argument("--reference", type=Path,
                    help="compare with the folders --keep wrote, not with docs/results")
    ap.add_argument("--record", type=Path, default=None,
                    help="the JSON to write (default docs/results/trainer-check.json)")
    a = ap.parse_args()
    names = a.only or list(CHECKS)
    path = a.record or RESULTS / "trainer-check.json"
    old = json.loads(path.read_text()) if path.exists() and a.only else {"checks": []}
    scratch = Path(tempfile.mkdtemp(prefix="sharpen-check-"))
    ok = True
    try:
        for name in names:
            c = check(name, CHECKS[name], str(Path(a.data).resolve()), scratch, a.reference)
            if a.keep:
                a.keep.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(a.keep / name, ignore_errors=True)
                shutil.move(str(scratch / name), a.keep / name)
            shutil.rmtree(scratch / name, ignore_errors=True)
            if "error" in c:
                print(f"{name}: {c['command']} failed:\n{c['error']}", file=sys.stderr)
            else:
                print(f"{name:28s} made by {','.join(c['made_by']):17s} "  # type: ignore[arg-type]
                      f"{c['runs_identical']}/{c['runs_compared']} runs identical "
                      f"({c['wall_s']} s)" + "".join(f"; {x}" for x in c["columns"]), flush=True)
            ok = ok and "error" not in c and not c["differences"]
            # written after each folder, so that a stopped check keeps what it found
            old["checks"] = sorted([x for x in old["checks"] if x["folder"] != name] + [c],
                                   key=lambda x: x["folder"])
            atomic_write_json(path, old)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
