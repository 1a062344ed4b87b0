"""A real local Ray cluster (``ray start --head`` in a subprocess, stopped after): the
workers do not share the driver's $SHARPEN_DATA, yet find the data; a data error on the
cluster prints the same one line as locally."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
RAY = Path(sys.executable).with_name("ray")
SHARPEN = Path(sys.executable).with_name("sharpen")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node started without $SHARPEN_DATA in its environment."""
    tmp = tmp_path_factory.mktemp("ray")
    env = {k: v for k, v in os.environ.items() if k not in ("SHARPEN_DATA", "RAY_ADDRESS")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    r = subprocess.run([str(RAY), "start", "--head", "--port=0", "--num-cpus=2",
                        "--include-dashboard=false", f"--temp-dir={tmp}", "--disable-usage-stats"],
                       env=env, capture_output=True, text=True, timeout=180)
    if r.returncode != 0:
        pytest.fail(f"ray start failed: {r.stdout}\n{r.stderr}")
    address = next(line.split("'")[1] for line in r.stdout.splitlines()
                   if "ray start --address=" in line)
    yield address, env
    subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)


def _experiment(tmp: Path) -> Path:
    p = tmp / "m.toml"
    p.write_text('name = "m"\nruns = 2\ndataset = "mnist"\nverify = false\ntrain_size = 200\n'
                 'test_size = 200\nepochs = 1\nmodel = "lenet5"\nthreads = 1\n[arms.a]\n')
    return p


def test_workers_find_the_drivers_data_and_give_the_local_numbers(cluster, tmp_path, mnist_dir):
    address, env = cluster
    data = mnist_dir
    exp = _experiment(tmp_path)
    driver = {**env, "SHARPEN_DATA": str(data)}  # only the driver has it
    cmd = [str(SHARPEN), "run", str(exp), "--quiet"]
    r = subprocess.run([*cmd, "--backend", "ray", "--address", address, "--out",
                        str(tmp_path / "ray")], env=driver, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    local = subprocess.run([*cmd, "--out", str(tmp_path / "local")], env=driver,
                           capture_output=True, text=True, timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]
    assert (tmp_path / "ray" / "results.csv").read_bytes() == \
        (tmp_path / "local" / "results.csv").read_bytes()
    assert "ok" in (tmp_path / "ray" / "results.csv").read_text()


def test_a_data_error_on_the_cluster_is_the_local_one_line(cluster, tmp_path):
    address, env = cluster
    exp = _experiment(tmp_path)
    empty = tmp_path / "nothing"
    empty.mkdir()
    env = {**env, "SHARPEN_DATA": str(empty), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    local = subprocess.run([str(SHARPEN), "run", str(exp), "--quiet", "--set",
                            "data_dir=" + str(empty), "--out", str(tmp_path / "l")],
                           env=env, capture_output=True, text=True, timeout=600)
    remote = subprocess.run([str(SHARPEN), "run", str(exp), "--quiet", "--set",
                             "data_dir=" + str(empty), "--backend", "ray", "--address", address,
                             "--out", str(tmp_path / "r")], env=env, capture_output=True,
                            text=True, timeout=600)
    assert local.returncode != 0 and remote.returncode != 0
    line = [ln for ln in local.stderr.splitlines() if ln.startswith("sharpen: error:")]
    rline = [ln for ln in remote.stderr.splitlines() if ln.startswith("sharpen: error:")]
    assert line and rline and rline[0] == line[0], (local.stderr[-1500:], remote.stderr[-1500:])
    assert "RayTaskError" not in remote.stderr and "\x1b[" not in remote.stderr
    assert "Traceback" not in remote.stderr
