"""Keys renamed since files and run directories were written: the old name still loads,
with a one-line notice, under the new one. "Seed" means a random seed only; the five
reports the bundled experiments reproduce are *papers*.

Applied where an experiment is read: an experiment file by
:mod:`sharpen.experiments.config.loading`, a run directory's config.json by
:meth:`sharpen.rundir.RunDir.config` (which every report reads it through). It sits on the
bottom floor beside :mod:`sharpen.rundir` so that the reports, below the experiments
package, read an old directory under the new names without an arrow back up."""

from __future__ import annotations

import sys
from typing import Any

# old key → new key, at the top of an experiment (file or config.json) and in each claim
EXPERIMENT = {"seed_paper": "paper"}
CLAIM = {"seed_says": "paper_says"}
_told: set[tuple[str, str]] = set()


def _notice(where: str, old: str, new: str) -> None:
    if (where, old) not in _told:  # once per file and key in a process
        _told.add((where, old))
        print(f"sharpen: {where}: key {old!r} is now called {new!r}; read as {new} "
              "(rename it to silence this notice)", file=sys.stderr, flush=True)


def upgrade_keys(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """``raw`` (an experiment file's table or a config.json) with every renamed key under its
    new name, in place; a notice names each old key found. Both names at once is an error
    for the caller's validation to report (the old one stays)."""
    for old, new in EXPERIMENT.items():
        if old in raw and new not in raw:
            raw[new] = raw.pop(old)
            _notice(where, old, new)
    for claim in raw.get("claims") or []:
        if isinstance(claim, dict):
            for old, new in CLAIM.items():
                if old in claim and new not in claim:
                    claim[new] = claim.pop(old)
                    _notice(where, f"claims.{old}", f"claims.{new}")
    return raw
