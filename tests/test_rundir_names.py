"""Every file name of a run directory is spelt in ``sharpen/rundir.py`` alone (issue 33): no
other source file under src/ holds one as a string, so renaming or adding a file is one
line there. The names come from ``sharpen.rundir.FILE_NAMES`` itself, so a name added to it
is covered at once. Comments and docstrings may name files (they describe; they neither
write nor read one); tests may spell them too (they check the bytes on disk).

A technique's own files (``run_files``, ``data_figure``) are the technique's: it owns them
as it owns its keys (CONTRIBUTING), so they are not RunDir's; they may only take no name of
RunDir's."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sharpen import rundir
from sharpen.techniques import TECHNIQUES

SRC = Path(__file__).parents[1] / "src" / "sharpen"
# a benchmark's folder is no run directory: it has its own layout (benchmark.json,
# measurements.csv) and writes it in its own module; its report.md shares only the name
ALLOWED = {"bench/conv.py": {rundir.REPORT, rundir.SUMMARY},
           "bench/gpu.py": {rundir.REPORT}, "bench/train.py": {rundir.REPORT},
           "bench/profile.py": {rundir.REPORT},
           # the calibration cache's own lock, beside calibration.json: no run directory's
           "experiments/calibration.py": {".lock"}}


def names() -> list[str]:
    """RunDir's file names; a name with {} (a seed, a number, a suffix) as given and, for
    the experiment file's copy, with each suffix it may take."""
    return [*rundir.FILE_NAMES,
            *(rundir.EXPERIMENT_COPY.format(x) for x in rundir.EXPERIMENT_SUFFIXES)]


def pattern(name: str) -> re.Pattern[str]:
    """``name`` as it may be spelt in source: its {} as an f-string field or a glob's *."""
    body = r"(?:\{[^}]*\}|\*)".join(re.escape(p) for p in name.split("{}"))
    return re.compile(r"(?<![\w.-])" + body + r"(?!\w)")


def strings(source: str) -> list[tuple[int, str]]:
    """(line, text as written) of every string of a module but its docstrings; an f-string
    whole, with its {fields}."""
    tree = ast.parse(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant):
            skip.add(id(node.body[0].value))
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
            for v in node.values:  # a format spec is a JoinedStr of its own
                if isinstance(v, ast.FormattedValue) and v.format_spec is not None:
                    skip.add(id(v.format_spec))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.JoinedStr):
            out.append((node.lineno, ast.get_source_segment(source, node) or ""))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
    return out


def spelt(source: str, allowed: set[str] = frozenset()) -> list[tuple[int, str]]:
    """(line, name) of every run-directory file name a module's strings spell."""
    pats = [(n, pattern(n)) for n in names() if n not in allowed]
    return sorted((line, n) for line, text in strings(source) for n, p in pats if p.search(text))


def test_no_source_file_but_rundir_spells_a_run_directory_file_name():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel == "rundir.py":
            continue
        found += [f"src/sharpen/{rel}:{line}: {n}"
                  for line, n in spelt(path.read_text(), ALLOWED.get(rel, set()))]
    assert not found, ("run-directory file names belong to sharpen/rundir.py (use its "
                       "constants and writers):\n" + "\n".join(found))


def test_the_check_sees_each_way_a_name_is_spelt():
    # the check itself, on planted source: a literal, a path join, an f-string field, a
    # glob, a name inside a message, and a number-taking name each count
    planted = '''
"""result.json in a docstring is a description."""
CKPT = "checkpoint.pt"
p = out / "metrics.csv"
q = out / f"seed-{seed}" / "x"
r = out.glob("runs/*/seed-*/weights.pt")
msg = f"{path}: cannot be read; is results.csv there?"
fig = run_dir / f"claim_map_{k}.png"
copy = out / "experiment.yaml"
def f():
    """report.md: a docstring."""
    return "a seed-major batch, gradflow.csv, config.jsonl, my.lock"  # no run-dir names
'''
    got = spelt(planted)
    assert got == [(3, "checkpoint.pt"), (4, "metrics.csv"), (5, "seed-{}"),
                   (6, "seed-{}"), (6, "weights.pt"), (7, "results.csv"),
                   (8, "claim_map_{}.png"), (9, "experiment.yaml")], got
    assert spelt(planted, {"metrics.csv"}) == [g for g in got if g[1] != "metrics.csv"]


def test_the_names_cover_every_file_a_stored_run_directory_holds():
    # every file name of the run directories kept in docs/results is RunDir's or a
    # technique's (spelt in its module): a file written under a name RunDir does not know
    # would escape the check
    results = Path(__file__).parents[1] / "docs" / "results"
    techs = "".join(p.read_text() for p in (SRC / "techniques").glob("*.py"))
    known = [re.compile(r"[\w.-]+".join(re.escape(p) for p in n.split("{}"))) for n in names()]
    seen = set()
    for cfg in results.glob("*/" + rundir.CONFIG):
        for f in cfg.parent.rglob("*"):
            # a figure's .pdf beside its .png, and a technique's data figure's images (.npz)
            # beside it (Technique.data_figure_npz)
            beside = f.suffix == ".pdf" or (f.suffix == ".npz" and f.with_suffix(".png").is_file())
            if f.is_file():
                seen.add(f.with_suffix(".png").name if beside else f.name)
    assert len(seen) > 10, "no run directory in docs/results"
    unknown = sorted(n for n in seen if f'"{n}"' not in techs
                     and not any(p.fullmatch(n) for p in known))
    assert not unknown, unknown


def test_a_technique_s_own_files_take_no_name_of_rundir():
    fixed = {n for n in names() if "{}" not in n}
    for t in TECHNIQUES:
        mine = {*t.run_files, *(t.data_figure or ())[:1]}
        assert not mine & fixed, f"{t.__name__}: {sorted(mine & fixed)} is a RunDir name"


def test_rundir_imports_only_the_bottom_floor():
    # the layout is read by every floor above it: rundir itself reads no experiment, report
    # or technique (renamed keys come from sharpen.renamed, beside it)
    tree = ast.parse((SRC / "rundir.py").read_text())
    imported = {n.module if isinstance(n, ast.ImportFrom) and n.module != "sharpen"
                else f"sharpen.{a.name}" if isinstance(n, ast.ImportFrom) else a.name
                for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)
                for a in n.names}
    ours = {m for m in imported if m.split(".")[0] == "sharpen"}
    assert ours <= {"sharpen.errors", "sharpen.io", "sharpen.renamed"}, sorted(ours)
