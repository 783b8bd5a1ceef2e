"""The stage profile: where a render's time goes (decode, resize, encode) per job."""


# opens loopback URLs only, draws traces from a seeded PRNG and prints its results.

from __future__ import annotations

from imgcdn_bench import corpus
from imgcdn_bench.cells import run_cell
from imgcdn_bench.harness import JOB_TITLES, JOBS, Run, fmt_ratio, geomean, med, table


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
