"""Measure the fallback handler's overhead over a bare `imgcore.transform` (not a test).

    VIPS_CONCURRENCY=1 uv run python -m tests.edge.measure_handler [PHOTO] [--runs N]

PHOTO defaults to the 12.2 MP `sunset_by_Aitzol_Berasategi.jpg` that `scripts/photos.sh`
fetches into .cache/photos/. For each variant, interleaved, median of N runs:

- `transform`: `imgcore.transform(data, params)` alone;
- `memory`: the whole handler (event parsing, version hash, worker thread, store,
  base64, log and EMF lines) over in-memory stores: the fallback's own overhead;
- `moto`: the same over moto's in-process S3 (boto3 request building and moto's
  bookkeeping; no network), as close to Lambda as this machine gets.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import structlog
from moto import mock_aws
from tests.edge.conftest import LambdaContext, function_url_event

from imgcdn_aws.emf import Metrics
from imgcdn_aws.s3 import S3Store
from imgcdn_edge.handler import FallbackHandler, build_handler
from imgcore import ImageRef, content_version, parse_derivative_uri
from imgcore.pixels import transform
from imgcore.storage import MemoryStore

PHOTO = Path(".cache/photos/sunset_by_Aitzol_Berasategi.jpg")
VARIANTS = ("w640-q80.webp", "w1280-q80.jpeg", "w320-q60.avif")
IMAGE = ImageRef("acme", "photos/sunset.jpg")


def _handler_run(handler: FallbackHandler, uri: str, delete: Callable[[], None]) -> float:
    delete()  # every run is a miss that renders and stores
    event = function_url_event("get.json", uri)
    started = time.perf_counter()
    response = handler(event, LambdaContext(60_000))
    elapsed = time.perf_counter() - started
    if response["statusCode"] != 200:
        raise RuntimeError(response["body"])
    return elapsed


def main() -> None:
    """Print medians per variant and mode, and the handler's overhead."""
    parser = argparse.ArgumentParser()
    parser.add_argument("photo", nargs="?", default=str(PHOTO))
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    data = Path(args.photo).read_bytes()
    version = content_version(data)
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # logs cost, not I/O
    sink = io.StringIO()

    memory_originals, memory_derivatives = MemoryStore(), MemoryStore()
    memory_originals.put(IMAGE.source_key, data)
    memory = build_handler(
        originals=memory_originals, derivatives=memory_derivatives, metrics=Metrics(sink)
    )
    results: dict[str, dict[str, float]] = {}
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in ("originals", "derivatives"):
            client.create_bucket(Bucket=bucket)
        client.put_object(Bucket="originals", Key=IMAGE.source_key, Body=data)
        moto_derivatives = S3Store("derivatives", client=client)
        moto = build_handler(
            originals=S3Store("originals", client=client),
            derivatives=moto_derivatives,
            metrics=Metrics(sink),
        )
        for variant in VARIANTS:
            uri = IMAGE.public_path(version) + "/" + variant
            key = IMAGE.version_prefix(version) + variant
            params = parse_derivative_uri(uri).params
            times: dict[str, list[float]] = {m: [] for m in ("transform", "memory", "moto")}
            transform(data, params)  # warm-up: libvips loads its codecs once
            for _ in range(args.runs):
                started = time.perf_counter()
                transform(data, params)
                times["transform"].append(time.perf_counter() - started)
                times["memory"].append(
                    _handler_run(memory, uri, lambda k=key: memory_derivatives.delete(k))
                )
                times["moto"].append(
                    _handler_run(moto, uri, lambda k=key: moto_derivatives.delete(k))
                )
            medians = {mode: statistics.median(t) * 1000 for mode, t in times.items()}
            results[variant] = {
                **{f"{mode}_ms": round(ms, 1) for mode, ms in medians.items()},
                "overhead_memory_ms": round(medians["memory"] - medians["transform"], 1),
                "overhead_moto_ms": round(medians["moto"] - medians["transform"], 1),
            }
    report = {
        "photo": args.photo,
        "photo_bytes": len(data),
        "runs": args.runs,
        "vips_concurrency": os.environ.get("VIPS_CONCURRENCY", "(libvips default)"),
        "variants": results,
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
