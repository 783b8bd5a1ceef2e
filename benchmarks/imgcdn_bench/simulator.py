"""The simulator row: `imgcdn simulate` at the default policy, priced."""


# opens loopback URLs only, draws traces from a seeded PRNG and prints its results.

from __future__ import annotations

import sys
import time

from imgcdn_bench.harness import Run, Target

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
