"""Twin runs: a group of seeds another arm of the same directory already trained as is.

A grid often holds an arm its keys do not touch: the baseline in every cell of a blur grid
carries the cell's ``blur_stages`` but has blurring off, so each cell would train the same
runs again and get the same numbers. Two arms are *twins* when their configurations agree
on every key except keys owned only by techniques that are off in both (never a trainer
key, even one a technique's Config re-declares). A group of seeds
is reused when its twin trained the very same group (same seeds, stacked the same way, with
the same threads): the plan fixes every choice that changes float rounding
(:mod:`sharpen.experiments.plan`), so training it again would repeat its numbers. The
twin's files are copied and its ``result.json`` relabelled with this arm and cell, plus
``twin_of`` naming the arm that trained it (tests/test_twins.py checks a copy against a
training, number for number).
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from sharpen.experiments import job
from sharpen.experiments.config import RunConfig
from sharpen.experiments.config.schema import TRAINER_KEYS
from sharpen.rundir import CHECKPOINT, FINISHED, RESULT, RunDir, checkpoint_path
from sharpen.techniques import TECHNIQUES, techniques_for

KEEP_OUT = (RESULT, CHECKPOINT)  # written last / a training's own state


def inert_keys(cfg: RunConfig) -> set[str]:
    """Keys of ``cfg`` that change nothing: keys no enabled part of training reads, i.e.
    owned by techniques that are off, not also owned by one that is on, and never a trainer
    key (a technique's Config may re-declare ``batch_size``: the trainer still reads it)."""
    on = {type(t) for t in techniques_for(cfg)}
    used = {k for cls in on if cls in TECHNIQUES for k in cls.Config.model_fields}
    off = {k for cls in TECHNIQUES if cls not in on for k in cls.Config.model_fields}
    return off - used - TRAINER_KEYS


def unused_key_warnings(arms: dict[str, Any], cells: dict[str, dict[str, Any]] | None = None
                        ) -> list[str]:
    """One line per arm that sets a key no enabled part of its training reads (``erase_p``
    without ``random_erasing``): such an arm trains exactly as if the key were unset, and
    would be copied from a twin, so a comparison with it reads "no difference" for a reason
    the user did not intend. A grid's axis values (``cells``) are set on every cell's arm by
    design and are not named."""
    default = RunConfig().model_dump(mode="json")
    owners = {k: [c.name or c.__name__ for c in TECHNIQUES if k in c.Config.model_fields]
              for cls in TECHNIQUES for k in cls.Config.model_fields}
    out = []
    for arm, cfg in arms.items():
        axes = set((cells or {}).get(arm, {}))
        data = cfg.model_dump(mode="json")
        unused = sorted(k for k in inert_keys(cfg)
                        if k not in axes and data.get(k) != default.get(k))
        if unused:
            said = ", ".join(f"{k} = {data[k]!r} ({' / '.join(owners.get(k, ['?']))} is off)"
                             for k in unused)
            out.append(f"arm {arm!r} sets {said}: nothing in its training reads it, so the arm "
                       "trains as if it were unset (turn its technique on, or drop the key)")
    return out


def twin_key(cfg: RunConfig, plan_entry: dict[str, Any], seeds: tuple[int, ...]) -> str:
    """Equal keys, equal runs: the configuration without its inert keys, the group's seeds
    and how the plan trains them."""
    data = cfg.model_dump(mode="json")
    for k in inert_keys(cfg):
        data.pop(k, None)
    return json.dumps({"config": data, "seeds": list(seeds), "stack": plan_entry["stack"],
                       "threads": plan_entry["threads"]}, sort_keys=True)


def trained_group(rd: RunDir, arm: str, seeds: tuple[int, ...]) -> bool:
    """Every seed of the group finished in ``arm``, and trained as this very group."""
    for s in seeds:
        r = rd.run(arm, s)
        if r is None or r.status not in FINISHED or "twin_of" in r.result:
            return False
        if list((r.result.get("plan") or {}).get("group") or []) != list(seeds):
            return False
    return True


def copy_run(rd: RunDir, src_arm: str, arm: str, seed: int, cell: dict[str, Any] | None
             ) -> dict[str, Any]:
    """The twin's run of ``seed`` as ``arm``'s: its files, then its result relabelled."""
    src, dst = rd.seed_dir(src_arm, seed), rd.seed_dir(arm, seed)
    dst.mkdir(parents=True, exist_ok=True)
    checkpoint_path(dst).unlink(missing_ok=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name not in KEEP_OUT:
            tmp = dst / f".{f.name}.tmp"
            shutil.copyfile(f, tmp)
            tmp.replace(dst / f.name)
    res = json.loads((src / RESULT).read_text())
    for k in [k for k in res if k == "base_arm" or k.startswith("grid_")]:
        del res[k]  # the twin's cell; this arm's is written by record()
    res["twin_of"] = src_arm
    job.record(res, arm, cell, dst)  # result.json last: its presence marks the run finished
    return res


def find_twin(rd: RunDir, key: str, arm: str, seeds: tuple[int, ...],
              keys: dict[str, Any]) -> str | None:
    """An arm other than ``arm`` whose twin key for this group is ``key`` and that trained it.
    ``keys``: arm → a function of the seeds giving that arm's twin key."""
    for other, key_of in keys.items():
        if other != arm and key_of(seeds) == key and trained_group(rd, other, seeds):
            return other
    return None


__all__ = ["inert_keys", "unused_key_warnings", "twin_key", "trained_group", "copy_run", "find_twin"]
