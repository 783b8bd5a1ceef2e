"""Run one benchmark cell in a fresh process, whatever the tool, and read its result."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

HERE: Final = Path(__file__).resolve().parent
BENCH_DIR: Final = HERE.parent
ROOT: Final = BENCH_DIR.parent
OUT: Final = ROOT / ".cache" / "bench" / "out"
TIMEOUT_S: Final = 900

# Output format and quality of each single-output job, for the CLI tools.
CLI_JOBS: Final = {
    "webp320": ("webp", 320, 80),
    "jpeg640": ("jpeg", 640, 80),
    "avif1280": ("avif", 1280, 60),
}


def env(threads: int = 1) -> dict[str, str]:
    """The environment of a cell: libvips at `threads` threads, this package importable."""
    path = os.pathsep.join(p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "VIPS_CONCURRENCY": str(threads), "PYTHONPATH": path}


def wait_rusage(
    cmd: list[str], environ: dict[str, str] | None = None
) -> tuple[int, float, Any, str, str]:
    """Run a command; return its status, wall seconds, own rusage, stdout and stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=environ)  # noqa: S603
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return proc.returncode, wall, usage, out.read().decode(), err.read().decode()


# Fork/exec the command from a small interpreter and report the child's own rusage: ru_maxrss
# of a child forked straight from this (large) process would include this process's memory.
_LAUNCHER: Final = """
import json, os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(out, "w") as f:
    json.dump({"status": os.waitstatus_to_exitcode(status), "wall": wall,
               "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss}, f)
"""


def launch(cmd: list[str], environ: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """Run `cmd` under the launcher: its status, wall, CPU seconds and own peak RSS; stderr."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        proc = subprocess.run(  # noqa: S603
            [sys.executable, "-S", "-c", _LAUNCHER, str(result), *cmd],
            env=environ,
            capture_output=True,
            text=True,
            check=False,
        )
        if not result.exists():
            return {"status": proc.returncode, "wall": 0.0, "cpu": 0.0, "maxrss_kb": 0}, proc.stderr
        return json.loads(result.read_text()), proc.stderr


def run_cell(spec: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """One cell: a fresh worker process (python or node) or CLI processes (vipsthumbnail)."""
    tool = spec["tool"]
    if tool == "vipsthumbnail":
        return _vipsthumbnail(spec, threads)
    if tool == "sharp":
        cmd = ["node", str(HERE / "sharp_worker.js"), json.dumps(spec)]
    else:
        cmd = [sys.executable, "-m", "imgcdn_bench.worker", json.dumps(spec)]
    status, _, _, stdout, stderr = wait_rusage(cmd, env(threads))
    if status != 0 or not stdout.strip():
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"{tool} exited {status}: {tail}"}
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def _vipsthumbnail(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """Debian's CLI: one process per render, timed from outside (wall, CPU and RSS per child)."""
    if shutil.which("vipsthumbnail") is None:
        return {"error": "vipsthumbnail is not installed (apt-get install libvips-tools)"}
    fmt, width, q = CLI_JOBS[spec["job"]]
    wall, cpu, peak = [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / f"out.{fmt}"
        cmd = ["vipsthumbnail", spec["image"], "-s", f"{width}x", "-o", f"{target}[Q={q}]"]
        for index in range(spec.get("warmup", 1) + spec["runs"]):
            usage, stderr = launch(cmd, env(threads))
            if usage["status"] != 0:
                return {"error": f"vipsthumbnail exited {usage['status']}: {stderr.strip()[-200:]}"}
            if index >= spec.get("warmup", 1):
                wall.append(usage["wall"] * 1000)
                cpu.append(usage["cpu"] * 1000)
                peak = max(peak, usage["maxrss_kb"])
        data = target.read_bytes()
        if spec.get("out"):
            Path(spec["out"]).mkdir(parents=True, exist_ok=True)
            (Path(spec["out"]) / "0.bin").write_bytes(data)
    return {
        "wall_ms": wall,
        "cpu_ms": cpu,
        "base_rss_kb": 0,
        "peak_rss_kb": peak,
        "out_bytes": [len(data)],
    }


def own_peak_rss_mib() -> float:
    """Peak RSS of this process, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
