"""Run every benchmark row and regenerate `docs/benchmarks.md` (see `benchmarks/run.sh`).

Rows (the issue's numbering): 1 one transform per job against the peers; 2 the standard set;
3 fallback overhead; 4 cold start and bundle sizes; 5 the CloudFront Function; 6 the local
stack under load; 7 concurrency. Plus the tuning knobs, the stage profile and the simulator.
A row whose piece does not exist yet prints "not available: <why>" and the report says so.
"""

# ruff: noqa: S603, S607, S310, S311, T201 - a harness: it runs its own tools with fixed argv,
# opens loopback URLs only, draws traces from a seeded PRNG and prints its results.

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from imgcdn_bench import corpus, quality
from imgcdn_bench.cells import HERE, OUT, ROOT, env, run_cell, wait_rusage

DOC: Final = ROOT / "docs" / "benchmarks.md"
RAW: Final = ROOT / ".cache" / "bench" / "last-run.json"
TOOLS: Final = ("imgcore", "pillow:each", "sharp", "pyvips:thumb", "pyvips:naive", "vipsthumbnail")
NAMES: Final = {
    "imgcore": "imgcore",
    "pillow:each": "pillow",
    "sharp": "sharp",
    "pyvips:thumb": "pyvips-thumb",
    "pyvips:naive": "pyvips-naive",
    "vipsthumbnail": "vipsthumbnail",
    "imgcore:variants": "imgcore render_variants",
    "imgcore:each": "imgcore transform x N",
    "pillow:fanout": "pillow (one decode, fan-out)",
}
JOBS: Final = ("webp320", "jpeg640", "avif1280")
JOB_TITLES: Final = {
    "webp320": "JPEG → WebP 320 px q80",
    "jpeg640": "JPEG → JPEG 640 px q80",
    "avif1280": "JPEG → AVIF 1280 px q60",
}
# The peer each job's targets are measured against, and the bytes allowance.
PEER: Final = {"webp320": "pillow:each", "jpeg640": "pillow:each", "avif1280": "pyvips:thumb"}
BYTES_LIMIT: Final = {"webp320": 1.02, "jpeg640": 1.02, "avif1280": 1.05}
QUICK_IMAGES: Final = (
    "photo-Bridge_by_Sander_Klootwijk.jpg",
    "photo-friends_by_Aitzol_Berasategi.jpg",
)


@dataclass
class Target:
    """One goal of the issue, with what this run measured."""

    name: str
    goal: str
    measured: str
    passed: bool | None  # None: not measured in this run
    note: str = ""


@dataclass
class Run:
    """What one invocation measured, and how."""

    quick: bool
    runs: int
    avif_runs: int
    set_runs: int
    images: list[corpus.Entry]
    sections: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    spreads: list[float] = field(default_factory=list)

    def say(self, text: str) -> None:
        """Progress on stderr (stdout stays clean)."""
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


# --- small helpers ---------------------------------------------------------------------------


def geomean(values: Iterable[float]) -> float:
    """Geometric mean (NaN for no values)."""
    values = [v for v in values if v > 0 and math.isfinite(v)]
    if not values:
        return math.nan
    return math.exp(sum(math.log(v) for v in values) / len(values))


def med(values: Sequence[float]) -> float:
    """Median (NaN for none)."""
    return statistics.median(values) if values else math.nan


def fmt_ms(value: float) -> str:
    """Milliseconds with three significant digits."""
    if not math.isfinite(value):
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def fmt_ratio(value: float) -> str:
    """A ratio like 0.93x."""
    return "-" if not math.isfinite(value) else f"{value:.2f}x"


def verdict(passed: bool | None) -> str:
    """pass / miss / not measured."""
    return {True: "pass", False: "**miss**", None: "not measured"}[passed]


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """A markdown table; `align` gives one of l/r per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if a == "l" else "---:" for a in align) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def spread(values: Sequence[float]) -> float:
    """(max - min) / median of a cell's timed runs."""
    return (max(values) - min(values)) / med(values) if len(values) > 1 and med(values) else 0.0


def tool_order(tools: Sequence[str], index: int) -> list[str]:
    """Rotate the tools per image, so that no tool always runs first (or after the same one)."""
    k = index % len(tools)
    return list(tools[k:]) + list(tools[:k])


# --- row 1 and 2: per-image cells against the peers ------------------------------------------


