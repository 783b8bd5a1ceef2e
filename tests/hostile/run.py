"""Run the whole hostile-input corpus, one process per file and stage (scripts/hostile-corpus.sh).

Builds every case of `tests.hostile.corpus` (the CI tier, the large files and the images that
installed wheels ship) into a directory, puts each through each stage with
`tests.hostile.measure`, and reports per file and stage: the outcome (ok or the typed error) and
status, the peak RSS the render added, the time, and whether that matches the file class's row
of `EXPECTATIONS`, stays under `Limits.max_render_bytes` and within the stage's deadline (the
fallback's 30 s origin timeout for `transform` and `fallback`, the precompute worker's 300 s
for `render_variants` and `precompute`; the defaults of imgcdn_infra's config).

Exit status 1 when any file breaks its expectation, the memory bound or its deadline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.hostile.corpus import EXPECTATIONS, ROOT, STAGES, Case, cases, installed_images

from imgcore import DEFAULT_POLICY

DEADLINE_S = {
    "probe": 30.0,
    "transform": 30.0,
    "fallback": 30.0,
    "render_variants": 300.0,
    "precompute": 300.0,
}
"""Seconds each stage may take: the Lambda timeout of the function that runs it."""


def _say(text: str, *, err: bool = False, end: str = "\n") -> None:
    (sys.stderr if err else sys.stdout).write(text + end)


def _measure(path: Path, stage: str) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-m", "tests.hostile.measure", stage, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"VIPS_CONCURRENCY": "1", "PATH": "/usr/bin:/bin"},
        timeout=DEADLINE_S[stage] * 4,
    )
    if run.returncode != 0:
        return {
            "outcome": "crash",
            "status": 0,
            "detail": run.stderr.strip()[-300:],
            "ms": 0.0,
            "peak_bytes": 0,
            "baseline_bytes": 0,
        }
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def _check(case: Case, stage: str, result: dict[str, Any]) -> list[str]:
    expected = EXPECTATIONS[case.file_class]
    problems = []
    if result["outcome"] not in expected.allowed(stage):  # type: ignore[arg-type]
        problems.append(f"expected {expected.outcome}")
    elif stage == "fallback" and result["outcome"] != "ok" and result["status"] != expected.status:
        problems.append(f"expected status {expected.status}")
    added = result["peak_bytes"] - result["baseline_bytes"]
    if added >= DEFAULT_POLICY.limits.max_render_bytes:
        problems.append(f"peak RSS over the {DEFAULT_POLICY.limits.max_render_bytes:,} bound")
    if result["ms"] > DEADLINE_S[stage] * 1000:
        problems.append(f"over the {DEADLINE_S[stage]:.0f} s deadline")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Run the corpus; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument("--tier", choices=["ci", "all"], default="all")
    parser.add_argument("--stage", action="append", choices=STAGES, help="only these stages")
    parser.add_argument("--keep", type=Path, help="write the corpus here and keep it")
    args = parser.parse_args(argv)

    corpus = [c for c in cases() if args.tier == "all" or c.tier == "ci"]
    if args.tier == "all":
        corpus += list(installed_images())
    stages = args.stage or list(STAGES)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        total = len(corpus) * len(stages)
        done = 0
        if not args.json:
            _say(
                f"{'file':44} {'class':18} {'stage':15} {'outcome':17} {'st':>3} "
                f"{'+RSS MB':>7} {'ms':>8}  check"
            )
        for case in corpus:
            path = folder / case.name
            path.write_bytes(case.build())
            for stage in stages:
                done += 1
                _say(f"[{done}/{total}] {case.name} {stage}", err=True, end="\r")
                started = time.perf_counter()
                result = _measure(path, stage)
                problems = _check(case, stage, result)
                failures += bool(problems)
                added_mb = (result["peak_bytes"] - result["baseline_bytes"]) / 2**20
                if args.json:
                    _say(
                        json.dumps(
                            {
                                "file": case.name,
                                "class": case.file_class,
                                "bytes": path.stat().st_size,
                                "stage": stage,
                                **result,
                                "added_rss_bytes": round(added_mb * 2**20),
                                "wall_ms": round((time.perf_counter() - started) * 1000, 1),
                                "problems": problems,
                            }
                        )
                    )
                else:
                    _say(
                        f"{case.name[:44]:44} {case.file_class:18} {stage:15} "
                        f"{result['outcome']:17} {result['status']:>3} {added_mb:7.1f} "
                        f"{result['ms']:8.0f}  {'; '.join(problems) or 'ok'}"
                    )
    _say(f"{failures} of {total} checks failed", err=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
