"""What a run prints in a terminal (issue 34 E): a compact table that fits 80 columns and
every claim's verdict on one line each, never report.md's 13-column table; `sharpen report`
prints that summary, not the whole file; the report's build is said, not a bar frozen at
100 %; `--until-decided` prints one line per look and per decision, never the earlier looks'
runs again. Checked in real pseudo-terminals (tmux, 80 and 120 columns) and in a pipe."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

SHARPEN = Path(sys.executable).with_name("sharpen")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

TINY = """
name = "tiny-term"
dataset = "synthetic"
train_size = 80
test_size = 60
epochs = 1
batch_size = 40
optimizer = "adam"
threads = 1
model = "lenet5_dropout"
runs = 3

[arms.slow]
lr = 0.0001

[arms.fast_with_a_longer_name]
lr = 0.005

[[claims]]
claim = "the fast arm beats the slow one, as the paper says it does at every width"
arm = "fast_with_a_longer_name"
op = ">"
than = "slow"

[[claims]]
claim = "the slow arm is above one per cent"
arm = "slow"
op = ">"
value = 0.01
"""

HEAD = re.compile(r"^arm +n +test acc % \[95 % CI\] +Δ vs slow$", re.M)


def _tmux(sock: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                          timeout=20).stdout


def _in_tmux(cmd: str, width: int, tmp: Path, name: str) -> tuple[list[str], str]:
    """Run ``cmd`` in a tmux pane ``width`` columns wide: the frames seen while it ran
    (every 0.2 s) and its whole output with wrapped lines joined (-J: a line longer than
    the pane comes back whole, so its length says it wrapped)."""
    sock = f"sharpen-term-{os.getpid()}-{name}"
    done = tmp / f"{name}.done"
    _tmux(sock, "new-session", "-d", "-s", "t", "-x", str(width), "-y", "50",
          f"cd {tmp}; OMP_NUM_THREADS=1 {cmd}; touch {done}; sleep 120")
    frames = []
    try:
        t0 = time.time()
        while not done.exists() and time.time() - t0 < 400:
            frames.append(_tmux(sock, "capture-pane", "-p", "-t", "t"))
            time.sleep(0.2)
        assert done.exists(), f"{cmd} did not finish"
        whole = _tmux(sock, "capture-pane", "-p", "-J", "-S", "-", "-t", "t")
    finally:
        _tmux(sock, "kill-server")
    return frames, whole


def _check_summary(text: str, out: Path, width: int | None) -> None:
    """The compact table's numbers against numpy/scipy on the runs' result.json, and one
    verdict per claim as summary.json has it; nothing wider than ``width``."""
    assert "| arm | runs (ok/div/fail)" not in text  # report.md's table stays in report.md
    assert HEAD.search(text), text
    acc = {a: [json.loads((out / "runs" / a / f"seed-{s}" / "result.json").read_text())
               ["test_acc"] for s in range(3)] for a in ("slow", "fast_with_a_longer_name")}
    for arm, xs in acc.items():
        m = np.mean(xs)
        lo, hi = st.t.interval(0.95, len(xs) - 1, loc=m, scale=st.sem(xs))
        lo, hi = max(lo, 0.0), min(hi, 1.0)
        diff = "(baseline)" if arm == "slow" else f"{100 * (m - np.mean(acc['slow'])):+.2f} pp"
        want = rf"^{arm} +3 +{100 * m:.2f} \[{100 * lo:.2f}, {100 * hi:.2f}\] +{re.escape(diff)}$"
        assert re.search(want, text, re.M), (want, text)
    claims = json.loads((out / "summary.json").read_text())["claims"]
    # a claim's line, wrapped on a terminal with a hanging indent of 4, read back whole
    logical = re.sub(r"\n {4}(?=\S)", " ", text).splitlines()
    for c in claims:
        line = next(ln for ln in logical if ln.startswith(f"  {c['verdict']}: {c['claim']} ("))
        assert c["estimate"] in line and "Holm p" in line, line
    if width is not None:
        # (a path is as long as it is: the lines naming the run directory aside)
        wide = [ln for ln in text.splitlines() if len(ln.rstrip()) > width and str(out) not in ln]
        assert not wide, text


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_run_and_its_report_fit_80_and_120_columns_and_end_with_the_verdicts(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    out = tmp_path / "r"
    frames, whole = _in_tmux(f"{SHARPEN} run tiny.toml --workers 1 --out {out}", 80, tmp_path,
                             "run")
    _check_summary(whole, out, 80)
    assert f"report: {out / 'report.md'}" in whole
    # the pause after the bar is said while it lasts, and erased after
    assert any("building the report…" in f for f in frames), frames[-5:]
    assert "building the report…" not in whole
    # `sharpen report` prints the summary, not report.md
    _, shown = _in_tmux(f"{SHARPEN} report {out}", 120, tmp_path, "report")
    _check_summary(shown, out, 120)
    assert "## Results" not in shown and "# tiny-term" not in shown
    # a pipe: the same summary, plain, each claim on one line however long
    r = subprocess.run([str(SHARPEN), "report", str(out)], capture_output=True, text=True,
                       env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    _check_summary(r.stdout, out, None)
    assert "\x1b[" not in r.stdout and "\r" not in r.stdout
    long = next(ln for ln in r.stdout.splitlines() if "as the paper says it does" in ln)
    assert len(long) > 80 and "Holm p" in long


def test_until_decided_prints_one_line_per_look_and_per_decision(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    out = tmp_path / "seq"
    r = subprocess.run([str(SHARPEN), "run", str(tmp_path / "tiny.toml"), "--until-decided", "--spend-anyway",
                        "--step", "2", "--max-runs", "6", "--spend-anyway", "--workers", "1",
                        "--out", str(out)],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout
    rec = json.loads((out / "sequential.json").read_text())["units"][""]
    looks = re.findall(r"^look (\d)/3 at n = (\d): (\d)/2 claims decided", text, re.M)
    assert [(int(k), int(n)) for k, n, _ in looks] == [(i + 1, lk["n"]) for i, lk in
                                                        enumerate(rec["looks"])], text
    assert len(looks) == len(re.findall(r"^look ", text, re.M))  # one line per look
    # one line per decision, at the look that took it
    said = re.findall(r"^  decided: '(.+)' (\w[\w ]*) at n = (\d+) \(p ", text, re.M)
    claims = json.loads((out / "config.json").read_text())["claims"]
    assert sorted(said) == sorted((claims[int(i)]["claim"], d["verdict"], str(d["n"]))
                                  for i, d in rec["decisions"].items())
    assert said, text  # the slow arm above 1 % is decided
    # nothing of the earlier looks again, no run numbers that jump, no bar in a pipe
    assert "finished earlier" not in text and not re.search(r"^\[\d+/\d+\]", text, re.M), text
    assert "running " not in text and "\x1b[" not in text
    assert "building the report…" in text
    assert HEAD.search(text) and "claims (" in text


def test_the_bar_at_100_percent_says_what_it_waits_for(tmp_path, capsys):
    """Every epoch done, the jobs still write their results and the report builds (8-20 s
    on 2 cores): the full bar says so instead of freezing. A pipe gets one line for the
    report's build, a look none (one line per look), --quiet nothing."""
    import io

    from sharpen.experiments import progress

    (tmp_path / "metrics.csv").write_text("epoch,test_acc,seconds\n1,0.5,1.0\n2,0.6,1.0\n")
    buf = io.StringIO()
    with progress.Progress([progress.Watch("a", (0, 1), tmp_path, 2)], mode="bar",
                           stream=buf, interval=0.05):
        time.sleep(0.5)
    assert "2.0/2 epochs, writing the results, then the report…" in buf.getvalue()
    for keep, quiet, want in ((True, False, "building the report…\n"), (False, False, ""),
                              (True, True, "")):
        with progress.status("building the report…", quiet=quiet, keep=keep):
            pass
        assert capsys.readouterr().out == want


