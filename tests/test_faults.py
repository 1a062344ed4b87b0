"""Bad input and faults, in one place (issue 8). Each test names the case it proves;
docs/errors.md lists the message a user sees for each.

Sections: experiment files · data files · training · output directories · command line.
"""

from __future__ import annotations

import csv
import errno
import gzip
import hashlib
import http.server
import io
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from sharpen import SharpenError
from sharpen.cli import main
from sharpen.data import load
from sharpen.data.formats import safe_extract, safe_unpickle, write_idx
from sharpen.data.sources import download
from sharpen.experiments import load_experiment, run_experiment
from sharpen.io import DirLock, atomic_write_text
from sharpen.rundir import LOCK
from sharpen.training import Hook
from tests.test_data import _write_mnist_like
from tests.test_experiments import TINY


@pytest.fixture
def tiny(tmp_path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


# ================================================================ experiment files
@pytest.mark.parametrize("text,match", [
    ("epohcs = 3", r"unknown key 'epohcs' \(did you mean 'epochs'\?\)"),
    ("epochs = -1", r"field epochs: Input should be greater than or equal to 1"),
    ("epochs = 'ten'", r"field epochs: expected a number, got the text 'ten'$"),
    ("batch_size = '64'", r"field batch_size: expected a number, got the text '64' \(drop the quotes\)"),
    ("lr = 0", r"field 'lr': value 0 at epoch 1 is outside"),
    ("model = 'lenet'", r"field model: unknown model 'lenet'.*valid names"),
    ("dataset = 'mnsit'", r"field dataset: unknown dataset 'mnsit' \(did you mean 'mnist'\?\); valid names"),
    ("optimizer = 'rmsprop'", r"field optimizer: Input should be 'sgd', 'adam' or 'adamw'"),
    ("[arms.x]\nlrr = 1", r"unknown key arms.x.'lrr' \(did you mean 'lr'\?\)"),
    ("lr = { kind = 'linear', start = 0.1, end = 0.01, length = 50 }",
     r"ends at 50 epochs but training has only 10"),
    ("stack_seeds = 'many'", r"field stack_seeds: expected a valid integer.* or 'auto' \(got 'many'\)"),
    ("stack_seeds = 0", r"field stack_seeds: must be 'auto' or an integer >= 1 \(got 0\)"),
    ("threads = 0", r"field threads: must be 'auto' or an integer >= 1 \(got 0\)"),
    ("epochs = [", r"TOML syntax error.*line 1"),
    ("epochs = 3\nlr = = 2\nruns = 1", r"TOML syntax error.*line 2"),
])
def test_bad_configs_name_the_field(tmp_path, text, match):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(SharpenError, match=match):
        load_experiment(str(p))


def test_a_bad_set_value_blames_the_set_and_a_bundled_file_is_named_not_its_path(capsys):
    """`--set epochs=ten` was blamed on '<installed path>/quickstart.toml: field epochs', a
    field the user never wrote in a file they never saw."""
    from sharpen.cli import main
    from sharpen.experiments.config import BUNDLED_DIR

    cases = [
        (["--set", "epochs=ten"], "error: --set epochs=ten: expected a number, got the text 'ten'"),
        (["--set", "arms.lenet5.epochs=0"],
         "error: --set arms.lenet5.epochs=0: Input should be greater than or equal to 1 (got 0)"),
        (["--set", "model_args.dropout=0.5"],
         "error: bundled experiment 'quickstart': field arms.lenet5.model: model 'lenet5' "
         "takes no argument 'dropout'"),
        (["--profile", "nope"], "error: bundled experiment 'quickstart': no profile 'nope'"),
        # an experiment key, an item of a list: the --set, not the file's field
        (["--set", "runs=0"], "error: --set runs=0: Input should be greater than or equal to "
                              "1 (got 0)"),
        (["--set", "max_runs=1"], "error: --set max_runs=1: Input should be greater than or "
                                  "equal to 2 (got 1)"),
        (["--set", "log=['x']"], "error: --set log=['x']: field log.0: Input should be "
                                 "'tensorboard' or 'mlflow' (got 'x')"),
    ]
    for args, want in cases:
        assert main(["run", "quickstart", *args, "--out", "/nonexistent/never"]) == 2
        err = capsys.readouterr().err
        assert want in err and str(BUNDLED_DIR) not in err, err
    # a file of the user's own keeps its path (a --set of the right type, wrong elsewhere too)
    with pytest.raises(SharpenError, match=r"^--set epochs=ten: expected a number"):
        load_experiment("quickstart", overrides=["epochs=ten"])


def test_yaml_files_and_yaml_syntax_errors(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text("name: y\ndataset: synthetic\nepochs: 1\narms:\n  only: {lr: 0.1}\n")
    exp = load_experiment(str(p))
    assert exp.arms["only"].lr == 0.1 and exp.arms["only"].epochs == 1
    p.write_text("name: y\narms:\n  - [unclosed\n")
    with pytest.raises(SharpenError, match=r"YAML syntax error at line \d+"):
        load_experiment(str(p))


def test_unknown_experiment_and_profile(tiny):
    with pytest.raises(SharpenError, match="did you mean 'quickstart'"):
        load_experiment("quickstar")
    with pytest.raises(SharpenError, match="no profile 'fast'; available: smoke"):
        load_experiment(str(tiny), profile="fast")


@pytest.mark.slow
def test_diverged_run_is_recorded_and_others_continue(tmp_path):
    p = tmp_path / "div.toml"
    p.write_text(TINY.replace("lr = 0.003\n", "lr = 0.003\n", 1)
                 + '\n[arms.boom]\noptimizer = "sgd"\nlr = 1e6\n')
    out, results = run_experiment(load_experiment(str(p), profile="smoke"), tmp_path / "r", quiet=True)
    st = {(r["arm"], r["status"]) for r in results}
    assert ("boom", "diverged") in st and ("a", "ok") in st
    assert "loss became" in next(r["error"] for r in results if r["arm"] == "boom")
    assert "(0/2/0)" in (out / "report.md").read_text()


@pytest.mark.slow
def test_sigkill_between_seeds_then_rerun_finishes_only_missing(tiny, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "sharpen.cli", "run", str(tiny), "--out", str(out),
           "--set", "epochs=3", "--set", "runs=3", "--set", "stack_seeds=1",
           "--workers", "1", "--quiet"]
    # one seed per job, one job at a time: the kill lands between seeds, not after a
    # stacked group that finishes all its seeds at once
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "runs" / "a" / "seed-5" / "result.json"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists()
    done_before = {p: p.read_bytes() for p in out.glob("runs/*/*/result.json")}
    assert 1 <= len(done_before) < 6
    # SIGKILL cannot be caught, so a writer killed mid-write may leave its hidden
    # ".<name>.<rand>.tmp"; what matters is that no file under its final name is partial.
    for p in out.glob("runs/*/*/result.json"):
        assert json.loads(p.read_text())["status"] == "ok"
    for p in out.glob("runs/*/*/metrics.csv"):
        rows = list(csv.DictReader(open(p)))  # every metrics file parses completely
        assert all(r["test_acc"] for r in rows)
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for p, content in done_before.items():
        assert p.read_bytes() == content
    assert len(list(out.glob("runs/*/*/result.json"))) == 6
    assert [p for p in out.rglob("*") if p.name.endswith(".tmp")] == []  # rerun swept them


def test_cli_help_and_no_arguments(capsys):
    assert main([]) == 2
    assert "run" in capsys.readouterr().out
    for sub in (["--help"], ["run", "--help"], ["report", "--help"], ["list", "--help"],
                ["data", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(sub)
        assert e.value.code == 0


def test_empty_or_unknown_grid_axis(tiny):
    with pytest.raises(SharpenError, match="grid axis 'lr' is empty"):
        load_experiment(str(tiny), axes=["lr="])
    with pytest.raises(SharpenError, match=r"unknown grid axis 'lrr' \(did you mean 'lr'\?\)"):
        load_experiment(str(tiny), axes=["lrr=0.1"])



# ================================================================ data files
def test_verify_rejects_unknown_md5_naming_file(tmp_path):
    _write_mnist_like(tmp_path)
    msg = r"checksum mismatch for .*train-images-idx3-ubyte.gz.*expected md5 f68b3c2d"
    with pytest.raises(SharpenError, match=msg):
        load("mnist", "train", root=tmp_path, verify=True)


def test_truncated_gz_names_file(tmp_path):
    _write_mnist_like(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(SharpenError, match="train-images-idx3-ubyte.gz.*truncated"):
        load("mnist", "train", root=tmp_path, verify=False)


def test_wrong_magic_names_file(tmp_path):
    _write_mnist_like(tmp_path)
    p = tmp_path / "train-labels-idx1-ubyte.gz"
    p.write_bytes(gzip.compress(b"\x12\x34\x08\x01" + b"\x00" * 40))
    with pytest.raises(SharpenError, match="train-labels-idx1-ubyte.gz: wrong IDX magic"):
        load("mnist", "train", root=tmp_path, verify=False)


def test_count_mismatch_and_wrong_dims(tmp_path):
    _write_mnist_like(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(7, np.uint8))
    with pytest.raises(SharpenError, match="20 images but .* 7 labels"):
        load("mnist", "train", root=tmp_path, verify=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros((20, 2), np.uint8))
    with pytest.raises(SharpenError, match="2 dimensions, expected 1"):
        load("mnist", "train", root=tmp_path, verify=False)


def test_offline_missing_says_which_files_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARPEN_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(SharpenError) as e:
        load("mnist", "train")
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "nowhere") in msg and "sharpen" in msg


class _Evil:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    target = tmp_path / "pwned"
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": _Evil(str(target)), b"labels": [1]}, protocol=2))
    with pytest.raises(SharpenError, match="refused to load global"):
        safe_unpickle(p)
    assert not target.exists()
    p.write_bytes(pickle.dumps({b"data": b"\x00" * 10, b"labels": [1, 2]})[:-5])
    with pytest.raises(SharpenError, match="truncated or corrupt pickle"):
        safe_unpickle(p)


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"])
def test_tar_extraction_refuses_unsafe_paths(tmp_path, bad):
    arc = tmp_path / "a.tar.gz"
    with tarfile.open(arc, "w:gz") as t:
        info = tarfile.TarInfo(bad)
        info.size = 4
        t.addfile(info, io.BytesIO(b"evil"))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(SharpenError, match="refused unsafe member path"):
        safe_extract(arc, dest)
    assert not (tmp_path / "evil.txt").exists() and not Path("/abs/evil.txt").exists()
    assert list(dest.iterdir()) == []


def test_tar_extraction_refuses_links(tmp_path):
    arc = tmp_path / "a.tar"
    with tarfile.open(arc, "w") as t:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        t.addfile(info)
    with pytest.raises(SharpenError, match="links and devices are not allowed"):
        safe_extract(arc, tmp_path)


class _Handler(http.server.SimpleHTTPRequestHandler):
    cut_after: int | None = None

    def log_message(self, *a):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802
        path = Path(self.directory) / self.path.lstrip("/")
        data = path.read_bytes()
        start = 0
        rng_h = self.headers.get("Range")
        if rng_h:
            start = int(rng_h.split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if _Handler.cut_after is not None and not rng_h:
            self.wfile.write(body[: _Handler.cut_after])
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(body)


def test_download_atomic_resume_and_md5(tmp_path):
    srv_dir = tmp_path / "srv"
    srv_dir.mkdir()
    payload = os.urandom(300_000)
    (srv_dir / "f.bin").write_bytes(payload)
    md5 = hashlib.md5(payload).hexdigest()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(srv_dir)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/f.bin"
    dest = tmp_path / "dl" / "f.bin"
    try:
        _Handler.cut_after = 100_000
        with pytest.raises(SharpenError, match="cut off"):
            download(url, dest, [md5], progress=False, timeout=5)
        assert not dest.exists()  # never a partial file under the final name
        part = dest.with_name("f.bin.part")
        assert 0 < part.stat().st_size < len(payload)
        _Handler.cut_after = None
        download(url, dest, [md5], progress=False, timeout=5)  # resumes with Range
        assert dest.read_bytes() == payload and not part.exists()
        with pytest.raises(SharpenError, match="checksum mismatch for g.bin.*expected md5 0{32}"):
            download(url, tmp_path / "dl" / "g.bin", ["0" * 32], progress=False, timeout=5)
        assert not (tmp_path / "dl" / "g.bin").exists()
    finally:
        server.shutdown()


def test_corrupt_cifar_batch_and_wrong_layout(tmp_path):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, protocol=2))
    from sharpen.data.formats import read_cifar_batch

    with pytest.raises(SharpenError, match="1 labels but 6144 bytes of pixels"):
        read_cifar_batch(p, b"labels")
    p.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(SharpenError, match="not a CIFAR batch"):
        read_cifar_batch(p, b"labels")


# ================================================================ training
class Boom(Hook):
    """Fails on the first training batch: an error only training can meet (a model that
    fails on a batch is now refused before training, by the dry pass of build_model)."""

    def on_batch(self, state, x, y):
        raise RuntimeError("boom: the first batch")


FAILING_ARM = '\n[arms.broken]\nhooks = [{ target = "tests.test_faults:Boom" }]\n'


@pytest.mark.slow
def test_exception_in_one_run_is_recorded_others_continue_exit_nonzero(tiny, tmp_path, capsys):
    tiny.write_text(TINY + FAILING_ARM)
    out = tmp_path / "r"
    code = main(["run", str(tiny), "--profile", "smoke", "--out", str(out), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "2 run(s) failed: broken seed 5 (RuntimeError" in err
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {(r["arm"], r["status"]) for r in rows} == {("a", "ok"), ("b", "ok"), ("broken", "failed")}
    tb = (out / "runs" / "broken" / "seed-5" / "traceback.txt").read_text()
    assert "Traceback (most recent call last)" in tb and "RuntimeError" in tb
    assert "(0/0/2)" in (out / "report.md").read_text()


@pytest.mark.slow
def test_failed_runs_are_retried_finished_ones_kept(tiny, tmp_path):
    tiny.write_text(TINY + FAILING_ARM)
    out = tmp_path / "r"
    run_experiment(load_experiment(str(tiny), profile="smoke"), out, quiet=True)
    ok = out / "runs" / "a" / "seed-5" / "result.json"
    before = ok.read_bytes()
    _, results = run_experiment(load_experiment(str(tiny), profile="smoke"), out, quiet=True)
    assert ok.read_bytes() == before
    assert sum(r["status"] == "failed" for r in results) == 2


# ================================================================ output directories
def test_output_path_that_cannot_be_a_directory_fails_before_training(tiny, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", str(tiny), "--profile", "smoke", "--out", str(blocker / "run")]) == 2
    assert "is not writable" in capsys.readouterr().err
    # --out naming the file itself (was "is not writable: File exists")
    assert main(["run", str(tiny), "--profile", "smoke", "--out", str(blocker)]) == 2
    assert capsys.readouterr().err == (f"sharpen: error: output directory {blocker} is a file, "
                                       "not a directory; give another --out\n")
    assert not any(tmp_path.glob("**/metrics.csv")) and blocker.read_text() == "x"


@pytest.mark.parametrize("what", ["profile", "train", "conv", "gpu"])
def test_a_bench_out_that_cannot_be_a_directory_is_one_line_before_measuring(tmp_path, capsys,
                                                                           what):
    """`sharpen bench profile --out FILE` ended in mkdir's traceback (FileExistsError),
    after the benchmark's imports; every bench now says it in one line, measuring nothing."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["bench", what, "--profile", "quick", "--out", str(blocker)]) == 2
    assert capsys.readouterr().err == (f"sharpen: error: output directory {blocker} is a file, "
                                       "not a directory; give another --out\n")
    assert main(["bench", what, "--profile", "quick", "--out", str(blocker / "b")]) == 2
    assert "is not writable" in capsys.readouterr().err
    assert blocker.read_text() == "x" and sorted(tmp_path.iterdir()) == [blocker]


@pytest.mark.parametrize("code,text", [(errno.EROFS, "Read-only file system"),
                                       (errno.ENOSPC, "No space left on device")])
def test_read_only_or_full_filesystem_gives_clear_error_and_keeps_old_file(tmp_path, monkeypatch,
                                                                            code, text):
    target = tmp_path / "results.csv"
    atomic_write_text(target, "old complete version\n")

    def failing_replace(src, dst):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(SharpenError, match=f"cannot write .*results.csv: {text}"):
        atomic_write_text(target, "new version\n")
    monkeypatch.undo()
    assert target.read_text() == "old complete version\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temp file left


def test_full_disk_before_training_is_detected(tiny, tmp_path, monkeypatch):
    import sharpen.io as sio

    real = sio.tempfile.mkstemp

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sio.tempfile, "mkstemp", no_space)
    with pytest.raises(SharpenError, match="not writable: No space left on device"):
        run_experiment(load_experiment(str(tiny), profile="smoke"), tmp_path / "r", quiet=True)
    monkeypatch.setattr(sio.tempfile, "mkstemp", real)


@pytest.mark.slow
def test_second_process_on_the_same_run_directory_is_refused(tiny, tmp_path):
    out = tmp_path / "r"
    with DirLock(out / LOCK):  # another process (here: this one) holds the directory
        with pytest.raises(SharpenError, match="in use by another sharpen process"):
            run_experiment(load_experiment(str(tiny), profile="smoke"), out, quiet=True)
        r = subprocess.run([sys.executable, "-m", "sharpen.cli", "run", str(tiny), "--profile",
                            "smoke", "--out", str(out)], capture_output=True, text=True)
        assert r.returncode == 2 and "in use by another sharpen process" in r.stderr
    assert not (out / "results.csv").exists()
    run_experiment(load_experiment(str(tiny), profile="smoke"), out, quiet=True)  # lock released


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_only_complete_files(tiny, tmp_path):
    out = tmp_path / "k"
    cmd = [sys.executable, "-m", "sharpen.cli", "run", str(tiny), "--out", str(out),
           "--set", "epochs=3", "--quiet"]
    rnd = random.Random(0)
    for _ in range(4):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(1.0, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for p in out.rglob("*.json"):
            if not p.name.startswith("."):
                json.loads(p.read_text())  # every visible file is complete
        for p in out.rglob("*.csv"):
            if not p.name.startswith("."):
                list(csv.DictReader(open(p)))
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(list(out.glob("runs/*/*/result.json"))) == 4
    assert [p for p in out.rglob("*.tmp")] == []  # stale temp files of killed writers are swept


# ================================================================ command line
def test_every_failure_exits_nonzero(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = -1")
    for argv in (["run", str(bad)], ["run", "nope"], ["report", str(tmp_path)],
                 ["data", "verify", "mnist", "--root", str(tmp_path)],
                 ["schedule", "quickstart", "--arm", "nope"]):
        assert main(argv) == 2, argv
    r = subprocess.run([sys.executable, "-m", "sharpen.cli", "bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_stacking_a_model_that_cannot_be_stacked_names_the_arm(tiny, tmp_path, mixer_model):
    with pytest.raises(SharpenError, match=r"field arms.a.stack_seeds: these seeds cannot be "
                                           r"stacked: model 'test_mixer_model': its forward "
                                           r"mixes the samples .*set stack_seeds = 1"):
        load_experiment(str(tiny), profile="smoke",
                        overrides=["stack_seeds=2", "model=test_mixer_model", "arms.a.model_args={}"])


LONG = """
name = "long"
runs = 4
dataset = "synthetic"
train_size = 600
test_size = 100
model = "lenet5_dropout"
epochs = 6
batch_size = 50
optimizer = "adam"
lr = 0.003
stack_seeds = 1
threads = 1
"""


def _workers(driver: int) -> set[int]:
    """The driver's worker processes: the fork server's children (the server itself and
    the resource tracker are the driver's), or the driver's spawned ones."""
    out: set[int] = set()
    for c in _children(driver):
        try:
            cmd = Path(f"/proc/{c}/cmdline").read_bytes()
        except OSError:
            continue
        if b"forkserver" in cmd:
            out |= _children(c)
        elif b"spawn_main" in cmd:
            out.add(c)
    return out


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


@pytest.mark.parametrize("hangup", [False, True])
@pytest.mark.slow
def test_a_closed_pipe_or_terminal_never_stops_training(tmp_path, hangup):
    """`sharpen run … | head -1`: the reader goes away; a closing terminal also sends SIGHUP
    first. Every run still finishes."""
    p = tmp_path / "long.toml"
    p.write_text(LONG.replace("epochs = 6", "epochs = 2"))
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "sharpen.cli", "run", str(p), "--out", str(out),
                             "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()  # read one line, then close the pipe as `head -1` does
    if hangup:
        proc.send_signal(signal.SIGHUP)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.wait(timeout=300) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["status"] for r in rows] == ["ok"] * 4
    assert (out / "report.md").exists()


@pytest.mark.slow
def test_sigterm_stops_cleanly_keeps_finished_runs_and_leaves_no_process(tmp_path):
    p = tmp_path / "long.toml"
    p.write_text(LONG)
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "sharpen.cli", "run", str(p), "--out", str(out),
                             "--workers", "2", "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    seen: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("runs/*/*/metrics.csv")):
        seen |= _children(proc.pid) | _workers(proc.pid)  # the fork server's workers too
        time.sleep(0.05)
    seen |= _children(proc.pid) | _workers(proc.pid)
    assert _workers(proc.pid), "no worker process seen"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "finished runs are kept" in err
    time.sleep(1)
    alive = [c for c in seen if Path(f"/proc/{c}").exists()
             and "Z" not in (Path(f"/proc/{c}/stat").read_text().split()[2:3] or ["Z"])]
    assert seen and not alive, f"worker processes left behind: {alive}"
    # rerunning finishes what is missing; finished results were kept
    done = {d.parent.name for d in out.glob("runs/*/*/result.json")}
    r = subprocess.run([sys.executable, "-m", "sharpen.cli", "run", str(p), "--out", str(out),
                        "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [x["status"] for x in rows] == ["ok"] * 4
    assert done <= {f"seed-{x['seed']}" for x in rows}


def test_a_bad_set_value_names_the_key_as_written_without_library_internals(capsys):
    assert main(["run", "quickstart", "--profile", "smoke", "--set", "lr=abc"]) == 2
    err = capsys.readouterr().err
    assert "--set lr=abc: expected a valid number or a schedule table such as" in err
    assert "arms." not in err  # the user set a top-level key, not an arm's
    for internal in ("tagged-union", "function-", "dictionary or object", "unable to parse"):
        assert internal not in err


def _untimed(csv_path: Path) -> list[dict[str, str]]:
    """A results or metrics CSV without its wall-clock columns."""
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")}
            for r in csv.DictReader(open(csv_path))]


KILLER = '''
import os
import shutil
import signal

from sharpen.training import Hook


class DieInSecondEpoch(Hook):
    """Stands in for the out-of-memory killer: the process dies without a word."""

    def on_epoch_start(self, state):
        if state.epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)
'''


def _two_arms(tmp_path: Path, arm_b: str) -> Path:
    p = tmp_path / "two.toml"
    p.write_text(LONG.replace("epochs = 6", "epochs = 2").replace("runs = 4", "runs = 2")
                 + "\n[arms.a]\n\n[arms.b]\n" + arm_b)
    return p


@pytest.mark.slow
def test_a_job_whose_worker_process_dies_is_recorded_failed_and_the_others_finish(tmp_path):
    """A worker killed by the system (out of memory, a segfault) breaks the process pool; the
    job that did it is found by running the jobs then in flight again, one at a time."""
    (tmp_path / "killer.py").write_text(KILLER)
    p = _two_arms(tmp_path, 'hooks = [{ target = "killer:DieInSecondEpoch" }]\n')
    out = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "sharpen.cli", "run", str(p), "--out", str(out),
                        "--workers", "2", "--quiet"], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 1, r.stderr
    assert "a worker process died" in r.stderr and "2 run(s) failed" in r.stderr
    rows = {(x["arm"], x["seed"]): x for x in csv.DictReader(open(out / "results.csv"))}
    assert [rows["a", s]["status"] for s in ("0", "1")] == ["ok", "ok"]
    for s in ("0", "1"):
        assert rows["b", s]["status"] == "failed" and "worker process died" in rows["b", s]["error"]
        assert json.loads((out / "runs" / "b" / f"seed-{s}" / "result.json").read_text())[
            "status"] == "failed"


@pytest.mark.slow
def test_a_worker_killed_once_from_outside_costs_nothing(tmp_path):
    """`kill -9` of one worker (the OOM killer choosing it, a cluster's cgroup): its job is
    run again and every run finishes with the numbers of an undisturbed run."""
    p = tmp_path / "long.toml"
    p.write_text(LONG.replace("epochs = 6", "epochs = 3"))
    ref = tmp_path / "ref"
    assert main(["run", str(p), "--out", str(ref), "--quiet", "--workers", "1"]) == 0
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "sharpen.cli", "run", str(p), "--out", str(out),
                             "--workers", "2", "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("runs/*/*/metrics.csv")):
        time.sleep(0.05)
    deadline = time.time() + 60
    while time.time() < deadline and len(_workers(proc.pid)) < 2:
        time.sleep(0.05)
    workers = sorted(_workers(proc.pid))
    assert len(workers) == 2
    os.kill(workers[-1], signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "a worker process died" in err

    assert _untimed(out / "results.csv") == _untimed(ref / "results.csv")
    assert all(x["status"] == "ok" for x in _untimed(out / "results.csv"))


def test_an_unreadable_checkpoint_costs_a_restart_not_the_run(tmp_path):
    """A checkpoint damaged on disk (bit rot, a copy cut short) is not trusted: the run starts
    again from epoch 1 and ends with the numbers of an undisturbed run."""
    p = tmp_path / "long.toml"
    p.write_text(LONG.replace("epochs = 6", "epochs = 2").replace("runs = 4", "runs = 1"))
    ref = tmp_path / "ref"
    assert main(["run", str(p), "--out", str(ref), "--quiet"]) == 0
    out = tmp_path / "r"
    shutil.copytree(ref, out)
    seed = out / "runs" / "default" / "seed-0"
    (seed / "result.json").unlink()
    (seed / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    (seed / "metrics.csv").write_text("epoch,test_acc\n1,0.99\n")  # rows a restart must replace
    assert main(["run", str(p), "--out", str(out)]) == 0

    m = Path("runs") / "default" / "seed-0" / "metrics.csv"
    assert _untimed(out / m) == _untimed(ref / m) and len(_untimed(out / m)) == 2
    assert not (seed / "checkpoint.pt").exists()


def test_a_relative_data_dir_is_read_from_anywhere_later(mnist_dir, tmp_path, monkeypatch):
    """`--set data_dir=data/mnist` typed in one folder: the run directory resumes from another
    folder (or on a cluster node whose working directory differs) and finds the same files."""
    monkeypatch.chdir(mnist_dir.parent)
    p = tmp_path / "m.toml"
    p.write_text('name = "m"\nruns = 2\ndataset = "mnist"\nverify = false\ntrain_size = 200\n'
                 'test_size = 100\nepochs = 1\nbatch_size = 50\noptimizer = "adam"\nlr = 0.003\n')
    out = tmp_path / "r"
    assert main(["run", str(p), "--out", str(out), "--quiet", "--set", f"data_dir={mnist_dir.name}",
                 "--set", "runs=1"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["arms"]["default"]["data_dir"] == str(mnist_dir)
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(out), "--runs", "2", "--quiet"]) == 0
    assert [r["status"] for r in csv.DictReader(open(out / "results.csv"))] == ["ok", "ok"]


def test_a_worker_that_starts_after_its_driver_died_exits_at_once():
    """A driver SIGKILLed while spawning: the worker's death signal is set too late to fire,
    and the pool's pipes keep it waiting; it must see the driver is gone and exit."""
    code = ("import os, sys; from sharpen.experiments.backends import _worker_init; "
            "_worker_init(None, int(sys.argv[1])); print('alive')")
    gone = subprocess.run([sys.executable, "-c", code, "1"], capture_output=True, text=True,
                          timeout=120)
    assert gone.returncode == 1 and "alive" not in gone.stdout
    here = subprocess.run([sys.executable, "-c", code, str(os.getpid())], capture_output=True,
                          text=True, timeout=120)
    assert here.returncode == 0 and "alive" in here.stdout
