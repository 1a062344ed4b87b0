"""Training loop, hooks, schedules and seeding."""

from sharpen.training.loop import (
    Diverged,
    Hook,
    Split,
    TrainData,
    TrainSettings,
    TrainState,
    evaluate,
    train,
)
from sharpen.training.schedules import as_schedule, check_schedule

__all__ = ["Diverged", "Hook", "Split", "TrainData", "TrainSettings", "TrainState", "evaluate",
           "train", "as_schedule", "check_schedule"]
