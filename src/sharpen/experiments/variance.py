"""A variance study as an ordinary experiment (``sharpen variance EXP --arm A``).

One arm per source of randomness the studied arm draws from — its configuration with
``vary = [source]``: only that stream follows the seed, every other one is pinned — and
one arm ``all`` in which every stream follows the seed (``vary = "all"``). Each trains the
same n seeds into a normal run directory, so the runner plans, resumes and writes it like
any other experiment, and ``sharpen report`` rebuilds it; the directory's ``variance.json``
(:data:`sharpen.rundir.VARIANCE`) names the studied arm and the sources left out, and
:mod:`sharpen.reports.variance_study` adds the study's section and figure to the report.

A source the arm does not draw from gets no arm: its runs would all be the same run. Which
streams an arm draws from is read from its configuration (:func:`sources_of`), each left
out with the reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from torch import nn

from sharpen.errors import SharpenError
from sharpen.experiments.build import build_model
from sharpen.experiments.config import Experiment, RunConfig
from sharpen.experiments.runner import default_out_dir, run_experiment
from sharpen.io import check_writable
from sharpen.reports.variance import ALL
from sharpen.rundir import CHECKPOINT, CONFIG, RESULT, RunDir
from sharpen.techniques import Technique, schedule_rows, techniques_for
from sharpen.training.streams import STREAMS

# what each stream moves, in words (the report's "what varies" column)
SOURCE_LABELS = {
    "init": "model initialisation",
    "data_order": "order of the training images, each epoch",
    "dropout": "dropout masks",
    "split": "which training images are held out for validation (and the subset drawn)",
    "pairs": "which digit pairs make the training and test sets",
    "sharpen_mix": "which samples of a batch come from the blurred copy",
    "deblur": "the deblurring strength β per batch",
    "erasing": "random erasing's boxes and noise",
    "crop": "each image's crop window",
    "flip": "which images are flipped",
    "cutout": "each image's cutout patch",
    "mixup": "mixup's λ and partners",
    "cutmix": "cutmix's λ, box and partners",
    ALL: "every source at once",
}
# a technique whose stream is not named after it
_TECHNIQUE_STREAM = {"sharpening": "sharpen_mix"}
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d)


def _dropout_used(cfg: RunConfig) -> str | None:
    """None when the arm draws dropout masks, else why not."""
    model = build_model(cfg)
    layers = [m for m in model.modules() if isinstance(m, _DROPOUT)]
    if not layers:
        return f"model {cfg.model!r} has no dropout layer"
    if cfg.dropout is not None:  # a schedule sets every layer's rate per epoch
        if all(float(r.get("dropout", 0.0)) == 0.0 for r in schedule_rows(cfg)):
            return "the dropout schedule is 0 in every epoch"
        return None
    if all(m.p == 0 for m in layers):
        return "every dropout layer has rate 0"
    return None


def _technique_streams(cfg: RunConfig) -> dict[str, str | None]:
    """Stream → None for each enabled technique that draws from one, or why it does not."""
    out: dict[str, str | None] = {}
    for t in techniques_for(cfg):
        name = _TECHNIQUE_STREAM.get(getattr(t, "name", ""), getattr(t, "name", ""))
        if name not in STREAMS:
            continue
        if name == "sharpen_mix" and cfg.blur_mode != "mixed":
            out[name] = "sharpening is staged (whole epochs blurred): it draws nothing"
        elif isinstance(t, Technique) and t.idle(cfg.epochs):
            out[name] = f"{t.name} does nothing in this run (its plan is idle every epoch)"
        else:
            out[name] = None
    return out


def sources_of(cfg: RunConfig) -> tuple[list[str], dict[str, str]]:
    """The streams (in :data:`STREAMS` order) this configuration draws from, and every other
    known stream with why it is left out of a study."""
    why: dict[str, str | None] = {
        "init": None, "data_order": None,
        "split": None if cfg.val_size or (cfg.train_size is not None and cfg.pairs is None)
        else "no validation split and no training subset: every seed trains on all training "
             "images",
        "pairs": None if cfg.pairs is not None else "not a digit-pair task",
        "dropout": _dropout_used(cfg),
    }
    tech = _technique_streams(cfg)
    for s in STREAMS:
        if s not in why:
            why[s] = tech[s] if s in tech else "no technique of this arm draws from it"
    used = [s for s in STREAMS if why.get(s) is None]
    return used, {s: str(why[s]) for s in STREAMS if why.get(s) is not None}


def study_experiment(exp: Experiment, arm: str, seeds: int) -> tuple[Experiment, dict[str, Any]]:
    """The study of ``exp``'s arm ``arm`` over ``seeds`` seeds: the experiment to run and the
    record (``variance.json``) naming the arm, its sources and those left out."""
    if exp.cells:
        raise SharpenError(f"{exp.name}: a variance study runs one arm; this profile has a grid "
                           f"({', '.join(exp.grid)}): choose a profile without one")
    if arm not in exp.arms:
        raise SharpenError(f"--arm {arm!r}: no arm {arm!r} in {exp.name}; arms: "
                           f"{', '.join(exp.arms)}")
    if seeds < 2:
        raise SharpenError(f"--seeds {seeds}: a spread needs at least 2 seeds per source "
                           "(10 or more give a useful interval)")
    cfg = exp.arms[arm]
    if cfg.vary is not None:  # each arm of the study sets its own: the user's would be lost
        raise SharpenError(f"--arm {arm!r} sets vary = {cfg.vary!r} (in the file or by --set): "
                           "a variance study sets vary itself, one source per arm and all "
                           "together; leave vary out")
    used, left_out = sources_of(cfg)
    # pinned streams draw from a seed below the study's first: with pin_seed among the run
    # seeds, seed pin_seed of every source arm would be one and the same run (shared values
    # make the arms' spreads dependent, and cost k − 1 runs)
    base = {**cfg.model_dump(mode="json"), "pin_seed": exp.seed - 1}
    arms = {s: RunConfig.model_validate({**base, "vary": [s]}) for s in used}
    arms[ALL] = RunConfig.model_validate({**base, "vary": ALL})
    study = Experiment(
        name=f"{exp.name}-variance-{arm}",
        description=(f"Variance study of arm `{arm}` of `{exp.name}`: {seeds} seeds with one "
                     "source of randomness following the seed at a time (the others pinned), "
                     "and all of them together."),
        paper=exp.paper, notes="", runs=seeds, seed=exp.seed, arms=arms, source=exp.source,
        profile=exp.profile, baseline=ALL, arm_order=list(arms))
    record = {"experiment": exp.name, "profile": exp.profile, "arm": arm, "sources": used,
              "pin_seed": exp.seed - 1,
              "left_out": left_out,
              "labels": {s: SOURCE_LABELS.get(s, "") for s in [*used, ALL]}}
    return study, record


def run_study(exp: Experiment, arm: str, seeds: int, out: Path | None = None,
              **run_options: Any) -> tuple[Path, list[dict[str, Any]]]:
    """Train (or resume) the study of ``exp``'s ``arm`` into ``out`` (default
    runs/<study name>/<timestamp>) and write its report; ``run_options`` go to
    :func:`sharpen.experiments.runner.run_experiment` (quiet, workers, threads, command)."""
    study, record = study_experiment(exp, arm, seeds)
    out = Path(out) if out is not None else default_out_dir(study)
    rd = RunDir(out)
    old = rd.variance() if out.is_dir() else None
    if old is None and (out / CONFIG).is_file():
        raise SharpenError(f"{out} holds runs of another experiment, not a variance study; "
                           "give another --out")
    if old is not None and (old.get("experiment"), old.get("arm")) != (exp.name, arm):
        raise SharpenError(f"{out} holds the variance study of arm {old.get('arm')!r} of "
                           f"{old.get('experiment')!r}, not of arm {arm!r} of {exp.name!r}; "
                           "give another --out")
    made = not out.exists() or not any(out.iterdir())
    check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    rd.write_variance(record)  # before the runs: the report the runner writes reads it
    try:
        return run_experiment(study, out, **run_options)
    except SharpenError:
        if made and not rd.run_files(RESULT) and not rd.run_files(CHECKPOINT):
            shutil.rmtree(out, ignore_errors=True)  # nothing ran: no half-made directory
        raise