def test_an_equivalence_claims_line_names_its_90_percent_interval():
    """A `~` claim rests on TOST's 90 % interval; the terminal printed it beside the other
    claims' 95 % ones with no label (report.md labels it)."""
    from sharpen.reports.terminal import _claim_line

    base = {"claim": "c", "verdict": "not supported", "p_adj": 0.5, "notes": []}
    tost = {**base, "estimate": "a − b: +11.33 pp [-4.26 pp, +26.93 pp]",
            "interval": "90 % (TOST, ± 1.00 pp)"}
    assert _claim_line(tost) == ("not supported: c (a − b: +11.33 pp [-4.26 pp, +26.93 pp] "
                                 "(90 % (TOST, ± 1.00 pp)), Holm p 0.5)")
    plain = {**base, "estimate": "a − b: +1.00 pp [-1.00 pp, +3.00 pp]",
             "interval": "95 %, unadjusted"}
    assert _claim_line(plain) == "not supported: c (a − b: +1.00 pp [-1.00 pp, +3.00 pp], " \
                                 "Holm p 0.5)"


def test_a_report_judges_its_claims_once_and_the_terminal_reuses_them(tmp_path, monkeypatch,
                                                                     capsys):
    """The terminal summary judged the claims again after report.md had (and report.md
    itself twice: for summary.json and for its table): seconds at the end of every run.
    Now `sharpen report` judges them once, and the terminal's lines are the ones it would
    compute afresh."""
    from sharpen.cli import main
    from sharpen.reports import claims as claims_mod
    from sharpen.reports.terminal import summary_text
    from tests.test_stats import _rundir

    rng = np.random.default_rng(1)
    b = {s: 0.80 + 0.01 * rng.standard_normal() for s in range(4)}
    a = {s: b[s] + 0.01 + 0.004 * rng.standard_normal() for s in range(4)}
    d = _rundir(tmp_path / "r", {"a": {s: [(v, None)] for s, v in a.items()},
                                 "b": {s: [(v, None)] for s, v in b.items()}},
                [{"claim": "a beats b", "arm": "a", "op": ">", "than": "b"},
                 {"claim": "b beats a", "arm": "b", "op": ">", "than": "a"}])
    calls = []
    judge = claims_mod.judge_family
    monkeypatch.setattr(claims_mod, "judge_family",
                        lambda *a, **k: calls.append(1) or judge(*a, **k))
    capsys.readouterr()
    assert main(["report", str(d)]) == 0
    printed = capsys.readouterr().out
    assert len(calls) == 1
    assert "supported: a beats b" in printed
    (d / "summary.json").unlink()  # computed afresh: the same lines
    assert summary_text(d) in printed
    assert len(calls) == 2
