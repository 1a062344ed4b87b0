"""Break each promise of docs/invariants.md on purpose and check that its test fails.

Every promise a module docstring or ``docs/`` makes about behaviour is listed in
``docs/invariants.md`` with the test that checks it. A test is only trusted once it has been
seen to fail with the promise broken, so each promise here carries one planted break: an
exact piece of source and what replaces it. For each promise this script copies the
repository (source and tests, not ``.git`` or ``.venv``) into a scratch folder, plants the
break there, runs the promise's tests against that copy (``PYTHONPATH`` puts the copy's
``src`` first, for subprocesses too) and expects them to fail; then it runs them once on the
unbroken copy and expects them to pass.

    python tools/break_promises.py              # every promise
    python tools/break_promises.py P03 P07      # some
    python tools/break_promises.py --list       # the table, nothing run

Writes ``docs/results/invariants-check.json``: per promise, the break, the tests, and whether
they failed broken and passed whole. Exit status 1 when any break went unnoticed, an anchor
is no longer in the source (the promise's entry must be updated), or a test fails unbroken.
Not part of CI (minutes); ``tests/test_invariants.py`` checks that every promise of the
document has an entry here and that every anchor is still in the source.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "invariants-check.json"


@dataclass(frozen=True)
class Break:
    """One promise, the source change that breaks it, and the tests that must notice."""

    promise: str
    file: str  # under src/sharpen
    old: str  # exact text, found exactly once
    new: str
    tests: tuple[str, ...]


PROMISES: dict[str, Break] = {}


def promise(pid: str, text: str, file: str, old: str, new: str, *tests: str) -> None:
    if pid in PROMISES:
        raise ValueError(f"promise {pid} listed twice")
    PROMISES[pid] = Break(text, file, old, new, tuple(tests))


# --- random streams ------------------------------------------------------------------------------
promise("P01", "Random streams are independent of each other: each name draws its own numbers",
        "training/streams.py", 'f"{int(seed)}/{name}"', 'f"{int(seed)}"',
        "tests/test_invariants.py::test_every_stream_of_a_seed_draws_its_own_numbers_from_the"
        "_documented_hash")
promise("P02", "A seed draws the same numbers alone or stacked (its streams follow its seed, "
        "not its place in the stack)",
        "training/loop.py", "[streams.generator(s, name, dev) for s in self.seeds]",
        "[streams.generator(i, name, dev) for i, _ in enumerate(self.seeds)]",
        "tests/test_stacking.py::test_each_stacked_seed_equals_its_separate_run")

# --- files ---------------------------------------------------------------------------------------
promise("P03", "Every file is either its old complete version or its new one (a failed write "
        "keeps the old file)",
        "io.py", "        os.replace(tmp, path)\n",
        "        os.replace(tmp, path)\n        path.write_bytes(data[: len(data) // 2])\n",
        "tests/test_faults.py::test_read_only_or_full_filesystem_gives_clear_error_and_keeps_old_file",
        "tests/test_faults.py::test_sigkill_at_random_moments_leaves_only_complete_files")
promise("P04", "A run whose result.json or metrics.csv cannot be read is a run to redo",
        "rundir.py", 'return SeedRun(arm, seed, d, "corrupt", {}, why)',
        'return SeedRun(arm, seed, d, "ok", {}, why)',
        "tests/test_runner.py::test_a_corrupt_result_is_said_on_stderr_and_trained_again")

# --- training ------------------------------------------------------------------------------------
promise("P05", "Each stacked seed gets its own gradient: the stacked loss is the sum of the "
        "seeds' mean losses",
        "training/loop.py", "loss.sum().backward()", "loss.mean().backward()",
        "tests/test_stacking.py::test_each_stacked_seed_equals_its_separate_run")
promise("P06", "A resumed run continues with the same numbers as an uninterrupted one",
        "training/loop.py", "    run.opt.load_state_dict(ckpt.optimizer)\n", "",
        "tests/test_training.py::test_resume_from_a_checkpoint_gives_the_uninterrupted_numbers",
        "tests/test_loop.py::test_a_checkpoint_resumes_to_the_uninterrupted_numbers_even_without"
        "_its_seed_list")
promise("P07", "A seed whose loss becomes NaN stops recording and the seeds stacked with it go "
        "on", "training/loop.py", "            if E == 1:\n",
        "            if True:\n",
        "tests/test_loop.py::test_a_diverging_seed_stops_recording_while_the_next_goes_on",
        "tests/test_stacking.py::test_one_diverging_seed_does_not_stop_the_others")

# --- plan, backends, twins -----------------------------------------------------------------------
promise("P08", "--workers and --backend decide only where groups run: each job sets the "
        "plan's thread count, so results.csv is byte-identical serially, in processes and on "
        "Ray", "experiments/backends.py", "    torch.set_num_threads(job.threads)\n",
        "    torch.set_num_threads(job.threads + (__import__('multiprocessing')"
        ".parent_process() is not None))\n",
        "tests/test_stacking.py::test_results_csv_is_byte_identical_serially_in_processes_and_on"
        "_ray")
promise("P09", "A twin copy equals a training: a group is copied only from a twin that "
        "trained the very same seeds", "experiments/twins.py",
        '"seeds": list(seeds), ', "",
        "tests/test_twins.py::test_twin_key_ignores_only_the_inert_keys_and_names_the_group_and"
        "_its_training")
promise("P10", "A second sharpen process on the same run directory is refused",
        "io.py", "            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n",
        "            pass\n",
        "tests/test_faults.py::test_second_process_on_the_same_run_directory_is_refused")
promise("P11", "A changed configuration is refused on resume, naming each difference",
        "experiments/runner.py",
        "            if old[a].get(k, defaults.get(k)) != new[a].get(k, defaults.get(k)):\n",
        "            if False:\n",
        "tests/test_runner.py::test_a_changed_configuration_is_refused_with_its_differences")

# --- reports -------------------------------------------------------------------------------------
promise("P12", "Runs are paired by seed only within one protocol",
        "reports/claims.py", "return pa is None or pb is None or pa == pb", "return True",
        "tests/test_claims_units.py::test_pairing_follows_the_protocols_and_the_shared_seeds",
        "tests/test_claims_units.py::test_directional_rows_say_what_was_computed")
promise("P16", "`sharpen compare` pairs rows by seed only when both ran the same protocol",
        "reports/compare.py", "same = pa is None or pb is None or pa == pb", "same = True",
        "tests/test_verdicts.py::test_two_folders_of_different_protocol_are_not_paired")
promise("P13", "The claims of a report are one family: Holm's adjustment keeps its "
        "family-wise error at 5 %", "reports/stats.py",
        "min(1.0, (m - k) * float(pvals[i]))", "min(1.0, float(pvals[i]))",
        "tests/test_verdicts.py::test_a_report_of_8_true_null_claims_keeps_its_family_wise_error_at"
        "_5_percent")

# --- the run directory's identity (issue 32, items 1, 2 and 7) ----------------------------------
promise("P17", "Arms keep the experiment file's order everywhere; the file's first arm is the "
        "default baseline", "rundir.py",
        "        return ordered_arms(arms, list(cfg[\"arm_order\"]), cells, grid), ARM_ORDER_RECORDED",
        "        return sorted(arms), ARM_ORDER_RECORDED",
        "tests/test_directory_identity.py::test_the_files_first_arm_is_the_baseline_everywhere")
promise("P18", "Another experiment run into an existing directory is refused and the directory "
        "left untouched", "experiments/runner.py", "    if other:\n        raise SharpenError(",
        "    if False:\n        raise SharpenError(",
        "tests/test_directory_identity.py::test_a_different_experiment_into_a_directory_is_refused")
promise("P19", "A trainer key is never inert: arms that differ in one are never twins, whatever a "
        "plugin declares", "experiments/twins.py", "    return off - used - TRAINER_KEYS",
        "    return off - used",
        "tests/test_twins.py::test_arms_of_different_batch_sizes_are_never_twins_whatever_a_plugin"
        "_declares")

# --- a seed's numbers whatever trains beside it (issue 32, item 8) -----------------------------
promise("P25", "A seed's files (metrics.csv, predictions.npz, result.json but its timings and "
        "group) are the same alone, in stacks of 2, 5 and 10, in a grown directory and with "
        "fewer --arms (evaluation chunks do not follow the stack)", "training/loop.py",
        "    chunk = max(1, batch_size // EVAL_SEEDS)\n", "    chunk = max(1, batch_size // E)\n",
        "tests/test_stack_identity.py::test_a_seed_gives_the_same_files_alone_stacked_grown_and_with"
        "_fewer_arms")
promise("P26", "Each stacked seed's optimizer step is its own run's: the optimizer steps each "
        "seed's slice, never the stacked tensor whole", "training/loop.py",
        "    return SeedOptimizer(params, model.seeds, make)\n", "    return make(params)\n",
        "tests/test_loop.py::test_each_seed_is_stepped_as_its_own_run_whatever_its_stack")

promise("P27", "Only --until-decided adds seeds to a directory holding a sequential design: a "
        "plain run past the seeds its looks ran is refused, the directory unchanged",
        "reports/sequential.py",
        "    if not extra:  # the seeds the looks judged: resuming or re-reporting them is fine",
        "    if True:",
        "tests/test_sequential.py::test_a_plain_run_cannot_grow_a_sequential_design_past_its_looks")
promise("P29", "In a directory grown by --until-decided the claims' verdicts (report and "
        "summary.json) are the design's decisions; one it left undecided is not supported",
        "reports/claims.py", "    take_decisions(rows, sequential)\n", "    pass\n",
        "tests/test_sequential.py::test_a_claims_verdict_in_a_sequential_directory_is_the_"
        "designs_decision")
promise("P30", "A sequential design binds its seeds, not only their number: a plain run with "
        "another `seed` is refused like one with more runs",
        "reports/sequential.py",
        "    extra = sorted(set(exp.seeds) - set(range(first, first + ran)))",
        "    extra = sorted(s for s in exp.seeds if s - exp.seed >= ran)",
        "tests/test_sequential_bound.py::test_a_design_binds_its_seeds_not_only_how_many")
promise("P31", "A sequential design starts only in a directory that holds no finished run, and "
        "one refused at its first look leaves no record", "experiments/sequential.py",
        "    if record is None and seen:", "    if False:",
        "tests/test_sequential_bound.py::test_a_design_starts_only_where_no_result_was_seen")
promise("P32", "A best/worst claim without `than` counts the file's arms that --arms left out as "
        "rivals (untested without their runs)", "reports/claims.py",
        "*runs.values, *runs.unrun])", "*runs.values])",
        "tests/test_sequential_bound.py::test_best_without_than_counts_the_files_arms_that_did_"
        "not_run")
promise("P33", "An arm the experiment file no longer has (renamed or deleted) is refused, not "
        "kept in the directory as a rival", "experiments/runner.py",
        "        refuse_dropped_arms(out, old, resolved, exp.source)\n",
        "        pass\n",
        "tests/test_directory_identity.py::test_an_arm_renamed_in_the_file_is_refused_not_kept_as"
        "_a_rival")
promise("P28", "An arm that sets a key no enabled part of its training reads is warned about "
        "(it would train, or be copied, as the plain arm); a grid's axis on its baseline is not",
        "experiments/runner.py",
        "idle_warnings(exp.arms) + unused_key_warnings(exp.arms, exp.cells)",
        "idle_warnings(exp.arms) + unused_key_warnings(exp.arms, {})",
        "tests/test_twins.py::test_a_key_no_enabled_technique_reads_is_warned_but_a_grids_axis_is"
        "_not")

# --- sequential designs (issue 32, items 4 and 5) ----------------------------------------------
promise("P20", "A sequential look is judged only at the threshold of the n it reached: seeds "
        "that did not finish never buy a looser threshold", "experiments/sequential.py",
        "thr = plan.nominal[k] if r.n >= n else plan.threshold_reached(r.n)",
        "thr = plan.nominal[k]",
        "tests/test_sequential.py::test_a_look_whose_new_seeds_fail_is_not_judged_at_its_looser"
        "_threshold")
promise("P21", "A sequential design binds every claim's definition: an edited claim, step or "
        "budget is refused, naming the field", "experiments/sequential.py",
        "refuse_changes(out / SEQUENTIAL, bound, wanted)", "pass",
        "tests/test_sequential.py::test_a_claim_edited_between_invocations_is_refused_naming_the"
        "_field")
promise("P22", "In a grid's cell a best/worst claim without `than` is judged among that cell's "
        "arms only, by `sharpen report` and `--until-decided` alike", "reports/claim_map.py",
        'than = [a for a in arms if a != claim["arm"]]',
        'return {**claim, "arm": arms[claim["arm"]]}',
        "tests/test_grid_claims.py::test_report_judges_best_and_worst_among_the_cells_own_arms",
        "tests/test_grid_claims.py::test_until_decided_judges_best_among_the_cells_own_arms_as_"
        "the_report_does")
promise("P23", "Every claim an experiment file accepts means what it says: each op x (than, "
        "value, tolerance) has a meaning or is refused at load, naming the field",
        "experiments/config/validation.py", "        _check_claim_shape(c, where)\n", "",
        "tests/test_claim_shapes.py::test_every_op_than_value_tolerance_combination_is_meant_or"
        "_refused",
        "tests/test_claim_shapes.py::test_sharpen_run_refuses_a_claim_shape_without_a_meaning")
promise("P24", "A best/worst claim's rivals include every other arm, run or not: a rival "
        "without usable runs leaves the claim untested, naming it", "reports/claims.py",
        "known = dict.fromkeys([*runs.protocol, *runs.status, *runs.values, *runs.unrun])",
        "known = dict.fromkeys(runs.values)",
        "tests/test_claim_shapes.py::test_a_best_claim_whose_rival_never_finished_is_untested"
        "_naming_it")

# --- techniques ----------------------------------------------------------------------------------
promise("P14", "A technique's hook applies exactly the plan it records and `sharpen schedule` "
        "prints (randomized deblurring: the planned σ)", "techniques/deblur.py",
        'self._sigma, self._p = values["sigma"], values["blur_p"]',
        'self._sigma, self._p = values["sigma"] * 1.5, values["blur_p"]',
        "tests/test_behaviour.py::test_randomized_deblur_blurs_exactly_the_drawn_batches_with_that"
        "_epochs_sigma")
promise("P15", "A technique's hook applies exactly the plan it records (progressive "
        "sharpening: the planned blur width)", "techniques/sharpening.py",
        '        n = values["blur_n"]\n', '        n = values["blur_n"] + 2\n',
        "tests/test_curricula.py::test_staged_sharpening_trains_on_the_blurred_copy_then_the"
        "_original")


def _copy_tree(dst: Path) -> None:
    skip = {".git", ".venv", "runs", ".mutate", "__pycache__", ".pytest_cache", ".ruff_cache"}
    for item in ROOT.iterdir():
        if item.name in skip:
            continue
        if item.is_dir():
            shutil.copytree(item, dst / item.name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(item, dst / item.name)


def _pytest(copy: Path, tests: tuple[str, ...]) -> tuple[bool, str]:
    env = dict(os.environ, PYTHONPATH=str(copy / "src"))
    env.setdefault("SHARPEN_TEST_DATA", str(ROOT.parent / "shared" / "data"))
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        *tests], cwd=copy, env=env, capture_output=True, text=True)
    tail = (p.stdout + p.stderr).strip().splitlines()[-1:] or [""]
    return p.returncode == 0, tail[0]


def anchor_problem(b: Break, root: Path = ROOT) -> str | None:
    """Why the break cannot be planted (its anchor is missing or ambiguous), else None."""
    path = root / "src" / "sharpen" / b.file
    if not path.is_file():
        return f"{b.file} does not exist"
    n = path.read_text().count(b.old)
    return None if n == 1 else f"{b.file}: the anchor occurs {n} times (must be exactly once)"


def check(pid: str, b: Break) -> dict:
    out = {"id": pid, **asdict(b), "anchor": anchor_problem(b)}
    if out["anchor"]:
        return out
    with tempfile.TemporaryDirectory(prefix=f"promise-{pid}-") as tmp:
        copy = Path(tmp)
        _copy_tree(copy)
        t0 = time.perf_counter()
        out["passes_whole"], out["whole_tail"] = _pytest(copy, b.tests)
        path = copy / "src" / "sharpen" / b.file
        path.write_text(path.read_text().replace(b.old, b.new))
        passed, out["broken_tail"] = _pytest(copy, b.tests)
        out["fails_broken"] = not passed
        out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ids", nargs="*", help="promise ids (default: all)")
    ap.add_argument("--list", action="store_true", help="print the promises and stop")
    args = ap.parse_args(argv)
    unknown = [i for i in args.ids if i not in PROMISES]
    if unknown:
        ap.error(f"unknown promise id(s) {unknown}; known: {', '.join(PROMISES)}")
    ids = args.ids or list(PROMISES)
    if args.list:
        for pid in ids:
            print(f"{pid}  {PROMISES[pid].promise}")
        return 0
    previous = {r["id"]: r for r in json.loads(OUT.read_text())["promises"]} if OUT.exists() \
        else {}
    bad = 0
    for pid in ids:
        r = check(pid, PROMISES[pid])
        ok = not r["anchor"] and r.get("passes_whole") and r.get("fails_broken")
        bad += not ok
        print(f"{pid} {'ok ' if ok else 'BAD'} {r.get('seconds', '-')} s  "
              f"{r['anchor'] or ('whole: ' + r['whole_tail'] + ' | broken: ' + r['broken_tail'])}",
              flush=True)
        previous[pid] = r
    OUT.write_text(json.dumps({"promises": [previous[k] for k in PROMISES if k in previous]},
                              indent=2) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