def bench_cells(
    run: Run, jobs: Sequence[str], tools: Sequence[str], runs_for: Callable[[str], int]
) -> dict[str, dict[str, dict[str, Any]]]:
    """results[job][image][tool], each cell in a fresh process, tools interleaved per image."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for job in jobs:
        results[job] = {}
        for index, entry in enumerate(run.images):
            cells = {}
            for tool in tool_order(tools, index):
                spec = {
                    "tool": tool,
                    "job": job,
                    "image": str(corpus.CORPUS / entry.file),
                    "runs": runs_for(job),
                    "warmup": 1,
                    "out": str(OUT / job / entry.file / tool.replace(":", "-")),
                }
                cell = run_cell(spec)
                cells[tool] = cell
                if "wall_ms" in cell:
                    run.spreads.append(spread(cell["wall_ms"]))
                    shown = cell["cpu_ms"] if job == "avif1280" else cell["wall_ms"]
                    run.say(
                        f"  {job} {entry.file} {NAMES.get(tool, tool)}: {fmt_ms(med(shown))} ms"
                    )
                else:
                    run.say(f"  {job} {entry.file} {tool}: {cell['error']}")
            results[job][entry.file] = cells
    return results


def add_quality(run: Run, results: dict[str, dict[str, dict[str, Any]]]) -> None:
    """SSIM of every single output against the reference resize (not timed)."""
    for job, per_image in results.items():
        for image, cells in per_image.items():
            for tool, cell in cells.items():
                blob = OUT / job / image / tool.replace(":", "-") / "0.bin"
                if "wall_ms" in cell and blob.exists():
                    try:
                        cell["ssim"], cell["out_w"], cell["out_h"] = quality.score(
                            corpus.CORPUS / image, blob.read_bytes()
                        )
                    except Exception as exc:  # noqa: BLE001 - one odd output must not stop the run
                        cell["ssim_error"] = str(exc).splitlines()[0]
            quality.clear()


def value_of(cell: dict[str, Any], _job: str = "") -> float:
    """The time a cell is ranked by: CPU time of the whole process (all its threads).

    On this shared machine wall time mostly measures the other tenants (CPU / wall was 0.2 in
    smoke runs); at one libvips thread CPU time is what the work costs, and it is what a
    1-vCPU Lambda bills. Wall time is kept in the raw results.
    """
    if "cpu_ms" not in cell:
        return math.nan
    return med(cell["cpu_ms"])


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


# --- tuning knobs and the stage profile ------------------------------------------------------

KNOBS: Final = {
    "webp320": (
        "knob:ref",
        "knob:tight",
        "knob:kernel-cubic",
        "knob:kernel-linear",
        "knob:effort2",
        "pillow:each",
    ),
    "jpeg640": (
        "knob:ref",
        "knob:tight",
        "knob:kernel-cubic",
        "knob:kernel-linear",
        "knob:baseline",
        "knob:baseline+noopt",
        "knob:kernel-cubic+baseline",
        "pillow:each",
    ),
    "avif1280": (
        "knob:ref",
        "knob:tight",
        "knob:effort0",
        "knob:effort1",
        "knob:effort3",
        "knob:effort4",
        "pyvips:thumb",
    ),
}
KNOB_NOTES: Final = {
    "knob:ref": "imgcore's settings rebuilt in plain pyvips (check: ≈ 1.00x)",
    "knob:tight": ("decode at the largest DCT scale that merely covers the output (no 2x margin)"),
    "knob:kernel-linear": "linear instead of lanczos3 for the residual reduce",
    "knob:kernel-cubic": "cubic instead of lanczos3 for the residual reduce",
    "knob:kernel-cubic+baseline": "cubic, and baseline JPEG instead of progressive",
    "pyvips:thumb": "pyvips.thumbnail + heifsave defaults (the peer, effort 4)",
    "knob:effort2": "WebP effort 2 instead of 4",
    "knob:baseline": "baseline JPEG instead of progressive",
    "knob:baseline+noopt": "baseline, no Huffman optimisation",
    "knob:effort0": "AVIF effort 0 (imgcore: 2)",
    "knob:effort1": "AVIF effort 1",
    "knob:effort3": "AVIF effort 3",
    "knob:effort4": "AVIF effort 4 (libvips' default)",
    "pillow:each": "Pillow + draft (the peer)",
}


def tuning(run: Run) -> None:
    """Each knob changed alone against imgcore's own settings, same run, same images."""
    run.say("tuning knobs")
    images = run.images if not run.quick else run.images[:1]
    sub = Run(run.quick, run.runs, 1, 1, images)
    out = ["## Tuning knobs (imgcore's pipeline rebuilt in pyvips, one setting changed)\n"]
    out.append(
        "Ratios: knob / imgcore.transform in the same run (geomean over the images, CPU "
        "time). SSIM Δ and bytes against imgcore's own output.\n"
    )
    rows = []
    for job, knobs in KNOBS.items():
        runs_for = (lambda _j: 1) if job == "avif1280" else (lambda _j: run.runs)
        res = bench_cells(sub, [job], ("imgcore", *knobs), runs_for)
        add_quality(sub, res)
        run.raw.setdefault("tuning", {})[job] = res
        for knob in knobs:
            cells = [
                c
                for c in res[job].values()
                if "wall_ms" in c.get(knob, {}) and "wall_ms" in c.get("imgcore", {})
            ]
            speed = geomean(value_of(c[knob], job) / value_of(c["imgcore"], job) for c in cells)
            size = geomean(c[knob]["out_bytes"][0] / c["imgcore"]["out_bytes"][0] for c in cells)
            deltas = [
                c[knob]["ssim"] - c["imgcore"]["ssim"]
                for c in cells
                if "ssim" in c[knob] and "ssim" in c["imgcore"]
            ]
            rows.append(
                [
                    job,
                    KNOB_NOTES.get(knob, knob),
                    fmt_ratio(speed),
                    f"{med(deltas):+.4f}",
                    f"{min(deltas):+.4f}" if deltas else "-",
                    fmt_ratio(size),
                ]
            )
    run.spreads.extend(sub.spreads)
    out.append(
        table(
            ["job", "knob", "time / imgcore", "SSIM Δ median", "SSIM Δ worst", "bytes / imgcore"],
            rows,
            "llrrrr",
        )
    )
    out.append("")
    run.sections.append("\n".join(out))


def stage_profile(run: Run) -> None:
    """Where imgcore.transform spends its CPU, stage by stage."""
    run.say("stage profile")
    rows = []
    runs = max(1, run.runs)
    for job in JOBS:
        totals: dict[str, list[float]] = {}
        for entry in run.images:
            spec = {
                "tool": "stages",
                "job": job,
                "image": str(corpus.CORPUS / entry.file),
                "runs": 1 if job == "avif1280" else runs,
            }
            result = run_cell(spec)
            for stage, values in result.items():
                if isinstance(values, list):
                    totals.setdefault(stage, []).append(med(values))
        whole = sum(med(v) for v in totals.values())
        rows.append(
            [
                JOB_TITLES[job],
                *(
                    f"{med(totals.get(s, [])):.1f} ({med(totals.get(s, [])) / whole:.0%})"
                    for s in ("probe", "decode+resize", "encode")
                ),
            ]
        )
    run.raw["stages"] = rows
    decoders, libraries = [], set()
    for job in ("webp320", "jpeg640"):
        ratios, shrinks = [], set()
        for entry in run.images:
            spec = {
                "tool": "decoders",
                "job": job,
                "image": str(corpus.CORPUS / entry.file),
                "runs": runs,
            }
            result = run_cell(spec)
            if "libvips" not in result:
                continue
            ratios.append(med(result["libvips"]) / med(result["pillow"]))
            shrinks.add(result["shrink"])
            libraries.add(f"libvips: {result['libvips_jpeg']}, Pillow: {result['pillow_jpeg']}")
        decoders.append(
            [
                JOB_TITLES[job],
                ", ".join(f"1/{s}" for s in sorted(shrinks)),
                fmt_ratio(geomean(ratios)),
            ]
        )
    run.raw["decoders"] = decoders
    run.sections.append(
        "## Where the time goes: imgcore.transform by stage\n\n"
        "Median CPU ms per image (share of the whole) of `probe` (admission: header read), "
        "decode + shrink-on-load + resize to memory, and encode, in one process per image.\n\n"
        + table(["job", "probe", "decode + resize", "encode"], rows)
        + "\nThe JPEG decode alone, at the DCT scale imgcore uses for the job, libvips' "
        "`jpegload_buffer(shrink=)` against Pillow's `draft()` + `load()` in one process per "
        f"image (geomean of per-image CPU ratios; JPEG libraries: {'; '.join(sorted(libraries))}):"
        "\n\n" + table(["job", "DCT scale", "libvips decode / Pillow decode"], decoders) + "\n"
    )


