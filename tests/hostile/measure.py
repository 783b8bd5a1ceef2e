"""Child process of the memory measurements: one file through one stage, peak RSS as JSON.

`python -m tests.hostile.measure STAGE FILE [--formats jpeg,webp]` (from the repository root)
prints `{"outcome", "status", "detail", "baseline_bytes", "peak_bytes", "ms"}`: the baseline is
the process's peak RSS (VmHWM) after the stage's modules are imported, before the file is read;
`peak_bytes - baseline_bytes` is what the render added.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path

import structlog

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def _peak_rss() -> int:
    # VmHWM, the peak of this process's own address space. Not `ru_maxrss`: Linux carries the
    # parent's peak across fork and exec into it, so a child of a big parent (a pytest run that
    # built large files) would report the parent's peak as its own.
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: list[str] | None = None) -> int:
    """Measure one stage of one file; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage")
    parser.add_argument("file", type=Path)
    parser.add_argument("--formats", help="restrict the standard set to these formats")
    args = parser.parse_args(argv)

    from tests.hostile.corpus import Result, run_stage

    import imgcore.pixels

    # The services' modules count in the baseline, not in the render (imported only when used).
    if args.stage == "precompute":
        import imgcdn_precompute.service  # noqa: F401
    if args.stage == "fallback":
        import imgcdn_edge.service  # noqa: F401
    data = args.file.read_bytes()
    baseline = _peak_rss()
    started = time.perf_counter()
    if args.formats:
        from imgcore import ImgcoreError, OutputFormat

        wanted = {OutputFormat(f) for f in args.formats.split(",")}
        params = [p for p in imgcore.pixels.standard_params() if p.fmt in wanted]
        try:
            outputs = imgcore.pixels.render_variants(data, params)
            result = Result("ok", 200, f"{len(outputs)} outputs")
        except ImgcoreError as exc:
            result = Result(type(exc).__name__, exc.http_status, str(exc))
    else:
        result = run_stage(args.stage, args.file.name, data)
    ms = (time.perf_counter() - started) * 1000
    json.dump(
        {
            "outcome": result.outcome,
            "status": result.status,
            "detail": result.detail,
            "baseline_bytes": baseline,
            "peak_bytes": _peak_rss(),
            "ms": round(ms, 1),
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
