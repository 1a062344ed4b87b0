"""A user's own model, data and hook from an experiment file, end to end (issue 15)."""

from __future__ import annotations

import csv
import json
import textwrap

import numpy as np
import pytest
from PIL import Image

from sharpen import SharpenError
from sharpen.experiments import load_experiment, run_experiment

USER_CODE = textwrap.dedent('''
    import torch
    from torch import nn
    from sharpen.training import Hook

    def tiny_net(num_classes=10, in_channels=1, width=4):
        return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                             nn.Linear(4 * width, num_classes))

    def wrong_shape(num_classes=10, in_channels=1):
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(3))

    class InvertHalf(Hook):
        """Negates the first `share` of every batch; counts what it touched. It treats the
        batch as one seed's, so it does not declare `stacks = True`."""

        def __init__(self, share=0.5):
            self.share, self.touched = share, 0

        def on_batch(self, state, x, y):
            k = int(len(x) * self.share)
            x = torch.cat([-x[:k], x[k:]])
            self.touched += k
            return x, y

        def on_epoch_end(self, state, row):
            row["inverted"] = self.touched
''')


@pytest.fixture
def user_pkg(tmp_path, monkeypatch):
    (tmp_path / "userpkg.py").write_text(USER_CODE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _exp(tmp_path, body: str):
    p = tmp_path / "e.toml"
    p.write_text('name = "mine"\nruns = 2\nepochs = 2\nbatch_size = 20\noptimizer = "adam"\n'
                 "lr = 0.01\nval_size = 20\n" + body)
    return load_experiment(str(p))


def _images(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 3, n)
    x = (rng.integers(0, 80, (n, 10, 10)) + 80 * y[:, None, None]).astype(np.uint8)
    return x, y


def test_user_model_and_hook_from_a_module_run_end_to_end(user_pkg, tmp_path):
    exp = _exp(tmp_path, 'dataset = "synthetic"\ntrain_size = 200\ntest_size = 100\n'
                         'model = "userpkg:tiny_net"\nmodel_args = { width = 6 }\n'
                         'hooks = [{ target = "userpkg:InvertHalf", args = { share = 0.25 } }]\n')
    out, res = run_experiment(exp, tmp_path / "r", quiet=True, workers=1)
    assert [r["status"] for r in res] == ["ok", "ok"]
    assert res[0]["params"] == 6 * 9 + 6 + 4 * 6 * 10 + 10  # the user's net, width 6
    rows = list(csv.DictReader(open(out / "runs" / "default" / "seed-0" / "metrics.csv")))
    # the hook ran on every batch: 5 of each of the 10 batches of 20 per epoch
    assert [int(r["inverted"]) for r in rows] == [50, 100]
    plan = json.loads((out / "config.json").read_text())["plan"]["arms"]["default"]
    assert plan["stack"] == 1 and "userpkg:InvertHalf (its hook does not stack)" in plan["why"]


def test_an_npz_and_an_image_folder_are_datasets(user_pkg, tmp_path):
    rng = np.random.default_rng(0)
    x, y = _images(300, rng)
    np.savez(tmp_path / "d.npz", x_train=x[:240], y_train=y[:240], x_test=x[240:],
             y_test=y[240:])
    for split, (xs, ys) in {"train": (x[:240], y[:240]), "test": (x[240:], y[240:])}.items():
        for i, (im, label) in enumerate(zip(xs, ys)):
            d = tmp_path / "imgs" / split / f"class{label}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(im).save(d / f"{i:04d}.png")  # sorted by name = by i
    results = {}
    for fmt, path in (("npz", tmp_path / "d.npz"), ("imagefolder", tmp_path / "imgs")):
        exp = _exp(tmp_path, f'dataset = {{ path = "{path}", format = "{fmt}" }}\n'
                             'model = "userpkg:tiny_net"\n')
        assert exp.arms["default"].dataset == f"{fmt}:{path.resolve()}"
        out, res = run_experiment(exp, tmp_path / fmt, quiet=True, workers=1)
        assert all(r["status"] == "ok" for r in res)
        assert json.loads((out / "config.json").read_text())["arms"]["default"]["dataset"] \
            == f"{fmt}:{path.resolve()}"
        results[fmt] = [r["test_acc"] for r in res]
    # three brightness classes: both learn them (well above chance, 1/3)
    assert min(results["npz"] + results["imagefolder"]) > 0.6
    from sharpen.data import load
    xi, yi = load(f"imagefolder:{(tmp_path / 'imgs').resolve()}", "train")
    assert xi.shape == (240, 1, 10, 10) and xi.dtype.is_floating_point is False
    order = np.argsort(y[:240], kind="stable")  # the folder reader goes class by class
    assert np.array_equal(xi[:, 0].numpy(), x[:240][order]) and np.array_equal(yi, y[:240][order])


@pytest.mark.parametrize("body,match", [
    ('model = "nopkg_here:Net"', r"field model: model 'nopkg_here:Net': importing module "
                                 r"'nopkg_here' failed \(ModuleNotFoundError"),
    ('model = "userpkg:nothing"', r"module 'userpkg' has no attribute 'nothing'"),
    ('model = "userpkg:USER_CODE_MISSING"', r"has no attribute"),
    ('model = "userpkg:wrong_shape"', r"gives output \(2, 3\) for a batch of shape \(2, 1, 28, 28\); "
                                      r"expected logits of shape \(2, 10\)"),
    ('hooks = [{ target = "userpkg:tiny_net" }]',
     r"field hooks\[0\]: userpkg:tiny_net built a Sequential; a hook must subclass"),
    ('hooks = [{ target = "userpkg:InvertHalf", args = { nope = 1 } }]',
     r"field hooks\[0\]: userpkg:InvertHalf\(\*\*\{'nope': 1\}\) failed"),
    ('dataset = { path = "/no/such.npz", format = "npz" }', r"/no/such.npz: no such .npz file"),
    ('dataset = { path = "x", format = "csv" }', r"dataset format must be 'npz' or 'imagefolder'"),
])
def test_user_code_errors_say_what_was_tried(user_pkg, tmp_path, body, match):
    with pytest.raises(SharpenError, match=match):
        _exp(tmp_path, ("" if body.startswith("dataset") else 'dataset = "mnist-sample"\n')
             + body + "\n")


TECHNIQUE_CODE = textwrap.dedent('''
    from pydantic import BaseModel, Field
    from sharpen.techniques import Technique

    class Brighten(Technique):
        name = "brighten"
        plan_columns = ("brighten",)

        class Config(BaseModel):
            brighten: float = Field(0.0, description="add this to every training pixel")

        def __init__(self, amount):
            self.amount = amount

        @classmethod
        def from_config(cls, cfg):
            return cls(cfg.brighten) if cfg.brighten else None

        def plan(self, epoch, epochs):
            return {"brighten": self.amount}

        def on_batch(self, state, x, y):
            return x + self.amount, y
''')


def _dist(root, entry_points: str) -> None:
    d = root / "userpkg_plugin-0.1.dist-info"
    d.mkdir()
    (d / "METADATA").write_text("Metadata-Version: 2.1\nName: userpkg-plugin\nVersion: 0.1\n")
    (d / "entry_points.txt").write_text(entry_points)


def test_installed_packages_register_models_and_techniques_by_entry_point(user_pkg):
    import subprocess
    import sys

    (user_pkg / "userpkg_tech.py").write_text(TECHNIQUE_CODE)
    _dist(user_pkg, "[sharpen.models]\nmini = userpkg:tiny_net\n\n"
                    "[sharpen.techniques]\nbrighten = userpkg_tech:Brighten\n")
    # a fresh interpreter, as a user's: the technique's key joins experiment files, its plan
    # joins `sharpen schedule`, and the model joins the registry
    code = ("from sharpen.experiments import RunConfig\n"
            "from sharpen.techniques import schedule_rows\n"
            "from sharpen.models import list_models, create_model\n"
            "c = RunConfig.model_validate({'dataset': 'synthetic', 'epochs': 2, 'brighten': 0.5,"
            " 'model': 'mini'})\n"
            "print(schedule_rows(c)[0]['brighten'], 'mini' in list_models(),"
            " type(create_model('mini')).__name__)\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(user_pkg)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0.5", "True", "Sequential"]


def test_worker_processes_import_the_users_module_as_it_is_now(user_pkg, tmp_path):
    """Workers fork from a fork server that preloaded sharpen, not the user's module: each
    pool's workers import it from the driver's sys.path as it is on disk, so a module edited
    between two runs in one process is not kept stale (and equals a one-process run)."""
    body = ('dataset = "synthetic"\ntrain_size = 100\ntest_size = 50\nstack_seeds = 1\n'
            'model = "userpkg:tiny_net"\n')
    _, alone = run_experiment(_exp(tmp_path, body), tmp_path / "one", quiet=True, workers=1)
    _, forked = run_experiment(_exp(tmp_path, body), tmp_path / "two", quiet=True, workers=2)
    keep = ("seed", "status", "test_acc", "train_loss", "params")
    assert [{k: r[k] for k in keep} for r in forked] == [{k: r[k] for k in keep} for r in alone]
    (user_pkg / "userpkg.py").write_text(USER_CODE.replace("width=4):", "width=5):  # wider"))
    _, edited = run_experiment(_exp(tmp_path, body), tmp_path / "three", quiet=True, workers=2)
    assert [r["params"] for r in edited] == [5 * 9 + 5 + 4 * 5 * 10 + 10] * 2
