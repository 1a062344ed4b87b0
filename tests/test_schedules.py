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


def _lin(start, end, begin, length, t):  # the textbook ramp, written out
    return start + (end - start) * min(max((t - begin) / length, 0.0), 1.0)


def test_linear_cosine_step_with_a_begin_against_hand_formulas():
    E = 11
    lin = as_schedule({"kind": "linear", "start": 8.0, "end": 2.0, "begin": 3})
    assert lin.values(E) == pytest.approx([_lin(8, 2, 3, (E - 1) - 3, e) for e in range(E)])
    lin_p = as_schedule({"kind": "linear", "start": 1.0, "end": 3.0, "begin": 0.5,
                         "unit": "progress"})
    assert lin_p.values(E) == pytest.approx([_lin(1, 3, 0.5, 0.5, e / (E - 1)) for e in range(E)])
    assert as_schedule({"kind": "linear", "start": 5.0, "end": 1.0, "length": 1,
                        "begin": 2}).values(5) == pytest.approx([5, 5, 5, 1, 1])
    # a ramp that has no room left (begins at the last epoch) sits at its end value
    assert as_schedule({"kind": "linear", "start": 5.0, "end": 1.0, "begin": 4}).values(5)[-1] == 1.0
    assert as_schedule({"kind": "linear", "start": 5.0, "end": 1.0, "begin": 3}).values(5) == \
        pytest.approx([5, 5, 5, 5, 1])
    cos = as_schedule({"kind": "cosine", "start": 1.0, "end": 0.1, "begin": 2})
    L = E - 2  # PyTorch's T_max = epochs, counted from the begin
    want = [0.1 + 0.9 * (1 + math.cos(math.pi * min(max((e - 2) / L, 0), 1))) / 2 for e in range(E)]
    assert cos.values(E) == pytest.approx(want)
    cos_p = as_schedule({"kind": "cosine", "start": 1.0, "begin": 0.2, "unit": "progress"})
    want = [(1 + math.cos(math.pi * min(max((e / 10 - 0.2) / 0.8, 0), 1))) / 2 for e in range(E)]
    assert cos_p.values(E) == pytest.approx(want)
    late = as_schedule({"kind": "cosine", "start": 1.0, "end": 0.5, "begin": 12})  # no room
    assert late.values(E) == pytest.approx([0.5] * E)
    step = as_schedule({"kind": "step", "start": 10.0, "every": 3, "factor": 0.5, "delta": 1.0,
                        "begin": 2, "min": 2.0, "max": 9.0})
    ks = [max(0, math.floor((e - 2) / 3)) for e in range(E)]
    assert step.values(E) == pytest.approx([min(max(10 * 0.5**k + k, 2.0), 9.0) for k in ks])


def test_progress_units_in_a_one_epoch_run_are_at_the_end():
    # progress = epoch / (epochs − 1) is undefined for one epoch: the run is all "end"
    assert as_schedule({"kind": "linear", "start": 4.0, "end": 2.0,
                        "unit": "progress"}).values(1) == [2.0]
    assert as_schedule({"kind": "piecewise", "points": [(0.0, 1.0), (1.0, 7.0)],
                        "unit": "progress"}).values(1) == [7.0]
    assert as_schedule({"kind": "linear", "start": 4.0, "end": 2.0,
                        "unit": "progress"}).values(3) == pytest.approx([4.0, 3.0, 2.0])


def test_onecycle_in_progress_units_and_at_its_peak():
    oc = as_schedule({"kind": "onecycle", "peak": 1.0, "pct": 0.25, "unit": "progress"})
    lo, end = 1 / 25, 1 / 25e4

    def anneal(a, b, x):
        return b + (a - b) * (1 + math.cos(math.pi * x)) / 2

    want = [anneal(lo, 1.0, f / 0.25) if f <= 0.25 else anneal(1.0, end, (f - 0.25) / 0.75)
            for f in (e / 8 for e in range(9))]
    assert oc.values(9) == pytest.approx(want, rel=1e-12)
    assert oc.value(2, 9) == 1.0  # progress exactly pct: the peak, from the rising side


@pytest.mark.parametrize("kw,value,ok", [
    ({"lo": 0.0}, 0.0, True), ({"lo": 0.0, "lo_open": True}, 0.0, False),
    ({"lo": 0.0}, -1e-6, False), ({"lo": 0.5, "lo_open": True}, 0.5000001, True),
    ({"hi": 1.0}, 1.0, True), ({"hi": 1.0, "hi_open": True}, 1.0, False),
    ({"hi": 1.0}, 1.000001, False), ({"lo": 0.0, "hi": 1.0}, float("nan"), False),
])
def test_check_schedule_range_boundaries(kw, value, ok):
    if ok:
        check_schedule(value, "f", 3, **kw)
    else:
        with pytest.raises(SharpenError, match="outside the allowed range"):
            check_schedule(value, "f", 3, **kw)


