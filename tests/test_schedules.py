from __future__ import annotations

import math

import pytest

from sharpen import SharpenError
from sharpen.training.schedules import as_schedule, check_schedule


def test_constant_from_number():
    assert as_schedule(0.1).values(3) == [0.1, 0.1, 0.1]


def test_linear_over_whole_run_is_algorithm_1():
    s = as_schedule({"kind": "linear", "start": 24, "end": 32})
    n = 5
    assert s.values(n) == pytest.approx([24 + 8 * i / (n - 1) for i in range(n)])


def test_step_additive_and_multiplicative_with_caps():
    size = as_schedule({"kind": "step", "start": 24, "delta": 2, "every": 2, "max": 32})
    assert size.values(15) == [24, 24, 26, 26, 28, 28, 30, 30, 32, 32, 32, 32, 32, 32, 32]
    lr = as_schedule({"kind": "step", "start": 0.01, "factor": 0.9, "every": 2})
    assert lr.values(5) == pytest.approx([0.01, 0.01, 0.009, 0.009, 0.0081])
    sigma = as_schedule({"kind": "step", "start": 2, "delta": -0.5, "every": 2, "min": 0})
    assert sigma.values(10) == [2, 2, 1.5, 1.5, 1, 1, 0.5, 0.5, 0, 0]


def test_cosine_matches_pytorch_annealing():
    import torch

    s = as_schedule({"kind": "cosine", "start": 1e-3, "end": 2e-5})
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100, eta_min=2e-5)
    ref = []
    for _ in range(100):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert s.values(100) == pytest.approx(ref, rel=1e-9)


def test_piecewise_and_progress_unit():
    s = as_schedule({"kind": "piecewise", "points": [[0, 1.0], [2, 0.5], [4, 0.1]]})
    assert s.values(6) == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    s = as_schedule({"kind": "piecewise", "points": [[0, 0], [1, 1]], "interpolate": True,
                     "unit": "progress"})
    assert s.values(5) == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    c = as_schedule({"kind": "cosine", "start": 1, "end": 0, "unit": "progress"})
    assert c.value(0, 11) == 1 and c.value(10, 11) == pytest.approx(0)
    assert c.value(5, 11) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_invalid_schedules_name_the_field():
    with pytest.raises(SharpenError, match=r"field 'blur_p'.*outside the allowed range"):
        check_schedule({"kind": "linear", "start": 0.2, "end": 1.4}, "blur_p", 10, lo=0, hi=1)
    with pytest.raises(SharpenError, match=r"field 'sigma'.*-0.5 at epoch"):
        check_schedule({"kind": "step", "start": 1, "delta": -0.5, "every": 1}, "sigma", 5, lo=0)
    with pytest.raises(SharpenError, match=r"field 'lr'.*ends at 20.*only 10"):
        check_schedule({"kind": "linear", "start": 1, "end": 0, "length": 20}, "lr", 10, lo=0)
    check_schedule({"kind": "step", "start": 2, "delta": -0.5, "every": 2, "min": 0}, "sigma", 15, lo=0)


def test_piecewise_against_numpy_interp_and_a_held_step_function():
    import numpy as np

    pts = [(2.0, 10.0), (6.0, 2.0), (10.0, 4.0)]  # values larger than positions, gaps ≠ 1
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    lin = as_schedule({"kind": "piecewise", "points": pts, "interpolate": True})
    held = as_schedule({"kind": "piecewise", "points": pts})
    for t in [e / 4 for e in range(0, 13 * 4)]:  # fractional epochs too (per-step schedules)
        assert lin.value(t, 13) == pytest.approx(float(np.interp(t, xs, ys)), abs=1e-12), t
        want = ys[0] if t < xs[0] else ys[max(i for i, x in enumerate(xs) if x <= t)]
        assert held.value(t, 13) == want, t
    prog = as_schedule({"kind": "piecewise", "points": [(0.25, 1.0), (0.75, 3.0)],
                        "interpolate": True, "unit": "progress"})
    # progress = epoch / (epochs − 1): epoch 4 of 9 is the middle
    assert prog.values(9) == pytest.approx([1.0, 1.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0, 3.0])
