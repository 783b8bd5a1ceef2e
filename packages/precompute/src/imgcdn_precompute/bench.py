"""Measure the standard-set render of real photos: `python -m imgcdn_precompute.bench PHOTO...`.

Each run is `PrecomputeService.render`: what the worker does per upload between reading the
original and writing the results (probe, every standard variant from one decode, the
placeholder). Set
`VIPS_CONCURRENCY=1` to measure what one vCPU costs (a Lambda bills per vCPU-second).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from imgcdn_precompute.service import PrecomputeService
from imgcore.policy import DEFAULT_POLICY
from imgcore.storage import MemoryStore


def measure(data: bytes, runs: int) -> dict[str, object]:
    """Time `runs` standard-set renders of one original (after one warm-up run)."""
    service = PrecomputeService(MemoryStore(), MemoryStore(), policy=DEFAULT_POLICY)
    times: list[float] = []
    for index in range(runs + 1):
        started = time.perf_counter()
        info, rendered, _ = service.render(data)
        if index:  # the first run warms libvips up (codec init, page cache)
            times.append(time.perf_counter() - started)
    width, height = info.display_size
    return {
        "source": f"{info.format.value} {width}x{height} ({width * height / 1e6:.1f} MP)",
        "source_bytes": len(data),
        "variants": len(rendered),
        "output_bytes": sum(len(r.data) for r in rendered),
        "runs_s": [round(t, 3) for t in times],
        "median_s": round(statistics.median(times), 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print one JSON line per photo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per photo (default 5)")
    args = parser.parse_args(argv)
    concurrency = os.environ.get("VIPS_CONCURRENCY", "(libvips default: all cores)")
    for photo in args.photos:
        result = {"photo": photo.name, "vips_concurrency": concurrency}
        result.update(measure(photo.read_bytes(), args.runs))
        sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
