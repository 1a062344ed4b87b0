"""What the sequential design costs and saves, by simulation (docs/methods/statistics.md
quotes it): for looks every 5 seeds up to 20, per claim level α/m, the rejection rate and
mean seeds used under no effect and under true effects d_z (mean / sd of the per-seed
differences), beside the fixed-n paired t-test at 20 seeds.

    python tools/sequential_cost.py   # writes docs/results/sequential-cost.json
"""
from __future__ import annotations

from pathlib import Path

from statsmodels.stats.power import TTestPower

from sharpen.io import atomic_write_json
from sharpen.reports.sequential import SequentialPlan, simulate_error

LOOKS = [5, 10, 15, 20]
OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "sequential-cost.json"


def main() -> None:
    rows = []
    for m in (1, 3):
        level = 0.05 / m
        plan = SequentialPlan.make(LOOKS, level, 1)
        for dz in (0.0, 0.5, 0.8, 1.0, 1.5):
            r = simulate_error(LOOKS, level, effect=dz, reps=4000, seed=11)
            fixed = level if dz == 0 else float(TTestPower().power(dz, LOOKS[-1], level))
            rows.append({"claims": m, "level": level, "dz": dz, "rejected": r["rejected"],
                         "mean_n": r["mean_n"], "fixed_n": LOOKS[-1], "fixed_power": fixed,
                         "boundaries": plan.boundaries, "nominal_p": plan.nominal})
            print(f"m={m} dz={dz}: sequential {r['rejected']:.3f} at mean n {r['mean_n']:.1f}; "
                  f"fixed n=20 {fixed:.3f}")
    atomic_write_json(OUT, {"looks": LOOKS, "reps": 4000, "seed": 11, "rows": rows})


if __name__ == "__main__":
    main()
