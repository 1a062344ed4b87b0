"""Rebuild every finished folder's report in docs/results from its runs (after a change to
what reports print; tests/test_stats.py checks they are current)."""
from __future__ import annotations

import json
from pathlib import Path

from sharpen.reports import write_report

ROOT = Path(__file__).resolve().parents[1] / "docs" / "results"

for d in sorted(ROOT.iterdir()):
    if not ((d / "config.json").is_file() and (d / "report.md").is_file()):
        continue
    hist = json.loads((d / "history.json").read_text()) if (d / "history.json").exists() else []
    if hist and hist[-1].get("wall_s") is None:
        print(f"{d.name}: a run in progress, left as it is")
        continue
    write_report(d)
    print(f"{d.name}: rebuilt")
