"""`make mutate`: mutation testing of the core modules, each against its own tests.

mutmut (a dev dependency) changes one thing at a time in a module (an operator, a constant,
an argument) and runs the tests that reach the changed function; a change no test notices
"survives". Each module runs in its own scratch copy under ``.mutate/<module>/`` with only
its own test files selected, which keeps a module's run to minutes instead of running the
whole suite for every mutant (and makes the score conservative: tests outside the list may
kill more). Results are cached there, so a second run only re-checks what changed.

    python tools/mutate.py                      # every module below
    python tools/mutate.py training/schedules.py  # one module
    python tools/mutate.py --recheck data/pairs.py  # survivors again, after new tests
    python tools/mutate.py --list                 # the table

Writes ``.mutate/summary.json`` (counts per module) and, per module,
``.mutate/<module>/survivors.txt`` (each surviving mutant's diff), the material for
docs/mutation.md. Not part of CI: too slow for it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).with_name("mutmut")

_NO_TRAINING = [f"--deselect=tests/test_verdicts.py::{t}" for t in (
    "test_a_rerun_trains_a_corrupt_run_again",
    "test_predictions_are_stored_and_reproduce_the_recorded_accuracy")] + [
    "--deselect=tests/test_stats.py::test_every_folder_in_docs_results_rebuilds_byte_for_byte"]

# module (under src/sharpen) -> the test files that exercise it directly
MODULES: dict[str, list[str]] = {
    "imageops.py": ["tests/test_curricula.py", "tests/test_behaviour.py"],
    "techniques/deblur.py": ["tests/test_curricula.py", "tests/test_behaviour.py"],
    "techniques/sharpening.py": ["tests/test_curricula.py", "tests/test_behaviour.py"],
    "techniques/resizing.py": ["tests/test_curricula.py", "tests/test_behaviour.py"],
    "techniques/dropout.py": ["tests/test_curricula.py", "tests/test_behaviour.py"],
    "techniques/erasing.py": ["tests/test_behaviour.py", "tests/test_vgg.py"],
    "training/schedules.py": ["tests/test_schedules.py", "tests/test_menu.py",
                              "tests/test_curricula.py"],
    "training/tasks.py": ["tests/test_tasks.py", "tests/test_training.py", "tests/test_pairs.py",
                          "tests/test_menu.py"],
    "training/loop.py": ["tests/test_loop.py", "tests/test_training.py",
                         "tests/test_behaviour.py", "tests/test_menu.py",
                         "tests/test_checkpoint.py"],
    "training/checkpoint.py": ["tests/test_checkpoint.py", "tests/test_training.py",
                               "tests/test_loop.py"],
    "data/formats.py": ["tests/test_formats.py", "tests/test_data.py", "tests/test_behaviour.py",
                        *(f"tests/test_faults.py::{t}" for t in (
                            "test_truncated_gz_names_file", "test_wrong_magic_names_file",
                            "test_count_mismatch_and_wrong_dims",
                            "test_malicious_pickle_is_refused_and_nothing_runs",
                            "test_tar_extraction_refuses_unsafe_paths",
                            "test_tar_extraction_refuses_links",
                            "test_corrupt_cifar_batch_and_wrong_layout"))],
    "data/pairs.py": ["tests/test_pairs.py"],
    # the statistics: every test of a statistic; not the ones that train (minutes per mutant)
    "reports/stats.py": ["tests/test_verdicts.py", "tests/test_stats.py", *_NO_TRAINING],
    "reports/claims.py": ["tests/test_verdicts.py", "tests/test_stats.py",
                          "tests/test_claims_units.py", *_NO_TRAINING],
    # the claim operators and the verdict values
    "verdicts.py": ["tests/test_claim_ops.py", "tests/test_claims_units.py",
                    "tests/test_equivalence_beyond.py::"
                    "test_sequential_contradicts_on_the_doubled_p_at_the_whole_threshold",
                    "tests/test_claim_shapes.py::"
                    "test_every_op_than_value_tolerance_combination_is_meant_or_refused",
                    "tests/test_claim_shapes.py::test_sharpen_run_refuses_a_claim_shape_without_"
                    "a_meaning"],
    # the runner's own tests are small runs; the end-to-end ones (subprocesses, kills, Ray,
    # MLflow) take minutes per mutant, and MLflow or a process pool inside mutmut's forked
    # test process can deadlock on a lock held at the fork
    "experiments/runner.py": ["tests/test_runner.py"],
    # twin runs: the rules on hand-written folders, and a copy against a real training
    "experiments/twins.py": ["tests/test_twins.py"],
    # what an invocation runs, on folders built by hand (no training)
    "experiments/schedule.py": ["tests/test_schedule.py"],
}
COPY = ["src", "tests", "docs", "README.md", "benchmarks", "pyproject.toml"]
STATUSES = ("killed", "survived", "timeout", "no tests", "suspicious", "skipped", "segfault",
            "not checked", "caught by type check")


def _config(module: str, tests: list[str], timeout_multiplier: float) -> str:
    lines = [
        "[tool.mutmut]",
        'source_paths = ["src/sharpen"]',
        f'only_mutate = ["src/sharpen/{module}"]',
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        'also_copy = ["src/sharpen/data/sample", "src/sharpen/experiments/bundled", "docs", '
        '"README.md", "benchmarks"]',
        'pytest_add_cli_args = ["-x", "-q", "-p", "no:cacheprovider"]',
        f"timeout_multiplier = {timeout_multiplier}",
    ]
    return "\n".join(lines) + "\n"


def _sync(work: Path) -> None:
    """Copy the current sources and tests into the scratch copy (mutmut's cache stays)."""
    work.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src, dst = ROOT / name, work / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pt"))
        elif src.exists():
            shutil.copy2(src, dst)


def _survivors(work: Path, env: dict[str, str]) -> list[str]:
    out = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=work, env=env,
                         capture_output=True, text=True, check=False).stdout
    return [ln.strip().rpartition(": ")[0] for ln in out.splitlines()
            if ln.strip().endswith((": survived", ": no tests"))]


