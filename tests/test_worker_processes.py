"""Worker processes fork from a fork server that imported torch and the trainer once."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

from sharpen.experiments.backends import _worker_init, worker_context


def test_forked_workers_see_the_drivers_environment_and_directory_as_they_are_now(
        tmp_path, monkeypatch):
    """The fork server keeps the environment and working directory it started with; a
    worker forked later must still see the driver's current ones ($SHARPEN_DATA, a
    relative data_dir), as a spawned worker did."""
    ctx, parent = worker_context()  # the server runs from here on, with today's environment
    monkeypatch.setenv("SHARPEN_PROBE_VALUE", "set after the server started")
    monkeypatch.delenv("SHARPEN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=_worker_init,
                             initargs=(None, parent, dict(os.environ), os.getcwd())) as pool:
        assert pool.submit(os.getenv, "SHARPEN_PROBE_VALUE").result() == \
            "set after the server started"
        assert pool.submit(os.getenv, "SHARPEN_DATA").result() is None
        assert pool.submit(os.getcwd).result() == str(tmp_path)
        assert pool.submit(os.getppid).result() == parent  # forked by the server


def test_the_fork_server_is_one_per_driver_and_restarts_when_killed():
    import signal
    import time

    ctx, first = worker_context()
    assert worker_context()[1] == first
    os.kill(first, signal.SIGKILL)
    time.sleep(0.2)
    ctx, second = worker_context()
    assert second != first
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=_worker_init,
                             initargs=(None, second, dict(os.environ), os.getcwd())) as pool:
        assert pool.submit(os.getppid).result() == second


DRIVER = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from sharpen.experiments.backends import _worker_init, worker_context
ctx, server = worker_context()
pool = ProcessPoolExecutor(2, mp_context=ctx, initializer=_worker_init,
                           initargs=(None, server, dict(os.environ), os.getcwd()))
worker = pool.submit(os.getpid).result()
print(server, worker, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:  # a zombie (dead, not yet reaped by whoever adopted it) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_sigkilled_driver_leaves_neither_fork_server_nor_worker_behind():
    """A worker forked by the server is handed the write end of the server's "driver
    alive" pipe; holding it, the server never saw the SIGKILLed driver go, and the worker
    (which dies with the server) waited for work forever: both were left behind."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    try:
        server, worker = map(int, proc.stdout.readline().split())
        assert _alive(server) and _alive(worker)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and (_alive(server) or _alive(worker)):
        time.sleep(0.1)
    left = [p for p in (server, worker) if _alive(p)]
    for p in left:  # this test's own processes, by pid
        os.kill(p, signal.SIGKILL)
    assert not left, f"left behind after the driver was killed: {left}"
