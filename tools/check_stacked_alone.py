"""Does a stacked seed now give what that seed gives alone, and what the old code gave it
alone? (Issue 32, item 8: a seed's numbers must not depend on what trains beside it.)

For each quick reproduction folder, one arm is trained three ways on this machine:
stacked with the code checked out now, alone with it, and alone with an older commit
(``--old``: a checkout's ``src``, e.g. ``git worktree add /tmp/old b042a11``). Every
run's result.json and metrics.csv are compared field by field (timing and the plan's
grouping left out). The answer goes to docs/results/stacked-alone-check.json.

    python tools/check_stacked_alone.py --old /tmp/old/src
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sharpen.io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
SKIP = {"seconds", "images_per_s", "plan", "stacked_seeds", "deterministic"}
# folder -> (the `sharpen run` arguments of one arm, its seeds stacked together)
CASES = {
    "pairs-sublenet-quick": (["pairs-sublenet", "--profile", "quick", "--arms",
                              "sub_lenet5_ws_al_adaptive"], 3),
    "pairs-direct-shres-quick": (["pairs-direct-shres", "--profile", "quick", "--arms",
                                  "shres_alws_asym"], 2),
}


def _run(args: list[str], stack: int, out: Path, src: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(src)}
    exe = Path(sys.executable).with_name("sharpen")
    subprocess.run([str(exe), "run", *args, "--set", f"stack_seeds={stack}", "--no-verify",
                    "--threads", "1", "--out", str(out), "--quiet"], env=env, check=True,
                   capture_output=True)


def differences(a: Path, b: Path) -> dict[str, list[str]]:
    """Per run of ``b``: the result.json keys and metrics.csv rows that differ from ``a``."""
    out: dict[str, list[str]] = {}
    for res in sorted(b.glob("runs/*/*/result.json")):
        rel = res.parent.relative_to(b)
        ra, rb = (json.loads((d / rel / "result.json").read_text()) for d in (a, b))
        bad = [f"result.json {k}" for k in sorted(set(ra) | set(rb))
               if k not in SKIP and ra.get(k) != rb.get(k)]
        rows = [list(csv.DictReader((d / rel / "metrics.csv").open())) for d in (a, b)]
        bad += [f"metrics.csv row {i + 1}" for i, (x, y) in enumerate(zip(*rows))
                if {k: v for k, v in x.items() if k not in SKIP}
                != {k: v for k, v in y.items() if k not in SKIP}]
        if len(rows[0]) != len(rows[1]):
            bad.append("metrics.csv rows")
        if bad:
            out[str(rel)] = bad
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="an older checkout's src folder")
    ap.add_argument("--record", type=Path, default=ROOT / "docs" / "results" /
                    "stacked-alone-check.json")
    a = ap.parse_args()
    new_src = ROOT / "src"
    old_commit = subprocess.run(["git", "-C", str(a.old), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    checks = []
    with tempfile.TemporaryDirectory(prefix="sharpen-alone-") as tmp:
        for name, (args, stack) in CASES.items():
            d = Path(tmp) / name
            _run(args, stack, d / "stacked", new_src)
            _run(args, 1, d / "alone", new_src)
            _run(args, 1, d / "old-alone", a.old)
            _run(args, stack, d / "old-stacked", a.old)
            c = {"folder": name, "command": "sharpen run " + " ".join(args), "stack": stack,
                 "stacked_vs_alone": differences(d / "alone", d / "stacked"),
                 "stacked_vs_old_alone": differences(d / "old-alone", d / "stacked"),
                 "old_stacked_vs_old_alone": differences(d / "old-alone", d / "old-stacked"),
                 "runs": len(list((d / "stacked").glob("runs/*/*/result.json")))}
            checks.append(c)
            print(f"{name}: {c['runs']} runs; stacked vs alone: "
                  f"{len(c['stacked_vs_alone'])} differ; vs {old_commit} alone: "
                  f"{len(c['stacked_vs_old_alone'])} differ; {old_commit} stacked vs alone: "
                  f"{len(c['old_stacked_vs_old_alone'])} differ", flush=True)
    atomic_write_json(a.record, {"checked_by": commit, "old": old_commit, "checks": checks,
                                 "machine": _machine()})
    return 0 if all(not c["stacked_vs_alone"] and not c["stacked_vs_old_alone"]
                    for c in checks) else 1


def _machine() -> str:
    try:
        name = next(line.split(":", 1)[1].strip() for line in
                    Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line)
    except (OSError, StopIteration):
        name = "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


if __name__ == "__main__":
    raise SystemExit(main())
