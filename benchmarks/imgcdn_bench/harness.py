"""What every benchmark row shares: the run and its targets, the cells, number formatting."""

# ruff: noqa: S603, S607 - a harness: it runs its own tools with fixed argv,
# opens loopback URLs only, draws traces from a seeded PRNG and prints its results.

from __future__ import annotations

import math
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from imgcdn_bench import corpus, quality
from imgcdn_bench.cells import OUT, ROOT, env, run_cell

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


def node_version() -> str:
    proc = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.strip()
