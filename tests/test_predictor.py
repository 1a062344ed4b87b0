"""``sharpen.load_predictor``: a trained run as one call from uint8 images to classes, with
the run's own preprocessing saved beside its weights."""

from __future__ import annotations

import json

import pytest
import torch

import sharpen
from sharpen import SharpenError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from sharpen.experiments import load_experiment, run_experiment

    # the bundled real MNIST sample: its mean and std are far from 0.5, so a predictor that
    # skipped or guessed the normalisation would lose accuracy
    exp = load_experiment("quickstart", "smoke", ["save_weights=final", "epochs=2"], 1)
    out, results = run_experiment(exp, tmp_path_factory.mktemp("p") / "r", quiet=True)
    return out, results


def _test_split(out, arm):
    from sharpen.data.prepare import build_data
    from sharpen.experiments.config import RunConfig

    cfg = RunConfig.model_validate(json.loads((out / "config.json").read_text())["arms"][arm])
    return build_data(cfg, torch.device("cpu"), 0).test


def test_the_predictor_reproduces_the_recorded_test_accuracy_from_uint8_images(run):
    out, results = run
    for r in results:
        test = _test_split(out, r["arm"])
        assert test.x.dtype == torch.uint8
        pred = sharpen.load_predictor(out / "runs" / r["arm"] / "seed-0")
        acc = int((pred(test.x) == test.y).sum()) / len(test.y)
        assert acc == pytest.approx(r["test_acc"], abs=1e-9)
        # one channel may come without its axis
        assert torch.equal(pred(test.x[:, 0][:50]), pred(test.x[:50]))
        # the stored preprocessing is the training split's, not /255
        saved = torch.load(out / "runs" / r["arm"] / "seed-0" / "weights.pt", weights_only=True)
        assert saved["mean"][0] == pytest.approx(0.13, abs=0.02)


def test_floats_in_0_1_and_wrong_shapes_are_refused(run):
    out, results = run
    pred = sharpen.load_predictor(out / "runs" / results[0]["arm"] / "seed-0")
    with pytest.raises(SharpenError, match="floats in 0..1"):
        pred(torch.rand(4, 1, 28, 28))
    with pytest.raises(SharpenError, match=r"expected N×1×28×28"):
        pred(torch.zeros(4, 3, 28, 28, dtype=torch.uint8))
    # another size: one line (it was torch's 'mat1 and mat2 shapes cannot be multiplied')
    for x in (torch.zeros(4, 32, 32, dtype=torch.uint8), torch.zeros(4, 1, 32, 32)):
        with pytest.raises(SharpenError, match=(
                r"^images of shape \(4, 1, 32, 32\): expected N×1×28×28 uint8 \(0..255\), as "
                "the run's dataset gave them$")):
            pred(x + 7)
    with pytest.raises(SharpenError, match=r"^no images given \(N = 0\)$"):
        pred(torch.zeros(0, 28, 28, dtype=torch.uint8))


def test_a_run_directory_lists_its_seed_folders(run):
    out, _ = run
    with pytest.raises(SharpenError, match=r"is a run directory; give one of its seed folders: "
                                           r".*runs/lenet5/seed-0"):
        sharpen.load_predictor(out)


def test_a_cut_weights_file_is_one_line_naming_it_and_what_to_do(run, tmp_path):
    import shutil

    out, _ = run
    copy = tmp_path / "r"
    shutil.copytree(out, copy)
    w = copy / "runs" / "lenet5" / "seed-0" / "weights.pt"
    w.write_bytes(w.read_bytes()[:500])  # an interrupted copy
    for load in (sharpen.load_predictor, sharpen.load_model):
        with pytest.raises(SharpenError) as e:  # was torch's RuntimeError (PytorchStreamReader)
            load(w.parent)
        msg = str(e.value)
        assert msg.startswith(f"{w}: cannot be read (PytorchStreamReader failed reading zip")
        assert "\n" not in msg and "delete the folder" in msg and "same --out" in msg


@pytest.fixture(scope="module")
def pairs_run(tmp_path_factory):
    from sharpen.experiments import load_experiment, run_experiment

    exp = load_experiment("pairs-direct-shres", "smoke",
                          ["select_arms='direct_alws'", "save_weights=final", "epochs=3"])
    return run_experiment(exp, tmp_path_factory.mktemp("pairs") / "r", quiet=True)


def test_a_pair_run_predicts_digit_pairs_and_reproduces_its_recorded_accuracy(pairs_run):
    import torch.nn.functional as F

    from sharpen.data.prepare import build_data, load_cached
    from sharpen.experiments.config import RunConfig

    out, results = pairs_run
    cfg = RunConfig.model_validate(json.loads((out / "config.json").read_text())["arms"]
                                   ["direct_alws"])
    pred = sharpen.load_predictor(out / "runs" / "direct_alws" / "seed-0")  # refused N×2 inputs
    test = build_data(cfg, torch.device("cpu"), 0).test  # the run's own test pairs, N×2×14×14
    acc = int((pred(test.x) == test.y[:, 0]).sum()) / len(test.y)
    assert acc == pytest.approx(results[0]["test_acc"], abs=1e-9)
    # two raw 28×28 digits per pair are pooled as the run's pairs were
    x, y = load_cached(cfg, "test")
    raw = x[:400].view(200, 2, 28, 28)
    got = pred(raw)
    assert torch.equal(got, pred(F.avg_pool2d(raw.float(), 2)))
    # by hand: the model on the pooled pair, normalised with the stored train-pair mean/std
    saved = torch.load(out / "runs" / "direct_alws" / "seed-0" / "weights.pt", weights_only=True)
    model = sharpen.load_model(out / "runs" / "direct_alws" / "seed-0")
    hand = (F.avg_pool2d(raw.float(), 2) - 255 * saved["mean"][0]) / (255 * saved["std"][0])
    with torch.no_grad():
        assert torch.equal(got, pred.task.predict(model(hand)))
    with pytest.raises(SharpenError, match=r"expected N×2×28×28 \(two digits per pair"):
        pred(x[:10])  # single digits are not pairs
