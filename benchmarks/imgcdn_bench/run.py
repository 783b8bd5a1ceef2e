"""Run every benchmark row and regenerate `docs/benchmarks.md` (see `benchmarks/run.sh`).

Rows (the issue's numbering): 1 one transform per job against the peers; 2 the standard set;
3 fallback overhead; 4 cold start and bundle sizes; 5 the CloudFront Function; 6 the local
stack under load; 7 concurrency. Plus the tuning knobs, the stage profile and the simulator.
A row whose piece does not exist yet prints "not available: <why>" and the report says so.

Each row is its own module (`row1` ... `row7`, `tuning`, `profile`, `simulator`), over
`harness` (what they share); `report` writes the document. This module picks the rows and
runs them.
"""

# ruff: noqa: T201 - a harness: it runs its own tools with fixed argv,
# opens loopback URLs only, draws traces from a seeded PRNG and prints its results.

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from imgcdn_bench import corpus
from imgcdn_bench.cells import OUT, ROOT
from imgcdn_bench.harness import DOC, QUICK_IMAGES, RAW, Run, Target, table, verdict
from imgcdn_bench.profile import stage_profile
from imgcdn_bench.report import render
from imgcdn_bench.row1 import row1
from imgcdn_bench.row2 import row2
from imgcdn_bench.row3 import row3
from imgcdn_bench.row4 import row4
from imgcdn_bench.row5 import row5
from imgcdn_bench.row6 import row6
from imgcdn_bench.row7 import row7
from imgcdn_bench.simulator import simulator
from imgcdn_bench.tuning import tuning

ROWS: Final = {
    "1": row1,
    "2": row2,
    "tuning": tuning,
    "profile": stage_profile,
    "3": row3,
    "4": row4,
    "5": row5,
    "6": row6,
    "7": row7,
    "sim": simulator,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rows asked for and write the report."""
    parser = argparse.ArgumentParser(prog="benchmarks/run.sh", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 photos, 1 run per cell")
    parser.add_argument(
        "--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}"
    )
    parser.add_argument(
        "--out", type=Path, default=DOC, help="the report (default: docs/benchmarks.md)"
    )
    args = parser.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; allowed: {', '.join(ROWS)}")
    started = time.perf_counter()
    load_before = os.getloadavg()
    entries = corpus.ensure()
    photos = [e for e in entries if e.is_photo]
    if args.quick:
        photos = [e for e in photos if e.file in QUICK_IMAGES]
    run = Run(
        args.quick, 1 if args.quick else 3, 1 if args.quick else 2, 1 if args.quick else 2, photos
    )
    shutil.rmtree(OUT, ignore_errors=True)
    # A partial run (--rows) keeps the other rows of the last full-mode run in the report.
    state_file = RAW.with_name("report-state-quick.json" if args.quick else "report-state.json")
    state: dict[str, Any] = {}
    if state_file.exists() and len(rows) < len(ROWS):
        state = json.loads(state_file.read_text())
    by_row = state.setdefault("rows", {})
    for name in rows:
        n_sections, n_targets = len(run.sections), len(run.targets)
        ROWS[name](run)
        by_row[name] = {
            "sections": run.sections[n_sections:],
            "targets": [t.__dict__ for t in run.targets[n_targets:]],
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
    run.sections = [sec for name in ROWS if name in by_row for sec in by_row[name]["sections"]]
    run.targets = [Target(**t) for name in ROWS if name in by_row for t in by_row[name]["targets"]]
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(state, indent=1))
    if len(rows) < len(ROWS):
        run.raw["partial_rows"] = {name: by_row[name]["date"] for name in by_row}
    report = render(run, started, load_before)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    RAW.parent.mkdir(parents=True, exist_ok=True)
    RAW.write_text(json.dumps(run.raw, indent=1, default=str))
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    print(
        table(
            ["target", "goal", "measured", "verdict"],
            ([t.name, t.goal, t.measured, verdict(t.passed)] for t in run.targets),
            "llll",
        )
    )
    return 0


__all__ = ["ROWS", "main"]
