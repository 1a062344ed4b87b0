"""A technique: config fields, their validation, whether it stacks, and its per-epoch plan.

A technique is a :class:`~sharpen.training.loop.Hook` that also owns its part of the
experiment file. ``Config`` declares its keys (pydantic fields, merged into ``RunConfig``);
``from_config`` builds it (or returns None when the config leaves it off); ``check``
validates its keys against the run (naming the field); ``prepare_model`` may change the
model as it is built (BlurPool); ``plan(epoch, epochs)`` gives the
values it applies in an epoch — the hook applies exactly that plan, writes it into the
epoch's metrics row, and ``sharpen schedule`` prints it, so the three cannot drift apart.
``stacks`` says whether it serves several seeds trained as one stacked model.

A technique also owns what it leaves behind: ``run_files`` it writes into each run's folder
(:meth:`write_run_files`), and ``stage_columns``, the plan columns whose change starts a new
curriculum stage (the report's stage-jump table and the curriculum figures read them). Its
figures it declares, and :mod:`sharpen.reports` draws them from the run directory (a
technique never draws: reports sit a floor above techniques): ``run_figure``, panels of one
of its run files, and ``data_figure``, example images under the plans, whose pixels
:meth:`figure_images` computes and the runner writes beside the figure as ``<name>.npz``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, Field
from torch import nn

from sharpen.training.loop import Hook


class BlurPadding(BaseModel):
    """The key the blur curricula share (sharpening's box blur, deblur's Gaussian): one
    field, declared once, that both techniques' configs include."""

    padding: Literal["reflect", "replicate", "zeros", "circular"] = Field("reflect",
        description="padding of the blur filters: reflect, replicate, zeros or circular")


@dataclass(frozen=True)
class RunFigure:
    """A figure of one of a technique's run files, one panel per arm (its first seed with
    the file): ``y`` against the integer column ``x``, one line per value of the integer
    column ``lines`` (labelled "<lines> <value>"); drawn as ``png`` (and a PDF beside it)
    under the report heading ``heading``."""

    file: str
    x: str
    y: str
    lines: str
    png: str
    heading: str
    alt: str
    xlabel: str
    ylabel: str
    log_y: bool = False


class Technique(Hook):
    name: ClassVar[str] = ""
    stacks: ClassVar[bool] = True
    # columns of the per-epoch plan, in the order `sharpen schedule` prints them
    plan_columns: ClassVar[tuple[str, ...]] = ()
    # plan column → the value at which an epoch is left unchanged (blur_n 1, a probability 0)
    idle_at: ClassVar[dict[str, Any]] = {}
    # plan columns whose change starts a new stage of a curriculum (blur_n 5 → 3); when an
    # arm runs several curricula, the lowest stage_rank names its stages
    stage_columns: ClassVar[tuple[str, ...]] = ()
    stage_rank: ClassVar[int] = 0
    # files it writes into each run's folder (runs/<arm>/seed-<s>/)
    run_files: ClassVar[tuple[str, ...]] = ()
    # a figure of example training images under the experiment's plans, drawn into the run
    # directory when it starts from the images of figure_images: (file name, the report's
    # heading for it)
    data_figure: ClassVar[tuple[str, str] | None] = None
    # a figure of its run files the report draws (gradient flow's panels)
    run_figure: ClassVar[RunFigure | None] = None

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

    def write_run_files(self, seed_index: int, run_dir: Path) -> None:
        """After training: write this technique's ``run_files`` for one seed of the group."""

    @classmethod
    def data_figure_npz(cls) -> str:
        """The file of ``data_figure``'s images, beside it: ``blur_strip.png`` → ``.npz``."""
        assert cls.data_figure is not None
        return str(Path(cls.data_figure[0]).with_suffix(".npz"))

    @classmethod
    def figure_images(cls, images: torch.Tensor, plans: dict[str, list[dict[str, Any]]],
                      cfg: Any) -> tuple[list[str], torch.Tensor] | None:
        """The columns of ``data_figure`` for ``images`` (uint8 N×C×H×W, one per class) under
        every arm's per-epoch plan (``sharpen schedule``'s rows): each column's title, and
        the images under each as one float tensor (columns × N × C × H × W, in 0..255);
        None when no plan uses it."""
        return None

    def idle(self, epochs: int) -> list[str]:
        """The plan columns that leave *every* epoch of the run unchanged (e.g. a blur_n
        5 → 1 schedule over a 1-epoch run is 1 from the start); empty when it acts."""
        if not self.idle_at or epochs < 1:
            return []
        plans = [self.plan(e, epochs) for e in range(epochs)]
        if not all(any(p.get(k) == v for k, v in self.idle_at.items()) for p in plans):
            return []
        return [k for k, v in self.idle_at.items() if all(p.get(k) == v for p in plans)] or \
            list(self.idle_at)

    def on_epoch_start(self, state: Any) -> None:
        """Record this epoch's plan in the metrics rows (per-step schedules: its start)."""
        state.extra.update(self.plan(state.epoch, state.epochs))
