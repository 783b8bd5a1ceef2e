"""imgcdn sim: the cache-economics simulator (`imgcdn simulate`), for the CLI and the benchmarks.

It replays a synthetic trace through imgcore's canonicalizer against a model of CloudFront; it
needs nothing but imgcore, so it lives apart from the local dev stack and the AWS adapters.
"""

from __future__ import annotations

from imgcdn_sim.economics import (
    MODES,
    Config,
    ModeResult,
    Prices,
    Shape,
    costs,
    make_shapes,
    simulate,
)

__all__ = ["MODES", "Config", "ModeResult", "Prices", "Shape", "costs", "make_shapes", "simulate"]
