"""Adopt an experiment file's claims into a run directory made before the file had them."""

from __future__ import annotations

from pathlib import Path

from sharpen.errors import SharpenError
from sharpen.experiments.config import load_experiment
from sharpen.io import atomic_write_json
from sharpen.reports.sequential import check_bound
from sharpen.rundir import CONFIG, RunDir


def adopt_claims(run_dir: Path, experiment: str) -> None:
    """Record an experiment file's claims (baseline, published numbers and margin) in ``run_dir``'s
    config.json; the report is then rebuilt from the directory alone, as always."""
    exp = load_experiment(experiment)
    cfg = RunDir(run_dir).config()
    # another experiment's claims and published numbers (same arm names, another protocol)
    # would be judged on these runs without a word: only the directory's own are adopted
    if cfg.get("name") and cfg["name"] != exp.name:
        raise SharpenError(
            f"{run_dir} holds runs of another experiment (experiment {cfg['name']!r} → "
            f"{exp.name!r}): --claims-from adopts the claims of the directory's own "
            f"experiment file (name = {cfg['name']!r})")
    # a sequential design's claims stay as it bound them; a report adds no seeds, so the
    # file's `runs` is not asked about (look=True: the claims alone are checked)
    check_bound(Path(run_dir), exp, look=True)
    cfg["claims"] = [c.model_dump() for c in exp.claims]
    cfg["published_margin"] = exp.published_margin
    # the paper's numbers with what it states of them (runs, sd, rounding, protocol)
    cfg["published"] = exp.published
    cfg["published_grid"] = exp.published_grid
    cfg["published_protocol"] = exp.published_protocol
    if exp.baseline is not None:
        cfg["baseline"] = exp.baseline
    atomic_write_json(Path(run_dir) / CONFIG, cfg)
