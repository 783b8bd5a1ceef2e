"""The tuning knobs: each encoder setting against the default, on the row-1 jobs."""


# opens loopback URLs only, draws traces from a seeded PRNG and prints its results.

from __future__ import annotations

from typing import Final

from imgcdn_bench.harness import (
    Run,
    add_quality,
    bench_cells,
    fmt_ratio,
    geomean,
    med,
    table,
    value_of,
)

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
