"""torch.compile (inductor, CPU) against eager for the stacked training step that the
trainer runs (10 LeNet-5 seeds, batch 128, Adam, one thread): compile time, then
ms per step in alternating blocks, and whether the compiled step gives every seed the same
bits as eager (a compiled kernel may fuse across the seeds' rows).

    python tools/trial_compile.py OUT.json
"""
from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from sharpen.experiments.build import input_shape, model_factory
from sharpen.experiments.config import RunConfig
from sharpen.experiments.stack_timing import _total
from sharpen.machine import describe
from sharpen.training import TrainSettings, build_models
from sharpen.training.loop import make_optimizer, stacked_for_training
from sharpen.training.stack import seed_state_dict

SEEDS, BLOCK, BLOCKS = 10, 10, 4


def _built(cfg: RunConfig, s: TrainSettings, seeds: int = SEEDS):  # noqa: ANN202
    m = stacked_for_training(build_models(model_factory(cfg), list(range(seeds))), s)
    return m, make_optimizer(m, s)


def main() -> None:
    torch.set_num_threads(1)
    # no dropout: eager and compiled would draw different masks, and the bits could not match
    cfg = RunConfig(model="lenet5", dataset="mnist-sample", batch_size=128, optimizer="adam",
                    lr=1e-3)
    s = TrainSettings.from_config(cfg)
    x = torch.randn(SEEDS * cfg.batch_size, *input_shape(cfg),
                    generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    (em, eopt), (cm, copt) = _built(cfg, s), _built(cfg, s)
    compiled = torch.compile(cm)

    def step(f, opt) -> torch.Tensor:  # noqa: ANN001
        opt.zero_grad(set_to_none=True)
        loss = _total(f(x))
        loss.backward()
        opt.step()
        return loss.detach()

    t0 = time.perf_counter()
    step(compiled, copt)
    compile_s = time.perf_counter() - t0
    step(em, eopt)
    same = [bool(torch.equal(a, b)) for a, b in zip(em.parameters(), cm.parameters())]
    # seed 0 compiled alone (its own compiled graph, E = 1) against seed 0 of the stack
    am, aopt = _built(cfg, s, 1)
    alone = torch.compile(am)
    aopt.zero_grad(set_to_none=True)
    _total(alone(x[:cfg.batch_size])).backward()
    aopt.step()
    ref, mine = seed_state_dict(cm, 0), seed_state_dict(am, 0)
    partners = all(torch.equal(ref[k], mine[k]) for k in ref)
    ms: dict[str, list[float]] = {"eager": [], "compiled": []}
    for b in range(BLOCKS):
        for name, f, opt in ((("eager", em, eopt), ("compiled", compiled, copt))[::1 - 2 * (b % 2)]):
            t0 = time.perf_counter()
            for _ in range(BLOCK):
                step(f, opt)
            ms[name].append(round(1000 * (time.perf_counter() - t0) / BLOCK, 2))
    med = {k: statistics.median(v) for k, v in ms.items()}
    res = {"command": " ".join(["python"] + sys.argv), "machine": describe(),
           "python": platform.python_version(), "torch": torch.__version__, "seeds": SEEDS,
           "batch": cfg.batch_size, "compile_and_first_step_s": round(compile_s, 1),
           "ms_per_step": ms, "median_ms": med, "speedup": med["eager"] / med["compiled"],
           "steps_to_repay_compile": (compile_s * 1000 / (med["eager"] - med["compiled"])
                                      if med["eager"] > med["compiled"] else None),
           "first_step_weights_bitwise_equal": all(same),
           "seed0_compiled_alone_equals_seed0_compiled_in_stack": partners}
    Path(sys.argv[1]).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: res[k] for k in ("compile_and_first_step_s", "median_ms", "speedup",
                                           "first_step_weights_bitwise_equal",
                                           "seed0_compiled_alone_equals_seed0_compiled_in_stack")}))


if __name__ == "__main__":
    main()
