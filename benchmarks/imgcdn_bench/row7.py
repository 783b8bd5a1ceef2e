"""Row 7: concurrency: renders in parallel against one at a time.

A row's function is long on purpose: it is one linear script of measurements, each step
feeding the next and the report, and reads best top to bottom.
"""

# ruff: noqa: S603 - a harness: it runs its own tools with fixed argv,
# opens loopback URLs only, draws traces from a seeded PRNG and prints its results.

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

from imgcdn_bench import corpus
from imgcdn_bench.cells import env
from imgcdn_bench.harness import Run, fmt_ratio, med, table

# --- row 7: concurrency ----------------------------------------------------------------------


def row7(run: Run) -> None:
    """Throughput of render_variants (the whole standard set) at 1-2 threads x 1-2 processes."""
    run.say("row 7: concurrency")
    images = run.images[:2]
    per_process = 1 if run.quick else 2
    rows = []
    base = math.nan
    for threads, procs in ((1, 1), (2, 1), (1, 2), (2, 2)):
        started = time.perf_counter()
        children = []
        for i in range(procs):
            spec = {
                "tool": "imgcore:variants",
                "job": "set24",
                "image": str(corpus.CORPUS / images[i % len(images)].file),
                "runs": per_process,
                "warmup": 1,
            }
            cmd = [sys.executable, "-m", "imgcdn_bench.worker", json.dumps(spec)]
            children.append(
                subprocess.Popen(cmd, env=env(threads), stdout=subprocess.PIPE, text=True)
            )
        results = []
        for child in children:
            stdout, _ = child.communicate()
            results.append(json.loads(stdout.strip().splitlines()[-1]))
        elapsed = time.perf_counter() - started
        renders = sum(len(r["wall_ms"]) for r in results)
        timed_wall = max(sum(r["wall_ms"]) for r in results) / 1000
        throughput = renders / timed_wall
        latency = med([w for r in results for w in r["wall_ms"]])
        cpu = sum(sum(r["cpu_ms"]) for r in results) / 1000
        if (threads, procs) == (1, 1):
            base = throughput
        rows.append(
            [
                str(threads),
                str(procs),
                f"{throughput * 60:.1f}",
                fmt_ratio(throughput / base),
                f"{latency / 1000:.2f}",
                f"{cpu / timed_wall:.2f}",
                f"{elapsed:.0f}",
            ]
        )
        run.say(f"  threads={threads} procs={procs}: {throughput * 60:.1f} sets/min")
    run.raw["row7"] = rows
    run.sections.append(
        "## 7. Concurrency: the whole standard set (24 variants) per original\n\n"
        f"libvips threads (`VIPS_CONCURRENCY`) x worker processes, {per_process} timed "
        "render(s) per process after a warm-up, photos "
        + ", ".join(e.file for e in images)
        + ". Throughput counts sets per minute while all processes run; CPU/wall shows how "
        "many cores the configuration kept busy on this shared 2-core machine.\n\n"
        + table(
            [
                "threads",
                "processes",
                "sets / min",
                "vs 1x1",
                "latency s (median)",
                "CPU / wall",
                "wall s",
            ],
            rows,
        )
        + "\n"
    )
