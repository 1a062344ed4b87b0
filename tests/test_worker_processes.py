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