def _mutmut_run(work: Path, env: dict[str, str], children: int, names: list[str]) -> None:
    """``mutmut run``; if it fails (its clean test run failed, say) stop and show why, rather
    than report the cached verdicts as if the mutants had been checked again."""
    r = subprocess.run([str(MUTMUT), "run", "--max-children", str(children), *names], cwd=work,
                       env=env, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).replace("\r", "\n").splitlines()[-20:])
        raise SystemExit(f"mutmut run failed in {work} (exit {r.returncode}):\n{tail}")


def run_module(module: str, children: int, timeout_multiplier: float,
               recheck: bool = False) -> dict[str, int]:
    work = ROOT / ".mutate" / module.replace("/", "_").removesuffix(".py")
    _sync(work)
    text = (work / "pyproject.toml").read_text()
    text = re.sub(r"\[tool\.mutmut\].*?(?=\n\[|\Z)", "", text, flags=re.S).rstrip() + "\n\n"
    (work / "pyproject.toml").write_text(text + _config(module, MODULES[module],
                                                         timeout_multiplier))
    # one thread per test process: mutmut limits a mutant by CPU seconds, and a multi-threaded
    # test spends several per wall second (false timeouts); --children fills the cores
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    # mutmut keeps a cached verdict; survivors are tried again only when named (after new tests)
    again = _survivors(work, env) if recheck and (work / "mutants").exists() else []
    _mutmut_run(work, env, children, again)
    if again:  # then whatever the named run left unchecked
        _mutmut_run(work, env, children, [])
    out = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=work, env=env,
                         capture_output=True, text=True, check=False).stdout
    counts = dict.fromkeys(STATUSES, 0)
    survivors = []
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if status in counts:
            counts[status] += 1
            if status == "survived":
                survivors.append(name)
    diffs = []
    for name in survivors:
        show = subprocess.run([str(MUTMUT), "show", name], cwd=work, env=env,
                              capture_output=True, text=True, check=False).stdout
        diffs.append("\n".join(ln for ln in show.splitlines()  # the name and the changed lines
                               if ln.startswith(("# ", "@@", "-", "+"))
                               and not ln.startswith(("---", "+++"))))
    (work / "survivors.txt").write_text("\n\n".join(diffs) + "\n")
    return counts


def score(c: dict[str, int]) -> float | None:
    """Killed (timeouts count as detected) over every mutant checked; a mutant that no
    selected test reaches counts as alive."""
    tested = (c["killed"] + c["timeout"] + c["survived"] + c["no tests"] + c["suspicious"]
              + c["segfault"])
    return None if not tested else (c["killed"] + c["timeout"] + c["segfault"]) / tested


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help="modules under src/sharpen (default: all)")
    ap.add_argument("--list", action="store_true", help="print the module table and exit")
    ap.add_argument("--children", type=int, default=os.cpu_count() or 2,
                    help="parallel mutants (default: the cores)")
    ap.add_argument("--table", action="store_true",
                    help="print the last results as docs/mutation.md's table and exit")
    ap.add_argument("--recheck", action="store_true",
                    help="try the cached survivors (and mutants no test reached) again, after adding tests")
    ap.add_argument("--timeout-multiplier", type=float, default=10.0,
                    help="a mutant is timed out at this multiple of its tests' clean time")
    args = ap.parse_args(argv)
    if args.list:
        for m, t in MODULES.items():
            print(f"{m}: {' '.join(t)}")
        return 0
    summary_path = ROOT / ".mutate" / "summary.json"
    if args.table:  # the markdown table of docs/mutation.md, from the last runs
        summary = json.loads(summary_path.read_text())
        print("| module | mutants | killed | timeout | survived | no tests | score |")
        print("|---|---|---|---|---|---|---|")
        for m in MODULES:
            if m in summary:
                c = summary[m]
                total = sum(c[k] for k in STATUSES)
                pct = "n/a" if c["score"] is None else f"{100 * c['score']:.1f} %"
                print(f"| `{m}` | {total} | {c['killed']} | {c['timeout']} | {c['survived']} | "
                      f"{c['no tests']} | {pct} |")
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        ap.error(f"unknown module(s) {unknown}; known: {', '.join(MODULES)}")
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for m in args.modules or list(MODULES):
        c = run_module(m, args.children, args.timeout_multiplier, args.recheck)
        s = score(c)
        summary[m] = {**c, "score": s}
        summary_path.parent.mkdir(exist_ok=True)
        summary_path.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        pct = "n/a" if s is None else f"{100 * s:.1f} %"
        print(f"{m}: {pct} ({c['killed']} killed, {c['timeout']} timeout, {c['survived']} survived, "
              f"{c['no tests']} without tests)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
