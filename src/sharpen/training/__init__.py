"""The training loop (one or many seeds), stacked models, random streams and schedules."""

from sharpen.training.checkpoint import Checkpoint
from sharpen.training.loop import (
    Diverged,
    Hook,
    Split,
    TrainData,
    Trained,
    TrainSettings,
    TrainState,
    build_models,
    evaluate,
    train,
)
from sharpen.training.schedules import as_schedule, check_schedule

__all__ = ["Checkpoint", "Diverged", "Hook", "Split", "TrainData", "TrainSettings",
           "TrainState", "Trained", "build_models", "evaluate", "train", "as_schedule",
           "check_schedule"]
