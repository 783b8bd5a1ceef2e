"""Measure the viewer-request Function: bytes, and per-call time in node (not a test).

    uv run python -m tests.edge.measure_function

Events are built before the clock starts (CloudFront hands the Function a ready object); the
first quarter of the calls warms the JIT up and is not timed. Median of 5 node processes.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from tests.conftest import FIXTURES
from tests.edge.engines import run_node
from tests.edge.strategies import BROWSERS, batch

from imgcdn_edge.function import MAX_FUNCTION_BYTES, render_function

PATH = "/img/acme/products/red%20shoe.jpg/0123456789abcdef"
REALISTIC_QUERIES = [
    "",
    "w=640",
    "w=640&fmt=auto",
    "w=287&h=400&fmt=webp&q=77",
    "w=1200&fmt=jpeg&q=85",
    "w=320&utm_source=newsletter&utm_medium=email&fbclid=abc123",
    "w=480&q=60",
    "w=abc",
    "fmt=gif",
    "w=320&w=640",
]


def _realistic() -> list[dict[str, object]]:
    golden = json.loads((FIXTURES / "golden" / "canonicalize.json").read_text())["cases"]
    mine = [{"path": PATH, "query": q, "accept": a} for q in REALISTIC_QUERIES for a in BROWSERS]
    return mine + [{k: c[k] for k in ("path", "query", "accept")} for c in golden]


def main() -> None:
    """Print the Function's size and its per-call time on two mixes."""
    source = render_function()
    with tempfile.TemporaryDirectory() as tmp:
        function = Path(tmp) / "viewer_request.js"
        function.write_text(source, encoding="utf-8")
        mixes = {"realistic": _realistic(), "hostile": batch(1, 2000)}
        result: dict[str, object] = {"bytes": len(source.encode()), "limit": MAX_FUNCTION_BYTES}
        for name, cases in mixes.items():
            runs = [run_node(function, cases, mode="--bench") for _ in range(5)]
            result[name] = {
                "cases": len(cases),
                "calls_per_run": runs[0]["calls"],
                "us_per_call_median": round(statistics.median(r["us_per_call"] for r in runs), 2),
                "us_per_call_runs": [round(r["us_per_call"], 2) for r in runs],
            }
    print(json.dumps(result, indent=2))  # noqa: T201 - a measurement script's output


if __name__ == "__main__":
    main()
