"""Row 3: the fallback's overhead over a bare transform."""

# ruff: noqa: T201 - a harness: it runs its own tools with fixed argv,
# opens loopback URLs only, draws traces from a seeded PRNG and prints its results.

from __future__ import annotations

from imgcdn_bench import corpus
from imgcdn_bench.cells import run_cell
from imgcdn_bench.harness import (
    Run,
    Target,
    fmt_ms,
    fmt_ratio,
    geomean,
    python_can_import,
    table,
    tool_order,
    value_of,
)


def row3(run: Run) -> None:
    """Fallback handler on a Function URL event over an in-memory store vs a bare transform."""
    run.say("row 3: fallback overhead")
    why = python_can_import("imgcdn_edge.handler")
    title = "## 3. Fallback overhead\n\n"
    if why is None:
        images = run.images[:5] if not run.quick else run.images[:1]
        rows, ratios = [], []
        for index, entry in enumerate(images):
            cells = {}
            for tool in tool_order(("fallback", "imgcore"), index):
                spec = {
                    "tool": tool,
                    "job": "webp320",
                    "image": str(corpus.CORPUS / entry.file),
                    "runs": 1 if run.quick else 5,
                }
                cells[tool] = run_cell(spec)
            if "error" in cells["fallback"]:
                why = cells["fallback"]["error"]
                break
            f, b = value_of(cells["fallback"]), value_of(cells["imgcore"])
            ratios.append(f / b)
            rows.append([entry.file, fmt_ms(f), fmt_ms(b), fmt_ratio(f / b)])
        if why is None:
            r = geomean(ratios)
            run.targets.append(
                Target("fallback handler / bare transform", "≤ 1.10x", fmt_ratio(r), r <= 1.10)
            )
            run.sections.append(
                title
                + "The fallback handler on a Lambda Function URL (payload 2.0) event, with an "
                "in-memory store holding the original, against `imgcore.transform` of the same "
                "image and params (WebP 320), in turn per image. Median CPU ms of 5 timed runs.\n\n"
                + table(["image", "fallback handler", "bare transform", "ratio"], rows)
                + "\n"
            )
            return
    print(f"row 3: not available: {why}")
    run.targets.append(
        Target("fallback handler / bare transform", "≤ 1.10x", f"not available: {why}", None)
    )
    run.sections.append(title + f"Not available in this run: {why}.\n")
