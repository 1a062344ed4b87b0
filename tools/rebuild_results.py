"""Rebuild every finished folder's report in docs/results from its runs (after a change to
what reports print; tests/test_stats.py checks they are current), then the summary of every
verdict (issue 37): docs/results/summary.png and .pdf, the compact table spliced into
README.md between the SUMMARY markers, and every claim and cell into docs/results/README.md
(tests/test_summary.py checks both against the folders).

    python tools/rebuild_results.py                  # reports, then the summary
    python tools/rebuild_results.py --summary-only   # the summary alone
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from sharpen.reports import write_report
from sharpen.reports.figures import save_figure
from sharpen.reports.summary import (
    SummaryRow,
    arrange,
    folder_rows,
    summary_figure,
    summary_table,
)

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "docs" / "results"
README = REPO / "README.md"
RESULTS_README = ROOT / "README.md"
FIGURE = ROOT / "summary.png"
START, END = "<!-- SUMMARY:START (tools/rebuild_results.py) -->", "<!-- SUMMARY:END -->"
# the reproductions the README's summary shows (quick profiles and the 2-epoch slice are
# smoke checks, not reproductions: they are in docs/results/README.md's table with the rest)
HEADLINE = ["pairs-sublenet-full", "pairs-sublenet-full-vary-all", "pairs-sublenet-lr-grid",
            "pairs-sublenet-batch-grid",
            "pairs-direct-shres-full", "sharpening-mnist-10seeds", "sharpening-mnist-10seeds-splits",
            "sharpening-fashion-mnist-10seeds", "sharpening-map-mnist",
            "sharpening-map-fashion-mnist", "vgg-cifar10-cpu", "deblur-cifar10-5orders",
            "deblur-map-cifar10", "techniques-cifar10-quick"]


def finished(root: Path = ROOT) -> list[Path]:
    """The run directories of docs/results with a report, less any run in progress."""
    out = []
    for d in sorted(root.iterdir()):
        if not ((d / "config.json").is_file() and (d / "report.md").is_file()):
            continue
        hist = json.loads((d / "history.json").read_text()) if (d / "history.json").exists() else []
        if hist and hist[-1].get("wall_s") is None:
            print(f"{d.name}: a run in progress, left as it is")
            continue
        out.append(d)
    return out


def splice(text: str, table: str, where: Path) -> str:
    """``text`` with the table between the markers (which must be there, once each)."""
    if text.count(START) != 1 or text.count(END) != 1:
        raise SystemExit(f"{where}: needs the lines {START!r} and {END!r} once each")
    head, rest = text.split(START)
    return f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}"


def write_all(dirs: list[Path]) -> None:
    rows = [r for d in dirs for r in folder_rows(d)]  # each folder judged once
    short, full, headline = tables(rows, [d.name for d in dirs])
    save_figure(summary_figure(headline), FIGURE, dpi=100)
    README.write_text(splice(README.read_text(), short, README))
    RESULTS_README.write_text(splice(RESULTS_README.read_text(), full, RESULTS_README))
    print(f"summary: {FIGURE.relative_to(REPO)}, README.md, docs/results/README.md")


def tables(rows: list[SummaryRow], folders: list[str]) -> tuple[str, str, list[SummaryRow]]:
    """The README's table (the headline folders, a grid's claim in one row),
    docs/results/README.md's (every folder, every cell), links relative to each file; and
    the headline rows (the figure's)."""
    headline = arrange(rows, [n for n in HEADLINE if n in folders])
    return (summary_table(headline, REPO), summary_table(arrange(rows, folders), ROOT, cells=True),
            headline)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--summary-only", action="store_true", help="leave the reports as they are")
    a = p.parse_args()
    dirs = finished()
    if not a.summary_only:
        for d in dirs:
            write_report(d)
            print(f"{d.name}: rebuilt")
    write_all(dirs)


if __name__ == "__main__":
    main()
