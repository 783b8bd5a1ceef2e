"""Row 2: the standard set from one decode, against a transform per variant and the peers.

A row's function is long on purpose: it is one linear script of measurements, each step
feeding the next and the report, and reads best top to bottom.
"""


# opens loopback URLs only, draws traces from a seeded PRNG and prints its results.

from __future__ import annotations

import math

from imgcdn_bench.harness import (
    NAMES,
    Run,
    Target,
    bench_cells,
    fmt_ms,
    fmt_ratio,
    geomean,
    med,
    table,
    value_of,
)


def row2(run: Run) -> None:
    """The standard set: render_variants against independent renders and the peers."""
    run.say("row 2: the standard set")
    tools = ("imgcore:variants", "imgcore:each", "pyvips:thumb", "pillow:fanout", "sharp")
    results = bench_cells(run, ["set8"], tools, lambda _j: run.set_runs)
    run.raw["row2"] = results
    per_image = results["set8"]
    rows = []
    for image, cells in per_image.items():
        vals = {t: value_of(cells.get(t, {})) for t in tools}
        rows.append(
            [
                image,
                *(fmt_ms(vals[t]) for t in tools),
                fmt_ratio(vals["imgcore:variants"] / vals["imgcore:each"]),
            ]
        )
    ratio = {
        t: geomean(
            value_of(c[t]) / value_of(c["imgcore:each"])
            for c in per_image.values()
            if "wall_ms" in c.get(t, {}) and "wall_ms" in c.get("imgcore:each", {})
        )
        for t in tools
    }
    rows.append(
        [
            "**geomean, tool / imgcore x 8**",
            *(f"**{fmt_ratio(ratio[t])}**" for t in tools),
            f"**{fmt_ratio(ratio['imgcore:variants'])}**",
        ]
    )
    rss = [
        [
            NAMES.get(t, t),
            f"{med([c[t]['peak_rss_kb'] / 1024 for c in per_image.values() if 'peak_rss_kb' in c.get(t, {})]):.0f}",  # noqa: E501 - one table cell
        ]
        for t in tools
    ]
    out = ["## 2. The standard set: 8 widths x WebP q80 from one original\n"]
    out.append(
        "`imgcore render_variants` (one decode at the largest DCT scale that keeps twice 2560 px, "
        "then a lanczos3 cascade) against 8 independent `imgcore.transform` calls, 8 "
        "`pyvips.thumbnail` calls, Pillow doing the set from one drafted decode (fan-out), and "
        f"8 sharp pipelines. Median CPU ms of {run.set_runs} timed runs, libvips at 1 thread.\n"
    )
    out.append(
        table(
            [
                "image",
                *(NAMES.get(t, t) if t != "pyvips:thumb" else "pyvips-thumb x 8" for t in tools),
                "variants / x 8",
            ],
            rows,
        )
    )
    out.append("")
    out.append(table(["tool", "peak RSS MiB (median)"], rss))
    out.append("")
    r = ratio["imgcore:variants"]
    run.targets.append(
        Target(
            "render_variants 8 widths / 8 independent transforms", "≤ 0.50x", fmt_ratio(r), r <= 0.5
        )
    )
    # The full standard set (24 variants incl. AVIF): what a precompute run really costs.
    if not run.quick:
        subset = run.images[:3]
        full = Run(run.quick, 1, 1, 1, subset)
        res24 = bench_cells(full, ["set24"], ("imgcore:variants", "imgcore:each"), lambda _j: 1)
        run.raw["row2_set24"] = res24
        rows24 = []
        for image, cells in res24["set24"].items():
            v = med(cells["imgcore:variants"].get("cpu_ms", [math.nan]))
            e = med(cells["imgcore:each"].get("cpu_ms", [math.nan]))
            rows24.append([image, fmt_ms(v), fmt_ms(e), fmt_ratio(v / e)])
        out.append("### The whole standard set: 8 widths x AVIF, WebP, JPEG (24 outputs)\n")
        out.append(
            "CPU ms of one timed run after a warm-up (what one precompute invocation costs "
            "at 1 vCPU).\n"
        )
        out.append(table(["image", "render_variants", "24 x transform", "ratio"], rows24))
        out.append("")
    run.sections.append("\n".join(out))