def test_check_schedule_messages_name_the_range_the_epoch_and_the_end():
    with pytest.raises(SharpenError, match=r"^field 'p': value 1\.5 at epoch 1 is outside the "
                                           r"allowed range \(0\.0, 1\.0\)$"):
        check_schedule(1.5, "p", 3, lo=0.0, lo_open=True, hi=1.0, hi_open=True)
    with pytest.raises(SharpenError, match=r"allowed range \[-inf, 2\.0\]$"):
        check_schedule(3.0, "p", 3, hi=2.0)
    with pytest.raises(SharpenError, match=r"allowed range \[1\.0, inf\]$"):
        check_schedule(0.5, "p", 3, lo=1.0)
    step = {"kind": "step", "start": 4.0, "every": 1, "delta": 0.5}
    with pytest.raises(SharpenError, match=r"^field 's': value 4\.5 at epoch 2 must be an integer$"):
        check_schedule(step, "s", 3, integer=True)
    check_schedule({"kind": "step", "start": 4.0, "every": 1, "delta": 1.0}, "s", 3, integer=True)
    # a linear ramp between integers is allowed (it is rounded where used)
    check_schedule({"kind": "linear", "start": 4, "end": 9}, "s", 3, integer=True)
    with pytest.raises(SharpenError, match=r"schedule ends at progress 1\.5 but training ends "
                                           r"at progress 1;"):
        check_schedule({"kind": "linear", "start": 1, "end": 2, "length": 1.0, "begin": 0.5,
                        "unit": "progress"}, "s", 3)
    # ending exactly at the horizon is allowed, in both units
    check_schedule({"kind": "linear", "start": 1, "end": 2, "length": 3}, "s", 3)
    check_schedule({"kind": "linear", "start": 1, "end": 2, "length": 0.5, "begin": 0.5,
                    "unit": "progress"}, "s", 3)


def test_cosine_and_piecewise_spans_end_where_they_say():
    cos = {"kind": "cosine", "start": 1.0, "begin": 2, "length": 5}
    assert as_schedule(cos).end_point(10) == 7
    assert as_schedule({"kind": "cosine", "start": 1.0}).end_point(10) is None
    check_schedule(cos, "c", 7)
    with pytest.raises(SharpenError, match=r"field 'c': schedule ends at 7 epochs but training "
                                           r"has only 6"):
        check_schedule(cos, "c", 6)
    pw = {"kind": "piecewise", "points": [(0, 1.0), (4, 2.0)]}
    assert as_schedule(pw).end_point(10) == 4
    with pytest.raises(SharpenError, match="schedule ends at 4 epochs but training has only 3"):
        check_schedule(pw, "p", 3)


def test_progress_in_a_two_epoch_run_and_steps_in_progress_units():
    assert as_schedule({"kind": "linear", "start": 4.0, "end": 2.0,
                        "unit": "progress"}).values(2) == [4.0, 2.0]
    step = as_schedule({"kind": "step", "start": 1.0, "every": 0.25, "delta": 1.0,
                        "unit": "progress"})
    assert step.values(5) == [1.0, 2.0, 3.0, 4.0, 5.0]  # progress 0, .25, .5, .75, 1
    assert step.values(1) == [5.0]  # a one-epoch run is at progress 1


def test_cosine_with_its_own_length_and_one_that_begins_at_the_end():
    cos = as_schedule({"kind": "cosine", "start": 1.0, "end": 0.0, "begin": 2, "length": 5})
    want = [(1 + math.cos(math.pi * min(max((e - 2) / 5, 0), 1))) / 2 for e in range(11)]
    assert cos.values(11) == pytest.approx(want)  # held at its end after epoch 7
    at_end = as_schedule({"kind": "cosine", "start": 1.0, "end": 0.25, "begin": 11})
    assert at_end.values(11) == pytest.approx([0.25] * 11)  # no room: its end value


def test_a_piecewise_span_ends_at_its_last_point_of_many():
    pw = as_schedule({"kind": "piecewise", "points": [(0, 1.0), (2, 2.0), (5, 3.0)]})
    assert pw.end_point(10) == 5