# --- row 3: fallback overhead ----------------------------------------------------------------


def python_can_import(module: str) -> str | None:
    """None when `module` imports in the workspace's Python, else why not."""
    code = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({module!r}) else 3)"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env=env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "timed out"
    if proc.returncode == 0:
        return None
    parent = module.rpartition(".")[0]
    return f"module {module} does not exist yet (package {parent} has no such module)"


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


# --- row 4: cold start and bundle sizes ------------------------------------------------------


def _evict(paths: Iterable[Path]) -> None:
    """Drop files from the page cache (POSIX_FADV_DONTNEED; clean pages only, no root needed)."""
    for top in paths:
        files = [top] if top.is_file() else top.rglob("*")
        for path in files:
            with contextlib.suppress(OSError):
                if path.is_file() and not path.is_symlink():
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    finally:
                        os.close(fd)


BUNDLES: Final = ROOT / ".cache" / "bench" / "bundles"
# What each Lambda imports, and the workspace packages its bundle holds (as packages/infra's
# assets do: the package's locked dependencies without extras or dev tools, plus its members).
LAMBDAS: Final = {
    "edge": ("imgcdn-edge", ("imgcore", "aws", "edge")),
    "precompute": ("imgcdn-precompute", ("imgcore", "aws", "precompute")),
}


def _host_bundle(name: str) -> Path:
    """A Lambda bundle's dependency set installed for this Python, to time imports in.

    The real bundles are built for Python 3.12+ on Lambda's platform and cannot be imported by
    this interpreter; this one holds the same locked versions (`uv export --no-dev`, no
    extras) for the host, so an import pulls exactly what it would pull in the Lambda.
    """
    package, members = LAMBDAS[name]
    target = BUNDLES / name
    export = subprocess.run(
        [
            "uv", "export", "--package", package, "--no-dev", "--no-hashes", "--frozen",
            "--no-emit-workspace", "--quiet",
        ],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    stamp = target / ".requirements.txt"
    if not stamp.exists() or stamp.read_text() != export:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        requirements = BUNDLES / f"{name}-requirements.txt"
        requirements.write_text(export)
        subprocess.run([*_install(target), "-r", str(requirements)], cwd=ROOT, check=True)
        stamp.write_text(export)
    # The workspace's own code, always fresh (it is what is being measured).
    paths = [str(ROOT / "packages" / m) for m in members]
    subprocess.run([*_install(target), "--no-deps", "--reinstall", *paths], cwd=ROOT, check=True)
    return target


def _install(target: Path) -> list[str]:
    return ["uv", "pip", "install", "--quiet", "--python", sys.executable, "--target", str(target)]


def _cold_paths(bundles: Iterable[Path]) -> list[Path]:
    import sysconfig  # noqa: PLC0415

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return [*bundles, stdlib, Path(sys.executable).resolve()]


def row4(run: Run) -> None:
    """Fresh-process import times (warm and evicted page cache) and Lambda bundle sizes."""
    run.say("row 4: cold start")
    n = 5 if run.quick else 15
    bundles = {name: _host_bundle(name) for name in LAMBDAS}
    commands = [
        ("python -c pass", "edge", "pass"),
        ("import imgcore", "edge", "import imgcore"),
        ("import imgcore.pixels (libvips loads)", "edge", "import imgcore.pixels"),
        ("import imgcdn_edge.handler (fallback)", "edge", "import imgcdn_edge.handler"),
        (
            "fallback + what its first request imports (boto3, libvips)",
            "edge",
            "import imgcdn_edge.handler, boto3, imgcore.pixels",
        ),
        ("import imgcdn_precompute.handler", "precompute", "import imgcdn_precompute.handler"),
    ]
    rows, medians = [], {}
    cold_paths = _cold_paths(bundles.values())
    for label, bundle, code in commands:
        # -I -S: no site-packages, no user site, no PYTHONPATH: the bundle is the whole world.
        argv = [
            sys.executable, "-I", "-S", "-c",
            f"import sys; sys.path[:0] = [{str(bundles[bundle])!r}]; {code}",
        ]  # fmt: skip
        for cache in ("warm", "evicted"):
            walls: list[float] = []
            for _ in range(n + 1):
                if cache == "evicted":
                    _evict(cold_paths)
                status, wall, _, _, err = wait_rusage(argv, env())
                if status != 0:
                    walls = []
                    rows.append(
                        [
                            f"`{label}`",
                            cache,
                            "error",
                            err.strip().splitlines()[-1][:80] if err.strip() else str(status),
                        ]
                    )
                    break
                walls.append(wall * 1000)
            if walls:
                walls = walls[1:]
                medians[(code, cache)] = med(walls)
                base = medians.get(("pass", cache), 0.0)
                cost = "" if code == "pass" else f" (+{med(walls) - base:.0f})"
                rows.append(
                    [
                        f"`{label}`",
                        cache,
                        f"{med(walls):.0f}{cost}",
                        f"{min(walls):.0f}-{max(walls):.0f}",
                    ]
                )
    out = ["## 4. Cold start: fresh-process import time and bundle size\n"]
    out.append(
        f"Wall ms of a fresh `python -I -S` process whose only import path beyond the standard "
        "library is a Lambda bundle's dependency set (the same locked versions `packages/infra` "
        "bundles, no extras, no dev tools, installed for this Python in `.cache/bench/bundles/`),"
        f" median of {n} (min-max), with the import's own cost over `pass` in brackets. "
        "*evicted*: the interpreter, the standard library and the bundle dropped from the page "
        "cache (`posix_fadvise(DONTNEED)`) before every run. The fallback module defers boto3 "
        "and libvips to its first request; the row after it adds them, which is what a cold "
        "start pays before its first response.\n"
    )
    out.append(
        table(["command", "page cache", "median ms (import cost)", "min-max ms"], rows, "llrr")
    )
    out.append("")
    for label, code, limit in (
        ("import imgcore", "import imgcore", 150),
        ("fallback module import", "import imgcdn_edge.handler", 300),
    ):
        if (code, "warm") in medians:
            worst = max(medians[(code, c)] for c in ("warm", "evicted") if (code, c) in medians)
            run.targets.append(
                Target(
                    f"{label} (fresh process, worst of warm/evicted)",
                    f"≤ {limit} ms",
                    f"{worst:.0f} ms",
                    worst <= limit,
                )
            )
        else:
            run.targets.append(Target(label, f"≤ {limit} ms", "not available: import failed", None))
    out.append(importtime_table("imgcore", bundles["edge"]))
    out.append(bundle_sizes())
    run.sections.append("\n".join(out))


def importtime_table(module: str, bundle: Path) -> str:
    """The largest cumulative entries of `python -X importtime -c 'import MODULE'`."""
    code = f"import sys; sys.path[:0] = [{str(bundle)!r}]; import {module}"
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-X", "importtime", "-c", code],
        env=env(),
        capture_output=True,
        text=True,
        check=False,
    )
    entries = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        entries.append((int(cumulative), int(own), name))
    entries.sort(reverse=True)
    rows = [
        [f"`{name}`", f"{cum / 1000:.1f}", f"{own / 1000:.1f}"] for cum, own, name in entries[:10]
    ]
    return (
        f"`python -X importtime -c 'import {module}'` in the bundle (warm, one run), "
        "largest cumulative entries:\n\n"
        + table(["module", "cumulative ms", "self ms"], rows)
        + "\n"
    )


