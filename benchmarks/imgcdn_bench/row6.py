"""Row 6: the local stack under load (wrk): cache hits, misses and their latency.

A row's function is long on purpose: it is one linear script of measurements, each step
feeding the next and the report, and reads best top to bottom.
"""

# ruff: noqa: S603, S607, S310, T201 - a harness: it runs its own tools with fixed argv,
# opens loopback URLs only, draws traces from a seeded PRNG and prints its results.

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

from imgcdn_bench import corpus
from imgcdn_bench.cells import env
from imgcdn_bench.harness import Run, Target, med, table

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
