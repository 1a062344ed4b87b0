"""Experiment files, the execution plan, jobs, backends and run directories."""

from sharpen.experiments.config import Experiment, RunConfig, list_bundled, load_experiment
from sharpen.experiments.runner import run_experiment

__all__ = ["Experiment", "RunConfig", "list_bundled", "load_experiment", "run_experiment"]
