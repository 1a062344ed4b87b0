"""Paper 004's adaptive learning rate: after an epoch whose training loss fell by less than
``lr_adaptive_threshold`` (3 %) of the epoch before's, that seed's learning rate is
multiplied by ``lr_adaptive_factor`` (halved). It acts per seed through the state's lr
scale, so stacked seeds each follow their own losses, as separate runs would."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from sharpen.techniques.base import Technique
from sharpen.training.loop import TrainState


def next_scale(scale: float, previous: float | None, loss: float, threshold: float,
               factor: float) -> float:
    """The lr scale after an epoch of training loss ``loss`` (``previous``: the epoch
    before's, None after the first): × factor when the loss improved by < threshold·previous."""
    if previous is not None and (previous - loss) < threshold * previous:
        return scale * factor
    return scale


class LrAdaptive(Technique):
    """Per seed, at each epoch's end: compare the epoch's training loss with the previous
    epoch's and lower that seed's ``state.lr_scale`` when it did not improve enough. The
    lr it trains with shows in every epoch's ``lr`` column (known only after training:
    ``sharpen schedule`` prints the schedule before any drop)."""

    name = "lr_adaptive"

    class Config(BaseModel):
        lr_adaptive: bool = Field(False,
            description="paper 004: halve the lr when the epoch loss improved by < threshold")
        lr_adaptive_threshold: float = Field(0.03, gt=0, lt=1,
            description="lr_adaptive: relative loss improvement below which the lr drops")
        lr_adaptive_factor: float = Field(0.5, gt=0, lt=1,
            description="lr_adaptive: factor applied to the lr when it drops")

    def __init__(self, threshold: float = 0.03, factor: float = 0.5):
        if not (0 < threshold < 1 and 0 < factor < 1):
            raise ValueError(f"threshold and factor must be in (0, 1), got {threshold}, {factor}")
        self.threshold, self.factor = threshold, factor
        self.previous: list[float | None] = []  # per seed: the last epoch's training loss

    @classmethod
    def from_config(cls, cfg: Any) -> LrAdaptive | None:
        return cls(cfg.lr_adaptive_threshold, cfg.lr_adaptive_factor) if cfg.lr_adaptive \
            else None

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        k = state.seed_index
        if len(self.previous) != state.n_seeds:
            self.previous = [None] * state.n_seeds
        loss = float(row["train_loss"])
        state.lr_scale[k] = next_scale(state.lr_scale[k], self.previous[k], loss,
                                       self.threshold, self.factor)
        self.previous[k] = loss
