"""Row 4: Lambda cold start (import time from a cold page cache) and bundle sizes.

A row's function is long on purpose: it is one linear script of measurements, each step
feeding the next and the report, and reads best top to bottom.
"""

# ruff: noqa: S603, S607, T201 - a harness: it runs its own tools with fixed argv,
# opens loopback URLs only, draws traces from a seeded PRNG and prints its results.

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from imgcdn_bench.cells import ROOT, env, wait_rusage
from imgcdn_bench.harness import Run, Target, med, table

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
