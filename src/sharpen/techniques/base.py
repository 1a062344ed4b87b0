"""A technique: config fields, their validation, whether it stacks, and its per-epoch plan.

A technique is a :class:`~sharpen.training.loop.Hook` that also owns its part of the
experiment file. ``Config`` declares its keys (pydantic fields, merged into ``RunConfig``);
``from_config`` builds it (or returns None when the config leaves it off); ``check``
validates its keys against the run (naming the field); ``prepare_model`` may change the
model as it is built (BlurPool); ``plan(epoch, epochs)`` gives the
values it applies in an epoch — the hook applies exactly that plan, writes it into the
epoch's metrics row, and ``sharpen schedule`` prints it, so the three cannot drift apart.
``stacks`` says whether it serves several seeds trained as one stacked model.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel
from torch import nn

from sharpen.training.loop import Hook


class Technique(Hook):
    name: ClassVar[str] = ""
    stacks: ClassVar[bool] = True
    # columns of the per-epoch plan, in the order `sharpen schedule` prints them
    plan_columns: ClassVar[tuple[str, ...]] = ()

    class Config(BaseModel):
        """The experiment-file keys this technique owns."""

    @classmethod
    def from_config(cls, cfg: Any) -> Technique | None:
        """The technique a run configuration asks for, or None when it is off."""
        raise NotImplementedError

    @classmethod
    def check(cls, cfg: Any, where: str, side: int) -> None:
        """Raise SharpenError naming ``{where}field`` when a key is out of range for the run."""

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Change the model as it is built, before stacking (default: unchanged)."""
        return model

    def plan(self, epoch: int, epochs: int) -> dict[str, Any]:
        """The values this technique applies in ``epoch`` (0-based), by plan column."""
        return {}

    def on_epoch_start(self, state: Any) -> None:
        """Record this epoch's plan in the metrics rows (per-step schedules: its start)."""
        state.extra.update(self.plan(state.epoch, state.epochs))
