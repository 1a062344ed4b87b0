"""Ctrl-C in a test run stops the suite, even while sharpen trains inside a test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

EXPERIMENT = """
name = "interrupt-me"
dataset = "synthetic"
model = "lenet5"
epochs = 500
batch_size = 32
runs = 1
[arms.only]
"""


def test_ctrl_c_stops_a_pytest_run_that_is_training_in_process(tmp_path: Path) -> None:
    (tmp_path / "exp.toml").write_text(EXPERIMENT)
    out = tmp_path / "out"
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(f"""
        from sharpen.cli import main

        def test_trains_long():
            assert main(["run", {str(tmp_path / "exp.toml")!r}, "--out", {str(out)!r},
                         "--backend", "serial", "--quiet"]) == 0

        def test_after():
            pass
    """))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                             str(tmp_path / "test_inner.py")], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            # as a shell starts it: an earlier test in this process may have
                            # left SIGINT ignored, which a child inherits (and Python keeps)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 600  # a loaded 2-core CI machine starts slowly
    while not list(out.glob("runs/*/seed-*")) and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.2)  # training has started once its run folder exists
    proc.send_signal(signal.SIGINT)
    try:
        text, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        text, _ = proc.communicate()
        raise AssertionError("the interrupted test run went on:\n" + text[-3000:]) from None
    assert proc.returncode == 2, text  # pytest's "interrupted" status, not 1 (a failed test)
    assert "KeyboardInterrupt" in text and "passed" not in text, text
    assert "finished runs are kept" in text  # sharpen still said what it keeps