def bundle_sizes() -> str:
    """Unzipped size of each built Lambda bundle (packages/infra builds them into .cache)."""
    root = ROOT / ".cache" / "lambda-assets"
    bundles = sorted(p for p in root.glob("*/*") if p.is_dir()) if root.exists() else []
    if not bundles:
        print(
            "row 4 bundles: not available: no Lambda bundle under .cache/lambda-assets "
            "(packages/infra builds them)"
        )
        return "Lambda bundles: not available (none built under `.cache/lambda-assets/`).\n"
    rows = []
    for bundle in bundles:
        files = [p for p in bundle.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        tops: dict[str, int] = {}
        for p in files:
            top = p.relative_to(bundle).parts[0]
            tops[top] = tops.get(top, 0) + p.stat().st_size
        largest = ", ".join(
            f"{k} {v / 2**20:.1f}" for k, v in sorted(tops.items(), key=lambda kv: -kv[1])[:4]
        )
        rows.append(
            [
                f"`{bundle.relative_to(ROOT)}`",
                str(len(files)),
                f"{size / 2**20:.1f}",
                f"{size / (250 * 2**20):.0%}",
                largest,
            ]
        )
    return (
        "Unzipped Lambda bundles as `packages/infra` built them (Lambda's limit: 250 MiB "
        "unzipped), largest top-level entries in MiB:\n\n"
        + table(["bundle", "files", "MiB", "of limit", "largest entries"], rows, "lrrrl")
        + "\n"
    )


# --- row 5: the CloudFront Function ----------------------------------------------------------

HOSTILE_QUERIES: Final = (
    "w=" + "9" * 200,
    "w=320&w=640&w=960",
    "w=%F0%9F%98%80",
    "w=%zz&fmt=webp",
    "fmt=" + "A" * 500,
    "&".join(f"junk{i}=x" for i in range(60)),
    "w=320&" + "utm_source=" + "%41" * 300,
    "w=\uff10\uff13\uff12\uff10"  # full-width digits,
    "q=+80&w=-1",
    "w=320&fmt=webp&q=80&h=&fmt=avif",
)
HOSTILE_PATHS: Final = (
    "/img/acme/../../etc/passwd/0123456789abcdef",
    "/img/ACME/x/0123456789abcdef",
    "/img/acme/" + "a" * 600 + "/0123456789abcdef",
    "/img/acme/%E0%A4%A/0123456789abcdef",
    "/nope/acme/x/0123456789abcdef",
    "/img/acme/shoes/red%20shoe.jpg/0123456789abcdeg",
)


def function_requests(count: int) -> list[dict[str, Any]]:
    """A mix of realistic requests (the simulator's client mix) and hostile ones."""
    import random  # noqa: PLC0415

    from imgcdn_sim.economics import make_shapes  # noqa: PLC0415

    rng = random.Random(7)
    shapes = make_shapes(count, rng)
    ids = ("products/123.jpg", "shoes/red%20shoe.jpg", "a/b/c/d.png", "%E2%82%AC/price.webp")
    realistic = [
        {
            "mix": "realistic",
            "uri": f"/img/acme/{rng.choice(ids)}/0123456789abcdef",
            "query": s.query,
            "accept": s.accept,
        }
        for s in shapes
    ]
    hostile = []
    for i in range(max(1, count // 4)):
        if i % 2:
            hostile.append(
                {
                    "mix": "hostile",
                    "uri": "/img/acme/x/0123456789abcdef",
                    "query": HOSTILE_QUERIES[i % len(HOSTILE_QUERIES)],
                    "accept": "image/avif;q=0.x," * 20,
                }
            )
        else:
            hostile.append(
                {
                    "mix": "hostile",
                    "uri": HOSTILE_PATHS[i % len(HOSTILE_PATHS)],
                    "query": "w=320",
                    "accept": None,
                }
            )
    return realistic + hostile


def row5(run: Run) -> None:
    """Per-call time of the generated Function in node, and its size."""
    run.say("row 5: the CloudFront Function")
    title = "## 5. The viewer-request CloudFront Function\n\n"
    target_js = ROOT / ".cache" / "bench" / "viewer-request.js"
    code = (
        "import sys; from imgcdn_edge.function import render_function; "
        "sys.stdout.write(render_function())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0 or not proc.stdout:
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"row 5: not available: {why}")
        run.targets.append(Target("Function per call", "≤ 20 µs", f"not available: {why}", None))
        run.targets.append(Target("Function size", "≤ 10 KB", f"not available: {why}", None))
        run.sections.append(title + f"Not available in this run: {why}.\n")
        return
    target_js.parent.mkdir(parents=True, exist_ok=True)
    target_js.write_text(proc.stdout)
    size = len(proc.stdout.encode())
    requests_file = target_js.with_suffix(".requests.json")
    requests_file.write_text(json.dumps(function_requests(2000 if run.quick else 20000)))
    rounds = 5 if run.quick else 30
    status, _, _, stdout, stderr = wait_rusage(
        ["node", str(HERE / "function_bench.js"), str(target_js), str(requests_file), str(rounds)]
    )
    if status != 0:
        why = (stderr.strip().splitlines() or ["no output"])[-1]
        print(f"row 5: not available: the Function failed in node: {why}")
        run.targets.append(Target("Function per call", "≤ 20 µs", f"failed: {why}", False))
        run.sections.append(title + f"The generated Function failed in node: {why}.\n")
        return
    result = json.loads(stdout.strip().splitlines()[-1])
    run.raw["row5"] = result
    rows = [
        [
            mix,
            f"{result['calls_per_round'][mix]:,}",
            f"{result['ns_per_call'][mix] / 1000:.2f}",
            f"{result['rejected'][mix]:,}",
        ]
        for mix in result["ns_per_call"]
    ]
    per_call = result["ns_per_call"]["all"] / 1000
    worst = max(result["ns_per_call"].values()) / 1000
    run.targets.append(
        Target(
            "Function per call (all; worst mix)",
            "≤ 20 µs",
            f"{per_call:.2f} µs; {worst:.2f} µs",
            worst <= 20,
        )
    )
    run.targets.append(
        Target("Function size", "≤ 10 KB (10,240 bytes)", f"{size:,} bytes", size <= 10240)
    )
    run.sections.append(
        title
        + f"`render_function(DEFAULT_POLICY)`: {size:,} bytes of 10,240 allowed. Per-call time "
        f"in node {_node_version()} (V8, not CloudFront's runtime: read it against the 1 ms "
        f"budget, not as CloudFront's number), median of {rounds} rounds after 2 warm-up "
        "rounds; each round calls the handler once per request on fresh event objects. "
        "*realistic*: the simulator's client mix (device widths, Accept headers, junk and "
        "reordered parameters); *hostile*: huge numbers, repeats, bad percent-encoding, "
        "non-ASCII digits, 60 junk parameters, traversal and oversized paths.\n\n"
        + table(["mix", "calls per round", "µs per call", "answered 400"], rows)
        + "\n"
    )


def _node_version() -> str:
    proc = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.strip()


# --- row 6: the local stack ------------------------------------------------------------------


def row6(run: Run) -> None:
    """The local stack (`imgcdn dev`) under wrk on loopback: cache hits, then misses."""
    run.say("row 6: the local stack")
    title = "## 6. The local stack under load\n\n"
    target = "local stack: hits/s; p99"
    goal = "≥ 3,000/s; ≤ 20 ms"
    imgcdn = Path(sys.executable).parent / "imgcdn"
    why = None
    probe = subprocess.run(
        [str(imgcdn), "dev", "--help"], env=env(), capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        why = "`imgcdn dev` does not exist yet"
    elif shutil.which("wrk") is None:
        why = "wrk is not installed (apt-get install wrk)"
    if why is None:
        try:
            result = _load_local_stack(run)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            why = f"the local stack run failed: {exc}"
    if why is not None:
        print(f"row 6: not available: {why}")
        run.targets.append(Target(target, goal, f"not available: {why}", None))
        run.sections.append(title + f"Not available in this run: {why}.\n")
        return
    run.raw["row6"] = result
    hits = result["hits"]
    rps, p99 = hits["requests_per_s"], hits["latency_ms"].get("99%", math.nan)
    run.targets.append(
        Target(target, goal, f"{rps:,.0f}/s; p99 {p99:.1f} ms", rps >= 3000 and p99 <= 20)
    )
    lat_rows = [[k, f"{v:.2f}"] for k, v in hits["latency_ms"].items()]
    kept, fresh = med(result["misses"][KEPT]), med(result["misses"][FRESH])
    stall = ""
    if kept > 30 and kept > 5 * fresh:
        stall = (
            f" A kept-alive connection waits {kept:.0f} ms per hit against {fresh:.1f} ms on a "
            "fresh one: TCP's delayed ACK (40 ms) meeting Nagle's algorithm, i.e. the accepted "
            "sockets lack TCP_NODELAY (asyncio sets it only on sockets created with "
            "proto=IPPROTO_TCP); wrk keeps its connections alive, so this caps the hit rate."
        )
    miss_rows = [
        [label, f"{med(v):.0f}", f"{min(v):.0f}-{max(v):.0f}", str(len(v))]
        for label, v in result["misses"].items()
    ]
    run.sections.append(
        title
        + f"`imgcdn dev` (the whole pipeline in one process, {result['server']}) on loopback, "
        f"one photo uploaded and precomputed. Cache hits: `wrk -t{result['threads']} "
        f"-c{result['connections']} -d{result['seconds']}s --latency` on one warm URL, wrk "
        "and the server sharing the 2 cores. Misses: one request at a time with a fresh key.\n\n"
        + table(
            ["cache hits", "value"],
            [["requests/s", f"{rps:,.0f}"], ["errors (non-2xx, socket)", str(hits["errors"])]],
        )
        + "\n\nHit latency percentiles (ms):\n\n"
        + table(["percentile", "ms"], lat_rows)
        + "\n\nOne request at a time (ms): a hit on a fresh connection, a hit on a kept-alive "
        "connection, and misses with a fresh key."
        + stall
        + "\n\n"
        + table(["request", "median", "min-max", "n"], miss_rows)
        + "\n"
    )


def _parse_wrk(text: str) -> dict[str, Any]:
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    latency: dict[str, float] = {}
    rps, errors = math.nan, 0
    in_dist = False
    for line in text.splitlines():
        parts = line.split()
        if line.strip().startswith("Latency Distribution"):
            in_dist = True
            continue
        if in_dist and len(parts) == 2 and parts[0].endswith("%"):
            value = parts[1]
            unit = next(u for u in ("us", "ms", "s") if value.endswith(u))
            latency[parts[0]] = float(value[: -len(unit)]) * units[unit]
            continue
        in_dist = False
        if line.startswith("Requests/sec:"):
            rps = float(parts[1])
        if "Non-2xx" in line or "Socket errors" in line:
            errors += sum(int(x.strip(",")) for x in parts if x.strip(",").isdigit())
    return {"requests_per_s": rps, "latency_ms": latency, "errors": errors}


FRESH: Final = "hit, fresh connection each (curl-like)"
KEPT: Final = "hit, one keep-alive connection"


def _hit_latencies(base: str, target: str, n: int = 10) -> dict[str, list[float]]:
    """One request at a time: a hit on a new connection each, and on one kept-alive one."""
    import http.client  # noqa: PLC0415

    host, _, port = base.removeprefix("http://").partition(":")
    found: dict[str, list[float]] = {FRESH: [], KEPT: []}
    keep = http.client.HTTPConnection(host, int(port), timeout=30)
    for _ in range(n):
        fresh = http.client.HTTPConnection(host, int(port), timeout=30)
        for conn, label in ((fresh, FRESH), (keep, KEPT)):
            started = time.perf_counter()
            conn.request("GET", target, headers={"accept": "image/webp"})
            conn.getresponse().read()
            found[label].append((time.perf_counter() - started) * 1000)
        fresh.close()
    keep.close()
    return found


def _wait_for_stack(server: subprocess.Popen[str], errors: Path) -> str:
    """The base URL `imgcdn dev` printed, once it answers its health check."""
    import re  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    line = server.stdout.readline() if server.stdout else ""
    found = re.search(r"(http://[0-9.:a-z]+)/", line)
    if not found:
        server.wait(timeout=30)
        tail = (errors.read_text().strip().splitlines() or ["no output"])[-1]
        msg = f"`imgcdn dev` did not start ({tail[:160]})"
        raise RuntimeError(msg)
    base = found.group(1)
    # The URL is printed once the socket is bound, before the app answers: wait for it.
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_health", timeout=5) as response:
                if response.status == 200:
                    return base
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
        time.sleep(0.2)


def _load_local_stack(run: Run) -> dict[str, Any]:
    import signal  # noqa: PLC0415
    import tempfile  # noqa: PLC0415
    import threading  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    photo = corpus.CORPUS / run.images[0].file
    seconds = 5 if run.quick else 15
    threads, connections = 2, 32
    with tempfile.TemporaryDirectory() as data:
        errors = Path(data) / "server.err"
        with errors.open("w") as err:
            server = subprocess.Popen(
                [str(Path(sys.executable).parent / "imgcdn"), "dev", "--port", "0", "--data", data],
                env=env(),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        try:
            base = _wait_for_stack(server, errors)
            # The stack logs every request on stdout: drain it, or a full pipe stalls the server.
            if server.stdout is not None:
                threading.Thread(target=server.stdout.read, daemon=True).start()
            put = urllib.request.Request(
                f"{base}/_admin/originals/img/bench/photo.jpg?wait=1",
                data=photo.read_bytes(),
                method="PUT",
            )
            with urllib.request.urlopen(put, timeout=600) as response:
                uploaded = json.loads(response.read())
            version = uploaded["version"]
            page = f"{base}/img/bench/photo.jpg/{version}"

            def get(url: str) -> float:
                started = time.perf_counter()
                with urllib.request.urlopen(
                    urllib.request.Request(url, headers={"accept": "image/avif,image/webp,*/*"}),
                    timeout=600,
                ) as response:
                    response.read()
                return (time.perf_counter() - started) * 1000

            hot = f"{page}?w=320&fmt=webp"
            get(hot)
            get(hot)
            wrk = subprocess.run(
                [
                    "wrk",
                    f"-t{threads}",
                    f"-c{connections}",
                    f"-d{seconds}s",
                    "--latency",
                    "-H",
                    "accept: image/webp",
                    hot,
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=seconds + 60,
            )
            if wrk.returncode != 0:
                msg = f"wrk failed: {wrk.stderr.strip()[:200]}"
                raise RuntimeError(msg)
            hits = _parse_wrk(wrk.stdout)
            misses = _hit_latencies(base, hot.removeprefix(base))
            misses["precomputed variant, cold edge cache (S3 read)"] = []
            misses["non-standard variant (fallback render)"] = []
            widths = [160, 320, 480, 640, 960, 1280] if not run.quick else [160, 480]
            for w in widths:
                misses["precomputed variant, cold edge cache (S3 read)"].append(
                    get(f"{page}?w={w}&fmt=jpeg")
                )
                misses["non-standard variant (fallback render)"].append(
                    get(f"{page}?w={w}&h={w}&fmt=webp&q=50")
                )
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return {
        "hits": hits,
        "misses": misses,
        "threads": threads,
        "connections": connections,
        "seconds": seconds,
        "server": "uvicorn, one worker process",
    }


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


# --- the simulator ---------------------------------------------------------------------------


def simulator(run: Run) -> None:
    """The cache-economics simulator at the default policy."""
    run.say("simulator")
    from imgcdn_sim import economics  # noqa: PLC0415

    config = economics.Config(requests=1_000_000) if run.quick else economics.Config()
    prices = economics.Prices()
    started = time.perf_counter()
    results = economics.simulate(config, progress=sys.stderr.isatty())
    elapsed = time.perf_counter() - started
    data = economics.report(results, prices, config)
    run.raw["simulator"] = data
    canonical, raw = data["modes"]["canonical"], data["modes"]["raw"]
    saved = raw["monthly_cost"]["total"] - canonical["monthly_cost"]["total"]
    run.sections.append(
        "## The cache-economics simulator (`imgcdn simulate`, default policy)\n\n"
        f"`benchmarks/run.sh` ran `imgcdn simulate` with its defaults: {config.requests:,} "
        f"requests replayed in {elapsed:.0f} s (all three modes, two processes; the trace is "
        "generated once per process from the same seed). The first "
        f"{config.warmup:.0%} of the trace only warms the caches.\n\n"
        + economics.format_table(data)
        + "\n\nInputs (every price is an option of `imgcdn simulate`; defaults are the seeds'):\n\n"
        + "```\n"
        + economics.format_inputs(data)
        + "\n```\n\n"
        f"The canonical key saves ${saved:,.0f}/month against no canonicalization at the "
        "same traffic; egress is the floor every mode pays.\n"
    )
    run.targets.append(
        Target(
            "simulator: 10 M requests replayed",
            "< 60 s",
            f"{elapsed:.0f} s for {config.requests:,} x 3 modes",
            elapsed < 60 if config.requests >= 10_000_000 else None,
        )
    )


# --- the report ------------------------------------------------------------------------------


def versions() -> list[str]:
    """Exact versions of everything measured."""
    from importlib.metadata import version  # noqa: PLC0415

    import pyvips  # noqa: PLC0415
    from PIL import features  # noqa: PLC0415

    def cmd(*args: str) -> str:
        try:
            return subprocess.run(
                args, capture_output=True, text=True, check=False, timeout=30, cwd=HERE
            ).stdout.strip()
        except OSError:
            return "not installed"

    sharp = cmd(
        "node",
        "-e",
        "const v=require('sharp').versions;console.log(v.sharp+' (libvips '+v.vips+', mozjpeg '"
        "+v.mozjpeg+', libwebp '+v.webp+', libheif '+v.heif+', aom '+v.aom+')')",
    )
    if not sharp:
        sharp = "not installed"
    libvips = f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    deb = cmd("dpkg-query", "-W", "-f", "${Package} ${Version}; ", "libvips-tools", "wrk")
    return [
        f"imgcore {version('imgcore')}: pyvips {version('pyvips')} + pyvips-binary "
        f"{version('pyvips-binary')} (libvips {libvips})",
        f"Pillow {version('pillow')} (libjpeg-turbo {features.version('jpg')}, libwebp "
        f"{features.version('webp')}, libavif {features.version('avif')})",
        f"sharp {sharp}, node {_node_version()} (run from `benchmarks/node_modules`, pinned by "
        "`benchmarks/package-lock.json`)",
        f"vipsthumbnail: {cmd('vipsthumbnail', '--vips-version') or 'not installed'} "
        f"(Debian: {deb.strip() or 'not installed'})",
        f"Python {platform.python_version()}, uv {cmd('uv', '--version').removeprefix('uv ')}",
        f"corpus: {corpus.versions()}",
    ]


def machine() -> list[str]:
    """The machine, as far as it can be seen from inside."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({model}), "
        f"{mem:.0f} GiB, kernel {platform.release()}"
    ]


def render(run: Run, started: float, load_before: tuple[float, float, float]) -> str:
    """The whole report."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_after = os.getloadavg()
    spreads = sorted(run.spreads)
    out = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/run.sh from a real run; do not edit by hand. -->",
        "",
        "How imgcore compares with the tools users would otherwise pick, measured on one machine "
        "in one run: read the **ratios**, not the absolute times (the machine is a shared, "
        "noisy 2-core VM). Nothing here is asserted by a test.",
        "",
        "## How to run",
        "",
        "```sh",
        "benchmarks/run.sh            # everything (about 30 minutes here); rewrites this file",
        "benchmarks/run.sh --quick    # smoke run: 2 photos, 1 timed run per cell, 1 M requests",
        "benchmarks/run.sh --rows 1,5 # some rows only (1-7, tuning, profile, sim)",
        "uv run imgcdn simulate --help  # the simulator alone, every input an option",
        "```",
        "",
        "`run.sh` bootstraps what it needs: the workspace (`scripts/bootstrap.sh`), sharp "
        "(`npm ci` in `benchmarks/`), Debian's `libvips-tools` and `wrk` (`apt-get`), and the "
        "corpus (Debian wallpaper packages, Pillow's sdist, scikit-image's wheel) into "
        "`.cache/bench/`. Raw per-run numbers of the last run: `.cache/bench/last-run.json`.",
        "",
        "## This run",
        "",
        f"- date: {now}{' (quick mode)' if run.quick else ''}; "
        f"benchmark wall time {time.perf_counter() - started:.0f} s",
        *(f"- machine: {m}" for m in machine()),
        f"- load average (1/5/15 min) before: {'/'.join(f'{x:.1f}' for x in load_before)}, "
        f"after: {'/'.join(f'{x:.1f}' for x in load_after)} (other engineers' jobs share the "
        "machine)",
        f"- settings: median of {run.runs} timed runs (AVIF {run.avif_runs}, sets "
        f"{run.set_runs}) after 1 warm-up per cell; each cell a fresh process; libvips at 1 "
        "thread (`VIPS_CONCURRENCY=1`, `sharp.concurrency(1)`), operation cache off; tools "
        "interleaved per image (rotating order)",
        *(f"- {v}" for v in versions()),
    ]
    partial = run.raw.get("partial_rows")
    if partial:
        dates = ", ".join(f"{name}: {date}" for name, date in partial.items())
        out.append(f"- rows were measured in separate invocations of the same command: {dates}")
    if spreads:
        out.append(
            "- noise: run-to-run spread within a cell, (max-min)/median: "
            f"median {med(spreads):.0%}, 90th percentile {spreads[int(len(spreads) * 0.9)]:.0%}, "
            f"worst {spreads[-1]:.0%} over {len(spreads)} cells"
        )
    out += [
        "",
        "## Targets",
        "",
        table(
            ["target", "goal", "measured", "verdict"],
            ([t.name, t.goal, t.measured, verdict(t.passed)] for t in run.targets),
            "llll",
        ),
        "",
    ]
    missed = [t for t in run.targets if t.passed is False]
    if missed:
        out += ["### Missed targets: by how much, why, and what was tried", ""]
        out += [
            f"- **{t.name}** (goal {t.goal}, measured {t.measured}): {why_missed(t.name)}"
            for t in missed
        ]
        out.append("")
    out += run.sections
    out += [
        "## Method",
        "",
        "- **Corpus**: `benchmarks/imgcdn_bench/corpus.py` assembles it; the timing tables use "
        "the real photographs (`photo-*`), the odd files are there for admission and decoding. "
        "Manifest:",
        "",
        table(
            ["file", "format", "WxH", "bytes", "MP", "notes", "origin"],
            (
                [
                    e.file,
                    e.format,
                    f"{e.width}x{e.height}",
                    f"{e.bytes:,}",
                    f"{e.megapixels:.1f}",
                    e.notes,
                    e.origin,
                ]
                for e in corpus.load()
            ),
            "llrrrll",
        ),
        "",
        "- **Peers**: `pyvips-thumb` = `thumbnail_buffer(data, W, height=10_000_000, size='down')` "
        "then the format's save with its defaults apart from Q; `pyvips-naive` = full decode, "
        "`autorot()`, `resize(W / width, kernel='lanczos3')`; `pillow` = `Image.open`, `draft()` "
        "to the output size (JPEG DCT scaling), `exif_transpose`, `thumbnail(LANCZOS)` (default "
        "`reducing_gap=2.0`), `save(quality=Q)`; `sharp` = "
        "`sharp(buffer).autoOrient().resize({width, "
        "withoutEnlargement: true}).webp/jpeg/avif({quality})`; `vipsthumbnail` = Debian's CLI, "
        "one process per render, reading the file. In-process tools start from the original's "
        "bytes in memory, as the Lambdas do after their S3 GET.",
        "- **Measures**: wall time (`perf_counter` / `hrtime`), CPU time of the whole process "
        "(all threads), peak RSS (`ru_maxrss`, whole process), base RSS after the imports. "
        "vipsthumbnail is measured from outside per child (`wait4`).",
        "- **SSIM** (`benchmarks/imgcdn_bench/quality.py`, numpy is not in the workspace): "
        + quality.__doc__.split("\n\n")[1].replace("\n", " ")
        + " "
        + quality.__doc__.split("\n\n")[2].replace("\n", " "),
        "",
    ]
    return "\n".join(out)


_DECODER_WHY: Final = (
    "decode + resize is about 90 % of the CPU (*Where the time goes*). Pillow's recipe "
    "(`draft()` to the output size, then `thumbnail`) decodes at the smallest DCT scale that "
    "covers the output; imgcore keeps twice the output's size for lanczos3 to work with. The "
    "*tight* knob (imgcore at Pillow's decode scale) recovers part of the gap and costs the "
    "worst image several hundredths of SSIM, about where Pillow's worst image lands (the "
    "knob table's worst column). At the same scale the libvips wheel's JPEG decoder (mozjpeg) "
    "spends a few to ten per cent more CPU than Pillow's libjpeg-turbo (the decoder table); "
    "the rest is reducing the larger image. Also tried: cubic and linear reduce kernels (no faster "
    "here, lower SSIM), WebP effort 2, baseline JPEG, no Huffman optimisation. Kept: the "
    "margin, since the same target asks for equal quality, and its worst case is what a "
    "shop's detailed product photo looks like."
)
WHY_MISSED: Final = {
    "JPEG → WebP 320": _DECODER_WHY,
    "JPEG → JPEG 640": _DECODER_WHY,
    "webp320: bytes": (
        "WebP q80 at effort 4 on both sides: the difference is the pixels. imgcore's keep more "
        "detail (its SSIM is above Pillow's) and detail costs bytes; the tight DCT knob, which "
        "softens the way Pillow's draft does, writes about Pillow's bytes (*Tuning knobs*)."
    ),
    "avif1280: bytes": (
        "imgcore encodes AVIF at effort 2, the peer at libvips' default 4: *Tuning knobs* shows "
        "effort 3 and 4 writing fewer bytes for 1.2x and about 5x the CPU. The CPU target "
        "(≤ 0.60x) and this one pull against each other; effort 2 is the product's choice, since "
        "a Lambda bills that CPU on every miss and precompute on every upload."
    ),
    "avif1280: SSIM": (
        "AVIF effort 2 against the peer's 4 (*Tuning knobs*: the effort rows' SSIM change); the "
        "same trade as the bytes row."
    ),
    "render_variants": (
        "the eight encodes are the same work on both sides and no cascade removes them; one decode "
        "saves the seven other decodes, which shrink-on-load already makes cheap for the small "
        "widths (a 160 px render decodes a 12 MP JPEG at 1/8). Decoding the master at a tighter "
        "DCT scale would save more and was refused for its quality (*Tuning knobs*, worst SSIM)."
    ),
    "import imgcore": (
        "pydantic builds the Policy models' validators when `imgcore.policy` is imported (the "
        "importtime table: pydantic's own import, its plugin loader's `importlib.metadata` and "
        "schema generation make up most of it), and with the page cache evicted pydantic_core's "
        "shared object is read from disk. Tried: cryptography deferred to the signing functions "
        "(about 25 ms). The fallback module, which is what a Lambda cold start pays, meets its "
        "target."
    ),
    "local stack": "see section 6.",
}


def why_missed(name: str) -> str:
    """The recorded reason a target is missed (its name's longest matching prefix)."""
    matches = [prefix for prefix in WHY_MISSED if name.startswith(prefix)]
    if not matches:
        return "no analysis recorded for this target yet: profile it before claiming a cause."
    return WHY_MISSED[max(matches, key=len)]


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


__all__ = ["ROWS", "Run", "Target", "geomean", "main", "med", "table"]
