"""A real local Ray cluster (``ray start --head`` in a subprocess, stopped after): the
workers do not share the driver's $SHARPEN_DATA, yet find the data; a data error on the
cluster prints the same one line as locally."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
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


@pytest.mark.slow
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


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr[-3000:]  # no Ray warnings, no traceback
    return lines[0]


def test_an_address_where_nothing_listens_is_one_line_in_seconds(tmp_path):
    exp = _experiment(tmp_path)
    r = subprocess.run([str(SHARPEN), "run", str(exp), "--quiet", "--backend", "ray",
                        "--address", "127.0.0.1:1", "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert _one_line(r.stderr).startswith(
        "sharpen: error: cannot reach the Ray cluster at 127.0.0.1:1 (")
    assert not (tmp_path / "r").exists()  # nothing half-made


@pytest.mark.slow
def test_a_token_cluster_says_how_to_join_in_one_line_and_the_documented_setup_works(
        tmp_path, mnist_dir):
    """Ray turns token authentication on where a token exists (`RAY_AUTH_MODE=token ray
    start --head`, as docs/errors.md says); a driver without RAY_AUTH_MODE is refused."""
    home = tmp_path / "home"  # the token lives in $HOME/.ray: never the user's own
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE",
                                                           "RAY_AUTH_TOKEN")}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", SHARPEN_DATA=str(mnist_dir))
    subprocess.run([str(RAY), "get-auth-token", "--generate"], env=env, capture_output=True,
                   timeout=60, check=True)
    assert (home / ".ray" / "auth_token").is_file()
    token = {**env, "RAY_AUTH_MODE": "token"}
    short = tempfile.mkdtemp(prefix="sray")  # Ray's socket paths must stay under 107 bytes
    r = subprocess.run([str(RAY), "start", "--head", "--port=0", "--num-cpus=2",
                        "--include-dashboard=false", f"--temp-dir={short}",
                        "--disable-usage-stats"], env=token, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stderr
    address = next(line.split("'")[1] for line in r.stdout.splitlines()
                   if "ray start --address=" in line)
    try:
        exp = _experiment(tmp_path)
        cmd = [str(SHARPEN), "run", str(exp), "--quiet", "--backend", "ray", "--address",
               address]
        refused = subprocess.run([*cmd, "--out", str(tmp_path / "no")], env=env,
                                 capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2
        assert _one_line(refused.stderr) == (
            f"sharpen: error: cannot join the Ray cluster at {address}: the cluster asks for "
            "an authentication token and this process sent none or another one: run sharpen "
            "with RAY_AUTH_MODE=token and the head's token in ~/.ray/auth_token or "
            "$RAY_AUTH_TOKEN (`ray get-auth-token` prints it on the head)")
        joined = subprocess.run([*cmd, "--out", str(tmp_path / "yes")], env=token,
                                capture_output=True, text=True, timeout=300)
        assert joined.returncode == 0, joined.stderr[-3000:]
        assert ",ok," in (tmp_path / "yes" / "results.csv").read_text()
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=token, capture_output=True,
                       timeout=120)  # every head on this machine: this test runs last here
        shutil.rmtree(short, ignore_errors=True)
