"""Row 1: one transform per job, imgcore against its peers (time, bytes, quality).

A row's function is long on purpose: it is one linear script of measurements, each step
feeding the next and the report, and reads best top to bottom.
"""


# opens loopback URLs only, draws traces from a seeded PRNG and prints its results.

from __future__ import annotations

from typing import Any

from imgcdn_bench.harness import (
    BYTES_LIMIT,
    JOB_TITLES,
    JOBS,
    NAMES,
    PEER,
    TOOLS,
    Run,
    Target,
    add_quality,
    bench_cells,
    fmt_ms,
    fmt_ratio,
    geomean,
    med,
    table,
    value_of,
)


def row1(run: Run) -> None:
    """One transform per job, per image, against every peer."""
    run.say("row 1: one transform per job")
    results = bench_cells(
        run, JOBS, TOOLS, lambda j: run.avif_runs if j == "avif1280" else run.runs
    )
    add_quality(run, results)
    run.raw["row1"] = results
    out = ["## 1. One transform per job\n"]
    out.append(
        "Each cell: a fresh process, the original already in memory, 1 warm-up render, then "
        f"the median of {run.runs} timed renders ({run.avif_runs} for AVIF); libvips at 1 "
        "thread. Every tool is ranked by the CPU time of its process (all threads): on this "
        "shared machine wall time mostly measured the other tenants. Ratios are per image "
        "in this run, then a geometric mean. "
        "SSIM is against the reference resize (see *Method*); bytes are the output's size.\n"
    )
    for job in JOBS:
        per_image = results[job]
        header = ["image", *(NAMES[t] for t in TOOLS), "imgcore / pillow", "imgcore / sharp"]
        rows = []
        for image, cells in per_image.items():
            vals = {t: value_of(cells.get(t, {}), job) for t in TOOLS}
            rows.append(
                [
                    image,
                    *(fmt_ms(vals[t]) for t in TOOLS),
                    fmt_ratio(vals["imgcore"] / vals["pillow:each"]),
                    fmt_ratio(vals["imgcore"] / vals["sharp"]),
                ]
            )
        ratio = {
            t: geomean(
                value_of(c.get(t, {}), job) / value_of(c.get("imgcore", {}), job)
                for c in per_image.values()
            )
            for t in TOOLS
        }
        rows.append(
            [
                "**geomean, tool / imgcore**",
                *(f"**{fmt_ratio(ratio[t])}**" for t in TOOLS),
                f"**{fmt_ratio(1 / ratio['pillow:each'])}**",
                f"**{fmt_ratio(1 / ratio['sharp'])}**",
            ]
        )
        out.append(f"### {JOB_TITLES[job]} — median CPU ms per image\n")
        out.append(table(header, rows))
        # Quality, bytes and memory per tool.
        qrows = []
        for t in TOOLS:
            ssims = [c[t]["ssim"] for c in per_image.values() if "ssim" in c.get(t, {})]
            bytes_ratio = geomean(
                c[t]["out_bytes"][0] / c["imgcore"]["out_bytes"][0]
                for c in per_image.values()
                if "out_bytes" in c.get(t, {}) and "out_bytes" in c.get("imgcore", {})
            )
            peaks = [
                c[t]["peak_rss_kb"] / 1024
                for c in per_image.values()
                if "peak_rss_kb" in c.get(t, {})
            ]
            bases = [
                c[t]["base_rss_kb"] / 1024
                for c in per_image.values()
                if c.get(t, {}).get("base_rss_kb")
            ]
            walls = [med(c[t]["wall_ms"]) for c in per_image.values() if "wall_ms" in c.get(t, {})]
            cpus = [med(c[t]["cpu_ms"]) for c in per_image.values() if "cpu_ms" in c.get(t, {})]
            qrows.append(
                [
                    NAMES[t],
                    f"{med(ssims):.4f}" if ssims else "-",
                    f"{min(ssims):.4f}" if ssims else "-",
                    fmt_ratio(bytes_ratio),
                    fmt_ratio(geomean(c / w for c, w in zip(cpus, walls, strict=True))),
                    f"{med(peaks):.0f}" if peaks else "-",
                    f"{med(bases):.0f}" if bases else "-",
                ]
            )
        out.append("")
        out.append(
            table(
                [
                    "tool",
                    "SSIM median",
                    "SSIM worst",
                    "bytes / imgcore's",
                    "CPU / wall",
                    "peak RSS MiB (median)",
                    "base RSS MiB",
                ],
                qrows,
            )
        )
        out.append("")
        _row1_targets(run, job, per_image)
    run.sections.append("\n".join(out))


def _row1_targets(run: Run, job: str, per_image: dict[str, dict[str, Any]]) -> None:
    peer = PEER[job]
    pairs = [
        c
        for c in per_image.values()
        if "wall_ms" in c.get("imgcore", {}) and "wall_ms" in c.get(peer, {})
    ]
    if not pairs:
        run.targets.append(Target(f"{job} speed", "-", "no data", None))
        return
    if job == "avif1280":
        speed = geomean(med(c["imgcore"]["cpu_ms"]) / med(c[peer]["cpu_ms"]) for c in pairs)
        run.targets.append(
            Target(
                "AVIF 1280: imgcore CPU / pyvips.thumbnail + heifsave CPU",
                "≤ 0.60x",
                fmt_ratio(speed),
                speed <= 0.60,
            )
        )
    else:
        speed = geomean(med(c["imgcore"]["cpu_ms"]) / med(c[peer]["cpu_ms"]) for c in pairs)
        run.targets.append(
            Target(
                f"{JOB_TITLES[job]}: imgcore / Pillow+draft (CPU)",
                "≤ 1.00x",
                fmt_ratio(speed),
                speed <= 1.0,
            )
        )
    with_ssim = [c for c in pairs if "ssim" in c["imgcore"] and "ssim" in c[peer]]
    if with_ssim:
        delta = med([c["imgcore"]["ssim"] - c[peer]["ssim"] for c in with_ssim])
        worst = min(c["imgcore"]["ssim"] - c[peer]["ssim"] for c in with_ssim)
        run.targets.append(
            Target(
                f"{job}: SSIM imgcore - {NAMES[peer]} (median; worst image)",
                "≥ -0.002",
                f"{delta:+.4f}; {worst:+.4f}",
                delta >= -0.002,
            )
        )
    size = geomean(c["imgcore"]["out_bytes"][0] / c[peer]["out_bytes"][0] for c in pairs)
    run.targets.append(
        Target(
            f"{job}: bytes imgcore / {NAMES[peer]}",
            f"≤ {BYTES_LIMIT[job]:.2f}x",
            f"{size:.3f}x",
            size <= BYTES_LIMIT[job],
        )
    )
    with_sharp = [c for c in pairs if "peak_rss_kb" in c.get("sharp", {})]
    if with_sharp:
        rss = geomean(c["imgcore"]["peak_rss_kb"] / c["sharp"]["peak_rss_kb"] for c in with_sharp)
        run.targets.append(
            Target(f"{job}: peak RSS imgcore / sharp", "≤ 1.00x", fmt_ratio(rss), rss <= 1.0)
        )
