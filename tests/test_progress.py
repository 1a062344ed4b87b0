"""The progress display as users see it: a bar in a real pseudo-terminal (tmux, with a set
width, resized mid-run), and one line per finished epoch per job in a pipe."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

SHARPEN = Path(sys.executable).with_name("sharpen")
BAR = re.compile(r"(\d+)%\|.*\| (\d+\.\d)/(\d+) epochs")


def _tmux(sock: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                          timeout=20).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.slow
def test_the_bar_moves_within_epochs_names_its_jobs_and_follows_the_terminal(tmp_path):
    sock = f"sharpen-test-{os.getpid()}"
    out = tmp_path / "r"
    done = tmp_path / "done"
    # the bundled real MNIST sample: 2 arms × 2 stacked seeds, epochs long enough to watch
    cmd = (f"{SHARPEN} run quickstart --profile quick --set epochs=6 --workers 1 "
           f"--out {out}; touch {done}; sleep 60")
    _tmux(sock, "new-session", "-d", "-s", "t", "-x", "90", "-y", "30", cmd)
    frames: list[str] = []
    resized_frames: list[str] = []
    try:
        t0 = time.time()
        resized = False
        while not done.exists() and time.time() - t0 < 240:
            screen = _tmux(sock, "capture-pane", "-p", "-t", "t")
            (resized_frames if resized else frames).append(screen)
            if not resized and sum(bool(BAR.search(ln)) for ln in screen.splitlines()) and \
                    any(float(m.group(2)) >= 3 for m in BAR.finditer(screen)):
                _tmux(sock, "resize-window", "-t", "t", "-x", "50")
                resized = True
                time.sleep(2.5)  # the bar redraws at its next tick
                resized_frames.clear()
            time.sleep(0.25)
        assert done.exists(), "the run did not finish"
    finally:
        _tmux(sock, "kill-server")
    bars = [m for f in frames for m in BAR.finditer(f)]
    assert bars, "no bar was shown"
    # progress moves inside an epoch, not only at its end
    assert any(not float(m.group(2)).is_integer() for m in bars), [m.group(0) for m in bars]
    text = "\n".join(frames)
    assert re.search(r"lenet5(_dropout)? · seeds 0–1 · epoch \d/6", text)
    assert re.search(r"ETA \d+:\d\d", text)
    assert all(len(line) <= 90 for f in frames for line in f.splitlines())
    # after the terminal narrowed: the bar fits, and no stale partial bar is stacked above it
    later = [f for f in resized_frames if BAR.search(f)]
    assert later, "no bar after the resize"
    for f in later:
        lines = f.splitlines()
        assert all(len(line) <= 50 for line in lines)
        assert sum("% |" in line or re.match(r"\s*\d+%\|", line) is not None
                   for line in lines) <= 1, f


@pytest.mark.slow
def test_a_pipe_gets_one_line_per_finished_epoch_per_job(tmp_path):
    r = subprocess.run([str(SHARPEN), "run", "quickstart", "--profile", "smoke", "--runs", "2",
                        "--set", "epochs=3", "--workers", "1", "--out", str(tmp_path / "p")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [ln for ln in r.stdout.splitlines() if " · epoch " in ln]
    want = {f"{arm} · seeds 0–1 · epoch {e}/3" for arm in ("lenet5", "lenet5_dropout")
            for e in (1, 2, 3)}
    got = {ln.split(" · test acc")[0] for ln in lines}
    assert got == want and len(lines) == 6, r.stdout
    assert all(re.search(r"test acc \d+\.\d\d % · \d+\.\d s · all jobs \d+/6 epochs, ETA", ln)
               for ln in lines)
    assert "\r" not in r.stdout and "\x1b[" not in r.stdout  # no bar in a pipe
    quiet = subprocess.run([str(SHARPEN), "run", "quickstart", "--profile", "smoke", "--quiet",
                            "--out", str(tmp_path / "q")], capture_output=True, text=True,
                           timeout=600)
    assert " · epoch " not in quiet.stdout
