"""Row 5: the CloudFront Function's per-request cost, hostile requests included.

A row's function is long on purpose: it is one linear script of measurements, each step
feeding the next and the report, and reads best top to bottom.
"""

# ruff: noqa: S603, S311, T201 - a harness: it runs its own tools with fixed argv,
# opens loopback URLs only, draws traces from a seeded PRNG and prints its results.

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Final

from imgcdn_bench.cells import HERE, ROOT, env, wait_rusage
from imgcdn_bench.harness import Run, Target, node_version, table

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
        f"in node {node_version()} (V8, not CloudFront's runtime: read it against the 1 ms "
        f"budget, not as CloudFront's number), median of {rounds} rounds after 2 warm-up "
        "rounds; each round calls the handler once per request on fresh event objects. "
        "*realistic*: the simulator's client mix (device widths, Accept headers, junk and "
        "reordered parameters); *hostile*: huge numbers, repeats, bad percent-encoding, "
        "non-ASCII digits, 60 junk parameters, traversal and oversized paths.\n\n"
        + table(["mix", "calls per round", "µs per call", "answered 400"], rows)
        + "\n"
    )
