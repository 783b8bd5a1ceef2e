"""Print branch coverage per workspace package and fail when one is under its floor.

Reads the JSON report pytest-cov wrote (`--cov-report=json:PATH`) and the floors in the root
pyproject.toml (`[tool.imgcdn.coverage] floors`). Usage:

    uv run python scripts/coverage.py .cache/coverage.json
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_PACKAGE = re.compile(r"packages/[^/]+/src/(?P<name>[^/]+)/")


def per_package(report: dict[str, object]) -> dict[str, float]:
    """Percent covered (statements and branches together, as coverage.py counts) by package."""
    totals: dict[str, list[int]] = {}
    files = report.get("files")
    if not isinstance(files, dict):
        msg = "not a coverage.py JSON report (no 'files')"
        raise ValueError(msg)
    for path, data in files.items():
        match = _PACKAGE.search(Path(path).as_posix())
        if match is None:
            continue
        summary = data["summary"]
        covered = summary["covered_lines"] + summary.get("covered_branches", 0)
        possible = summary["num_statements"] + summary.get("num_branches", 0)
        total = totals.setdefault(match["name"], [0, 0])
        total[0] += covered
        total[1] += possible
    return {name: 100.0 * c / p if p else 100.0 for name, (c, p) in sorted(totals.items())}


def floors() -> dict[str, float]:
    """The floors of `[tool.imgcdn.coverage]` in the root pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    return {k: float(v) for k, v in config["tool"]["imgcdn"]["coverage"]["floors"].items()}


def main(argv: list[str]) -> int:
    """Print the table; 1 when a package is under its floor or has none, else 0."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)  # noqa: T201 - a command-line script
        return 2
    measured = per_package(json.loads(Path(argv[0]).read_text("utf-8")))
    wanted = floors()
    failures = []
    print(f"{'package':<20} {'branch cov.':>11} {'floor':>6}")  # noqa: T201
    for name, percent in measured.items():
        floor = wanted.get(name)
        shown = "-" if floor is None else f"{floor:.0f}"
        print(f"{name:<20} {percent:>10.1f}% {shown:>6}")  # noqa: T201
        if floor is None:
            failures.append(f"{name} has no floor in [tool.imgcdn.coverage] floors")
        elif percent < floor:
            failures.append(f"{name} is at {percent:.1f}%, under its floor of {floor:.0f}%")
    for failure in failures:  # after the table, so the numbers are on screen too
        print(f"coverage: {failure}", file=sys.stderr)  # noqa: T201
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
