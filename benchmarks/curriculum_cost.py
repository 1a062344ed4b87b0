"""What the curricula add to an epoch, against a per-sample blur pipeline, in one run.

    python benchmarks/curriculum_cost.py [--dataset mnist-sample|cifar10] [--data-dir D]

Prints, for LeNet-5 + dropout on MNIST (and the seed-001 net on CIFAR-10 when given):
  * train-step time per epoch with sharp data (baseline, measured here),
  * epoch time with each curriculum and the fraction it adds over the baseline,
  * the data-side cost alone of our batched ops vs a per-sample pipeline that blurs each
    image separately (as a torch Dataset.__getitem__ transform does), and their ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from sharpen.data import get_spec, load
from sharpen.imageops import box_blur, gaussian_blur
from sharpen.models import create_model
from sharpen.techniques import ProgressiveResize, ProgressiveSharpening, RandomizedDeblur
from sharpen.training import Split, TrainData, TrainSettings, train


def epoch_time(model_name: str, data: TrainData, hooks: list, epochs: int, bs: int, **kw) -> float:
    torch.manual_seed(0)
    m = create_model(model_name, **kw)
    rows = train(m, data, TrainSettings(epochs=epochs, batch_size=bs, lr=0.01), 0, hooks).rows[0]
    # training part of each epoch (no evaluation), fastest epoch after the first (warm-up):
    # the minimum is the least disturbed by other load on the machine
    return min(len(data.train) / r["images_per_s"] for r in rows[1:])


def per_sample_cost(x: torch.Tensor, op, n: int) -> float:
    """Seconds per epoch of applying ``op`` image by image (a per-sample Dataset transform)."""
    t0 = time.perf_counter()
    for i in range(n):
        op(x[i:i + 1].float())
    return (time.perf_counter() - t0) * len(x) / n


def batched_cost(x: torch.Tensor, op, bs: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(x), bs):
        op(x[i:i + bs].float())
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="mnist-sample")
    ap.add_argument("--data-dir")
    ap.add_argument("--train-size", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    spec = get_spec(args.dataset)
    x, y = load(args.dataset, "train", root=args.data_dir, verify=False)
    x, y = x[: args.train_size], y[: args.train_size]
    xt, yt = load(args.dataset, "test", root=args.data_dir, verify=False)
    data = TrainData(Split(x, y), Split(xt[:1000], yt[:1000]), None, spec.mean, spec.std)
    cifar = spec.shape[0] == 3
    model = "nin_cifar" if cifar else "lenet5_dropout"
    bs = 128
    print(f"# {args.dataset}: {len(x)} train images, model {model}, batch {bs}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    arms = {
        "sharpening (box blur n=5, staged)": lambda: [ProgressiveSharpening(5)],
        "sharpening (mixed, 50 %)": lambda: [ProgressiveSharpening(5, mode="mixed", mix=0.5)],
        "deblur (σ=2, α=0.4)": lambda: [RandomizedDeblur(2.0, 0.4)],
    }
    if cifar:
        arms["deblur σ=2 α=0.4 at 32 px + resize to 24"] = lambda: [ProgressiveResize(24),
                                                                     RandomizedDeblur(2.0, 0.4)]
    # interleave repeats (baseline, arm, baseline, arm, ...) and keep each one's minimum
    times: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, hooks in {"baseline (sharp)": lambda: [], **arms}.items():
            t = epoch_time(model, data, hooks(), args.epochs, bs)
            times[name] = min(times.get(name, float("inf")), t)
    base = times["baseline (sharp)"]
    print("\n| arm | train s/epoch | added vs sharp baseline |\n|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {t:.3f} | {'–' if t is base else f'{100 * (t - base) / base:+.1f} %'} |")

    # data side alone: ours batched vs per-sample, for one epoch of images
    n_ps = min(len(x), 2000)
    print("\n| data-side op, one epoch | ours batched (s) | per-sample (s) | per-sample / ours | "
          "ours as % of train step |\n|---|---|---|---|---|")
    for name, op in [("box blur n=5", lambda t: box_blur(t, 5)),
                     ("gaussian σ=2", lambda t: gaussian_blur(t, 2.0))]:
        ours = batched_cost(x, op, bs)
        ps = per_sample_cost(x, op, n_ps)
        print(f"| {name} | {ours:.3f} | {ps:.3f} | {ps / ours:.1f}× | {100 * ours / base:.1f} % |")
    print("\n(staged sharpening computes the copy once per stage, so its per-epoch share is the "
          "box-blur row divided by the stage length; deblur blurs only a fraction α of batches.)")


if __name__ == "__main__":
    main()
