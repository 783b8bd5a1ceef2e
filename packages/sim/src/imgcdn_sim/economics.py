"""`imgcdn simulate`: the cache economics of the canonical key, as numbers.

A synthetic trace (Zipf image popularity over a catalogue; widths from real device widths x
DPRs x layout slots, plus srcset-aware clients; a mix of `Accept` headers; junk, repeated and
reordered parameters) is replayed through the real canonicalizer (`imgcore.rewrite`) against
an LRU model of CloudFront: several edge PoPs in front of one Origin Shield, in front of the
derivatives bucket, with the fallback transformer behind it. The same trace runs three ways:

* `canonical`: the design: the viewer-request Function snaps `w`/`h`/`q`, drops junk and
  resolves `fmt=auto`; the standard set is precomputed, anything else is rendered once by the
  fallback and stored, so a later origin request for it is a plain S3 GET;
* `no-snap`: the same, but any width or height passes through unsnapped;
* `raw`: no canonicalization at all: the full query string and the `Accept` header are the
  cache key, nothing is precomputed, and every origin request is an on-the-fly transform (the
  seeds' naive design).

Costs scale the trace's per-request rates to the seeds' service (1 B requests/day, 30 days)
with the seeds' prices; every price is an option whose default is printed. The canonicalizer
is memoized on the raw (query, Accept) strings of the trace's request shapes (a few thousand
distinct strings), which is what lets 10 M requests replay in well under a minute.

Model limits: LRU by object count (no TTLs, no object sizes), requests in sequence (Origin
Shield's collapsing of concurrent misses is not modelled, which favours no mode), and a
trace shorter than a day of the real service: hit ratios are those of the trace, and the
dollar figures scale its per-request rates linearly.
"""

# ruff: noqa: S311, PLR0912, PLR0915 - the trace is a seeded simulation, not cryptography; the
# replay loop is one function on purpose (every call in it costs per request).

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import queue as queue_module
import random
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import accumulate
from typing import Any, Final

from imgcore import DEFAULT_POLICY, InvalidRequest, Policy, TransformParams, rewrite

__all__ = [
    "MODES",
    "Config",
    "ModeResult",
    "Prices",
    "Shape",
    "configure",
    "costs",
    "main",
    "make_shapes",
    "simulate",
]

MODES: Final = ("canonical", "no-snap", "raw")
_CHUNK: Final = 100_000
_PATH: Final = "/img/acme/products/{}/0123456789abcdef"
_UNIQUE: Final = 1 << 62
"""Raw keys from here up are unique per request (their junk value never repeats)."""
_REJECTED: Final = -1
_UNIQUE_JUNK: Final = -2


@dataclass(frozen=True)
class Prices:
    """Price inputs; the defaults are the seeds' (architecture review, 1 B requests/day)."""

    requests_per_day: float = 1e9
    """The service the costs are scaled to."""
    days_per_month: float = 30
    object_kb: float = 40
    """Average delivered object, KB (seed: 40 KB)."""
    egress_per_gb: float = 0.06
    """CloudFront data transfer out at the committed-use tier (seed)."""
    # CloudFront on-demand price list, https://aws.amazon.com/cloudfront/pricing/ (read in the
    # stored copy of the page, 2025): HTTPS requests per 10,000 are $0.0100 in United States,
    # Mexico and Canada (Europe and Israel $0.0120; South America $0.0220); the always-free tier's
    # 10 M requests a month are ignored at this scale. The seed left this line out.
    cloudfront_per_10k_requests: float = 0.0100
    """CloudFront HTTPS request fee, per 10,000 requests, every request (US, Mexico, Canada)."""
    function_per_million: float = 0.10
    """CloudFront Functions invocations (seed), charged on every request that runs one."""
    shield_per_10k: float = 0.0075
    """Origin Shield, per request routed through it, i.e. per edge miss (seed, US)."""
    s3_get_per_1k: float = 0.0004
    """S3 GET (seed)."""
    s3_put_per_1k: float = 0.005
    """S3 PUT (AWS S3 Standard list price; the seed has no write line)."""
    s3_gb_month: float = 0.023
    """S3 Standard storage (seed)."""
    stored_kb: float = 50
    """Average stored derivative, KB (seed's precompute estimate)."""
    lambda_gb_second: float = 0.00005001
    """Lambda compute, per GB-second (seed's Lambda@Edge price; regional Lambda is 1/3 of it)."""
    lambda_per_million: float = 0.60
    """Lambda invocations (seed's Lambda@Edge price)."""
    transform_ms: float = 500
    """One on-the-fly or fallback render (seed: ~500 ms)."""
    transform_mb: float = 128
    """Memory of the transform Lambda (seed: 128 MB)."""
    precompute_s: float = 6.0
    """One standard-set render per upload: `render_variants` of the 24 variants took 2.2-5.8 CPU
    seconds on 10-18 MP photos here (docs/benchmarks.md, row 2)."""
    precompute_mb: float = 1769
    """Memory of the precompute worker (1769 MB = one full vCPU)."""
    uploads_per_month_per_image: float = 1.0
    """Uploads (new versions) per catalogue image per month: 1 = a full refresh monthly."""


@dataclass(frozen=True)
class Config:
    """The trace and the cache model."""

    requests: int = 10_000_000
    catalogue: int = 2_000
    """Images in the catalogue. 10 M requests over 2,000 images is 5,000 requests per image,
    the order of the seeds' service (1 B requests/day over 100k products = 10k per image per
    day): the trace is a scaled-down day, so that its hit ratios are a day's."""
    zipf: float = 0.9
    """Zipf exponent of image popularity."""
    pops: int = 12
    """Edge PoPs; traffic shares fall off as 1/sqrt(rank)."""
    edge_capacity: int = 20_000
    """Objects one PoP's cache holds (LRU)."""
    shield_capacity: int = 80_000
    """Objects Origin Shield holds (LRU)."""
    warmup: float = 0.2
    """Share of the trace that only warms the caches; ratios count the rest."""
    shapes: int = 20_000
    """Request shapes drawn from the client mix (each a raw query string and Accept header)."""
    seed: int = 1


@dataclass(frozen=True, slots=True)
class Shape:
    """One kind of request: its raw query, `Accept` header and whether its junk is unique."""

    query: str
    accept: str | None
    unique_junk: bool
    """A per-request value (click id, cache-buster): every such request is a new raw key."""


# CSS viewport width, device pixel ratio, share of traffic (common phones, tablets, desktops).
DEVICES: Final = (
    (360, 3.0, 8),
    (375, 2.0, 6),
    (390, 3.0, 10),
    (393, 2.75, 8),
    (412, 2.625, 8),
    (414, 3.0, 4),
    (430, 3.0, 5),
    (768, 2.0, 3),
    (810, 2.0, 2),
    (820, 2.0, 2),
    (1024, 2.0, 2),
    (1280, 1.0, 6),
    (1366, 1.0, 6),
    (1440, 2.0, 5),
    (1512, 2.0, 3),
    (1536, 1.25, 6),
    (1920, 1.0, 11),
    (2560, 1.0, 3),
)
# Fraction of the viewport an image slot takes (hero, half, third, quarter), share.
SLOTS: Final = ((1.0, 30), (0.5, 30), (1 / 3, 28), (0.25, 12))
ACCEPTS: Final = (
    ("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", 55),  # Chromium
    (
        "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
        "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
        20,
    ),  # Safari 17
    ("image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5", 8),  # Firefox
    ("image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5", 5),  # Safari 15
    ("image/webp,image/apng,image/*,*/*;q=0.8", 5),  # older Chromium
    ("*/*", 5),  # bots, apps
    (None, 2),  # no header at all
)
CAMPAIGNS: Final = tuple(f"utm_source=newsletter&utm_campaign=spring{n}" for n in range(12))
HOSTILE: Final = ("w=abc", "w=-5", "w=320&w=640", "fmt=gif", "q=0", "w=%zz", "h=", "q=101x")


def _pick(rng: random.Random, table: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    return rng.choices(table, weights=[row[-1] for row in table])[0]


def make_shapes(count: int, rng: random.Random, policy: Policy = DEFAULT_POLICY) -> list[Shape]:
    """Draw `count` request shapes from the client mix (duplicates keep the mix's weights)."""
    shapes = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.30:  # srcset-aware pages ask for the breakpoints themselves
            w = rng.choice(policy.standard.widths)
        else:
            css, dpr, _ = _pick(rng, DEVICES)
            fraction, _ = _pick(rng, SLOTS)
            w = max(1, round(css * fraction * dpr))
        params = [f"w={w}"]
        if rng.random() < 0.08:  # square thumbnails and avatars: a cover crop
            params.append(f"h={w}")
        fmt_roll = rng.random()
        if fmt_roll < 0.20:
            params.append("fmt=auto")
        elif fmt_roll < 0.30:
            params.append("fmt=webp")
        elif fmt_roll < 0.35:
            params.append(rng.choice(("fmt=jpg", "fmt=JPEG", "fmt=jpeg")))
        elif fmt_roll < 0.40:
            params.append("fmt=avif")
        q_roll = rng.random()
        if q_roll < 0.10:
            params.append("q=80")
        elif q_roll < 0.15:
            params.append("q=75")
        elif q_roll < 0.20:
            params.append("q=85")
        if rng.random() < 0.30:
            rng.shuffle(params)
        unique = False
        junk_roll = rng.random()
        if junk_roll < 0.20:
            params.append(rng.choice(CAMPAIGNS))
        elif junk_roll < 0.30:
            params.append("fbclid=IwAR0")  # the value differs per request (unique_junk)
            unique = True
        elif junk_roll < 0.40:
            params.insert(0, f"v={rng.randrange(5)}")  # a build id from the page
        if rng.random() < 0.005:
            params = [rng.choice(HOSTILE), *params]
        accept = _pick(rng, ACCEPTS)[0]
        shapes.append(Shape("&".join(params), accept, unique))
    return shapes


def _no_snap(policy: Policy, shapes: Sequence[Shape]) -> Policy:
    """The policy with snapping off: every width and height the trace asks for is a breakpoint.

    (A ladder of every integer up to 16383 would do the same, but imgcore builds its error
    messages from the whole ladder on every call.)
    """
    asked = set(policy.widths) | set(policy.heights)
    for shape in shapes:
        for piece in shape.query.split("&"):
            name, _, value = piece.partition("=")
            if name in ("w", "h") and value.isdigit() and 0 < int(value) < 16384:
                asked.add(int(value))
    every = tuple(sorted(asked))
    return Policy(**{**policy.model_dump(), "widths": every, "heights": every})


def _standard_variants(policy: Policy) -> frozenset[str]:
    return frozenset(
        TransformParams(fmt=fmt, w=w, q=policy.default_quality.for_format(fmt)).variant
        for fmt in policy.standard.formats
        for w in policy.standard.widths
    )


@dataclass
class ModeResult:
    """What one mode's replay counted."""

    mode: str
    requests: int = 0
    rejected: int = 0
    """400s answered by the viewer-request Function (never cached, never at the origin)."""
    edge_hits: int = 0
    shield_hits: int = 0
    origin_requests: int = 0
    s3_hits: int = 0
    """Origin requests answered by a stored derivative (precomputed or rendered before)."""
    renders: int = 0
    """Fallback renders (canonical modes) or on-the-fly transforms (raw)."""
    distinct_keys: int = 0
    images_requested: int = 0
    stored_variants: int = 0
    """Derivatives in the bucket at the end: the standard set of every requested image plus
    every fallback render (raw: nothing is stored)."""
    keys_per_image_max: int = 0
    standard_per_image: int = 0
    """Variants precomputed for every upload (canonical modes)."""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def edge_hit_ratio(self) -> float:
        """Share of the cacheable requests served by an edge PoP."""
        return self.edge_hits / max(1, self.requests - self.rejected)

    @property
    def shield_hit_ratio(self) -> float:
        """Share of edge misses that Origin Shield served."""
        return self.shield_hits / max(1, self.requests - self.rejected - self.edge_hits)

    @property
    def cdn_hit_ratio(self) -> float:
        """Share of the cacheable requests that never reached the origin."""
        return 1 - self.origin_requests / max(1, self.requests - self.rejected)


class _Replay:
    """One mode's cache model: PoP LRUs, the shield LRU, the derivatives bucket."""

    def __init__(
        self,
        mode: str,
        config: Config,
        ids: Sequence[int],
        stride: int,
        precomputed: frozenset[int],
    ) -> None:
        self.result = ModeResult(mode)
        self.edges: list[OrderedDict[int, None]] = [OrderedDict() for _ in range(config.pops)]
        self.shield: OrderedDict[int, None] = OrderedDict()
        self.stored: set[int] = set()
        self.seen: set[int] = set()
        self.config = config
        self.ids = ids
        """Each request shape's variant id, `_REJECTED` for a 400, `_UNIQUE_JUNK` (raw)."""
        self.stride = stride
        self.precomputed = precomputed
        self.serial = 0

    def run(
        self, images: Sequence[int], picks: Sequence[int], pops: Sequence[int], *, measure: bool
    ) -> None:
        """Replay one chunk of the trace (counted when `measure`)."""
        edges, shield, stored, seen = self.edges, self.shield, self.stored, self.seen
        edge_cap, shield_cap = self.config.edge_capacity, self.config.shield_capacity
        precomputed, stride, ids = self.precomputed, self.stride, self.ids
        raw = self.result.mode == "raw"
        catalogue, serial = self.config.catalogue, self.serial
        rejected = edge_misses = shield_hits = origin = s3_hits = renders = 0
        # The hot loop: a hit costs one dict probe and one move_to_end; misses count the rest.
        for image, pick, pop in zip(images, picks, pops):  # noqa: B905 - equal by construction
            variant = ids[pick]
            if variant < 0:
                if variant == _REJECTED:
                    rejected += 1
                    continue
                # A never-repeating key (raw mode's click ids): a miss everywhere, an on-the-fly
                # transform, and an entry that pushes a useful one out of both caches.
                serial += 1
                key = _UNIQUE + serial * catalogue + image
                cache = edges[pop]
                cache[key] = None
                if len(cache) > edge_cap:
                    cache.popitem(last=False)
                shield[key] = None
                if len(shield) > shield_cap:
                    shield.popitem(last=False)
                edge_misses += 1
                origin += 1
                renders += 1
                continue
            key = image * stride + variant
            cache = edges[pop]
            if key in cache:
                cache.move_to_end(key)
                continue
            edge_misses += 1
            seen.add(key)
            cache[key] = None
            if len(cache) > edge_cap:
                cache.popitem(last=False)
            if key in shield:
                shield.move_to_end(key)
                shield_hits += 1
                continue
            shield[key] = None
            if len(shield) > shield_cap:
                shield.popitem(last=False)
            origin += 1
            if raw:
                renders += 1
            elif key in stored or variant in precomputed:
                s3_hits += 1
            else:
                stored.add(key)
                renders += 1
        self.serial = serial
        if measure:
            r = self.result
            r.requests += len(images)
            r.rejected += rejected
            r.edge_hits += len(images) - rejected - edge_misses
            r.shield_hits += shield_hits
            r.origin_requests += origin
            r.s3_hits += s3_hits
            r.renders += renders

    def finish(self, standard_count: int) -> ModeResult:
        """Fill in the whole-trace counts (keys and stored variants include the warm-up)."""
        r = self.result
        catalogue, stride = self.config.catalogue, self.stride
        per_image: dict[int, int] = {}
        for key in self.seen:
            image = key // stride
            per_image[image] = per_image.get(image, 0) + 1
        for serial in range(1, self.serial + 1):  # the unique keys were never put in `seen`
            image = serial % catalogue  # (their image is not kept; spread them evenly)
            per_image[image] = per_image.get(image, 0) + 1
        r.distinct_keys = len(self.seen) + self.serial
        r.images_requested = len(per_image)
        r.keys_per_image_max = max(per_image.values(), default=0)
        if r.mode != "raw":
            r.standard_per_image = standard_count
            r.stored_variants = standard_count * r.images_requested + len(self.stored)
        return r


def _progress(total: int, enabled: bool) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A progress bar on stderr, as (advance, close)."""
    if not enabled:
        return (lambda _n: None), (lambda: None)
    from rich.console import Console  # noqa: PLC0415 - only a terminal run draws it
    from rich.progress import Progress  # noqa: PLC0415

    progress = Progress(console=Console(stderr=True), transient=True)
    task = progress.add_task("replaying", total=total)
    progress.start()

    def advance(n: int) -> None:
        progress.advance(task, n)

    def close() -> None:
        progress.stop()

    return advance, close


def simulate(
    config: Config = Config(),
    policy: Policy = DEFAULT_POLICY,
    *,
    modes: Sequence[str] = MODES,
    progress: bool = False,
    workers: int = 2,
) -> dict[str, ModeResult]:
    """Replay one synthetic trace through each mode's cache model.

    Args:
        config: Trace size, catalogue, popularity and cache sizes.
        policy: The policy whose canonicalization the `canonical` mode applies.
        modes: Which of `MODES` to run (all by default).
        progress: Show a progress bar on stderr.
        workers: Processes to spread the modes over (each regenerates the same trace from the
            seed); 1 runs everything in this process.

    Returns:
        Each mode's counts, keyed by mode.

    Raises:
        ValueError: A mode is not one of `MODES`.
    """
    if not modes or any(m not in MODES for m in modes):
        msg = f"modes must be some of {', '.join(MODES)}; got {list(modes)}"
        raise ValueError(msg)
    # raw is mostly misses (the slow path): it gets a process of its own.
    groups = [[m for m in modes if m != "raw"], [m for m in modes if m == "raw"]]
    groups = [g for g in groups if g]
    if workers < 2 or len(groups) < 2:
        advance, close = _progress(config.requests * len(modes), progress)
        try:
            return _simulate_group(config, policy, list(modes), advance)
        finally:
            close()
    context = multiprocessing.get_context("fork")
    done = context.Value("q", 0)
    queue: Any = context.Queue()

    def child(group: list[str]) -> None:
        def count(n: int) -> None:
            with done.get_lock():
                done.value += n

        queue.put(_simulate_group(config, policy, group, count))

    processes = [context.Process(target=child, args=(g,), daemon=True) for g in groups]
    for process in processes:
        process.start()
    advance, close = _progress(config.requests * len(modes), progress)
    results: dict[str, ModeResult] = {}
    try:
        seen = 0
        while len(results) < len(modes):
            try:
                results.update(queue.get(timeout=0.2))
            except queue_module.Empty:
                if not any(p.is_alive() for p in processes) and queue.empty():
                    msg = "a simulation worker died"
                    raise RuntimeError(msg) from None
            advance(done.value - seen)
            seen = done.value
    finally:
        close()
        for process in processes:
            process.join(timeout=5)
    return {m: results[m] for m in modes}


def _simulate_group(
    config: Config, policy: Policy, modes: list[str], advance: Callable[[int], None]
) -> dict[str, ModeResult]:
    rng = random.Random(config.seed)
    shapes = make_shapes(config.shapes, rng, policy)
    policies = {"canonical": policy, "no-snap": _no_snap(policy, shapes)}
    standard = _standard_variants(policy)
    started = time.perf_counter()

    # Memoized canonicalization: each distinct (query, Accept) string goes through
    # imgcore.rewrite once; a shape becomes a variant id (-1 for a 400).
    variant_ids: dict[str, dict[str, int]] = {m: {} for m in MODES}
    shape_ids: dict[str, list[int]] = {}
    memo: dict[tuple[str, str, str | None], int] = {}
    for mode in modes:
        ids = []
        for shape in shapes:
            key = (mode, shape.query, shape.accept)
            if key not in memo:
                if mode == "raw":
                    variant = f"{shape.query}|{shape.accept}"
                else:
                    try:
                        derivative = rewrite(
                            _PATH.format(0), shape.query, shape.accept, policies[mode]
                        )
                        variant = derivative.params.variant
                    except InvalidRequest:
                        variant = ""
                table = variant_ids[mode]
                memo[key] = -1 if not variant else table.setdefault(variant, len(table))
            ids.append(memo[key])
        shape_ids[mode] = ids
    canonicalize_s = time.perf_counter() - started

    stride = {m: max(1, len(variant_ids[m])) for m in modes}
    standard_ids = {
        m: frozenset(i for v, i in variant_ids[m].items() if v in standard) for m in modes
    }

    for mode in modes:
        if mode == "raw":
            shape_ids[mode] = [
                _UNIQUE_JUNK if shape.unique_junk else i
                for shape, i in zip(shapes, shape_ids[mode], strict=True)
            ]
    replays = {m: _Replay(m, config, shape_ids[m], stride[m], standard_ids[m]) for m in modes}
    warmup = int(config.requests * config.warmup)

    ranks = range(config.catalogue)
    zipf_cum = list(accumulate(1 / (rank + 1) ** config.zipf for rank in ranks))
    pop_cum = list(accumulate(1 / (rank + 1) ** 0.5 for rank in range(config.pops)))
    pop_range = range(config.pops)
    shape_count = len(shapes)
    # Millions of long-lived keys: the cyclic collector would rescan them all, for nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        offset = 0
        while offset < config.requests:
            # Chunks never straddle the end of the warm-up, so the count starts exactly there.
            end = warmup if offset < warmup else config.requests
            n = min(_CHUNK, end - offset)
            images = rng.choices(ranks, cum_weights=zipf_cum, k=n)
            rand = rng.random
            picks = [int(rand() * shape_count) for _ in range(n)]
            pops = rng.choices(pop_range, cum_weights=pop_cum, k=n)
            for replay in replays.values():
                replay.run(images, picks, pops, measure=offset >= warmup)
                advance(n)
            offset += n
        elapsed = time.perf_counter() - started
        distinct_strings = len({(s.query, s.accept) for s in shapes})
        results = {}
        for mode, replay in replays.items():
            result = replay.finish(len(standard))
            result.extra = {
                "distinct_query_strings": float(distinct_strings),
                "warmup_requests": float(warmup),
                "distinct_variants": float(len(variant_ids[mode])),
                "canonicalize_s": round(canonicalize_s, 3),
                "elapsed_s": round(elapsed, 3),
            }
            results[mode] = result
        # Free the caches by reference counting, before the collector can walk them.
        replays.clear()
    finally:
        if gc_was_enabled:
            gc.enable()
    return results


def costs(
    result: ModeResult, prices: Prices = Prices(), config: Config = Config()
) -> dict[str, float]:
    """Monthly cost lines (USD) of one mode at `prices.requests_per_day`.

    Per-request rates come from the trace. Every request pays egress; requests that run the
    viewer-request Function pay for it (not `raw`); every edge miss passes Origin Shield; every
    origin request is one S3 GET; a render (fallback or on-the-fly) is one Lambda run of
    `transform_ms` that also GETs the original, and a fallback render PUTs its derivative.
    Canonical modes also precompute the standard set of every upload and store it.
    """
    p = prices
    monthly = p.requests_per_day * p.days_per_month
    per_request = monthly / max(1, result.requests)
    served = result.requests - result.rejected
    edge_misses = served - result.edge_hits
    raw = result.mode == "raw"
    renders = result.renders * per_request
    lambda_run = p.transform_ms / 1000 * p.transform_mb / 1024 * p.lambda_gb_second
    lines = {
        "egress": monthly * p.object_kb / 1e6 * p.egress_per_gb,
        "cloudfront_requests": monthly / 1e4 * p.cloudfront_per_10k_requests,
        "functions": 0.0 if raw else monthly / 1e6 * p.function_per_million,
        "origin_shield": edge_misses * per_request / 1e4 * p.shield_per_10k,
        # A miss at the bucket GETs the derivative (a 403 when absent) and a render GETs the
        # original; an on-the-fly transform only GETs the original.
        "s3_get": (result.renders + (0 if raw else result.origin_requests))
        * per_request
        / 1e3
        * p.s3_get_per_1k,
        "s3_put": 0.0 if raw else renders / 1e3 * p.s3_put_per_1k,
        "transform_lambda": renders * (lambda_run + p.lambda_per_million / 1e6),
        "precompute": 0.0,
        "storage": 0.0,
    }
    if not raw:
        uploads = config.catalogue * p.uploads_per_month_per_image
        run = p.precompute_s * p.precompute_mb / 1024 * p.lambda_gb_second
        lines["precompute"] = uploads * (run + p.lambda_per_million / 1e6) + (
            uploads * result.standard_per_image / 1e3 * p.s3_put_per_1k
        )
        stored_per_image = result.stored_variants / max(1, result.images_requested)
        lines["storage"] = config.catalogue * stored_per_image * p.stored_kb / 1e6 * p.s3_gb_month
    lines["total"] = sum(lines.values())
    return lines


def seed_reference(prices: Prices = Prices()) -> dict[str, float]:
    """The seed's own bill (80 % hit ratio, every miss an on-the-fly transform), same formulas."""
    r = ModeResult("raw", requests=1000, edge_hits=800, origin_requests=200, renders=200)
    # The seed's bill has no request fee: reproduce it as written (the modes do price it).
    lines = costs(r, replace(prices, cloudfront_per_10k_requests=0.0))
    # The seed runs the viewer-request Function in front of its on-the-fly transforms.
    monthly = prices.requests_per_day * prices.days_per_month
    lines["functions"] = monthly / 1e6 * prices.function_per_million
    lines["total"] = sum(v for k, v in lines.items() if k != "total")
    return lines


# --- the command -------------------------------------------------------------------------------

_COST_LABELS: Final = {
    "egress": "CloudFront data transfer",
    "cloudfront_requests": "CloudFront requests",
    "functions": "CloudFront Functions",
    "origin_shield": "Origin Shield",
    "s3_get": "S3 GET",
    "s3_put": "S3 PUT",
    "transform_lambda": "fallback / transform Lambda",
    "precompute": "precompute (Lambda + PUTs)",
    "storage": "S3 storage",
    "total": "total",
}


def report(results: dict[str, ModeResult], prices: Prices, config: Config) -> dict[str, Any]:
    """Everything the command prints, as one JSON-ready mapping."""
    out: dict[str, Any] = {
        "config": asdict(config),
        "prices": asdict(prices),
        "modes": {},
        "seed_reference_monthly": seed_reference(prices),
    }
    for mode, r in results.items():
        out["modes"][mode] = {
            "requests": r.requests,
            "rejected_400": r.rejected,
            "distinct_cache_keys": r.distinct_keys,
            "images_requested": r.images_requested,
            "keys_per_image": r.distinct_keys / max(1, r.images_requested),
            "keys_per_image_max": r.keys_per_image_max,
            "stored_variants_per_image": r.stored_variants / max(1, r.images_requested),
            "edge_hit_ratio": r.edge_hit_ratio,
            "shield_hit_ratio": r.shield_hit_ratio,
            "cdn_hit_ratio": r.cdn_hit_ratio,
            "origin_requests": r.origin_requests,
            "s3_hits": r.s3_hits,
            "renders": r.renders,
            "renders_per_day_at_scale": r.renders / max(1, r.requests) * prices.requests_per_day,
            "monthly_cost": costs(r, prices, config),
            **r.extra,
        }
    return out


def format_table(data: dict[str, Any]) -> str:
    """The human-readable result: one column per mode (markdown, so docs can embed it)."""
    modes = list(data["modes"])
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("requests replayed", lambda m: f"{m['requests']:,}"),
        ("rejected by the Function (400)", lambda m: f"{m['rejected_400']:,}"),
        ("distinct cache keys", lambda m: f"{m['distinct_cache_keys']:,}"),
        ("cache keys per requested image", lambda m: f"{m['keys_per_image']:.1f}"),
        ("stored variants per image", lambda m: f"{m['stored_variants_per_image']:.1f}"),
        ("edge hit ratio", lambda m: f"{m['edge_hit_ratio']:.1%}"),
        ("Origin Shield hit ratio (of edge misses)", lambda m: f"{m['shield_hit_ratio']:.1%}"),
        ("CDN hit ratio (never reached the origin)", lambda m: f"{m['cdn_hit_ratio']:.1%}"),
        ("origin requests", lambda m: f"{m['origin_requests']:,}"),
        ("  of which stored derivatives (S3 GET)", lambda m: f"{m['s3_hits']:,}"),
        ("  of which renders (fallback / on the fly)", lambda m: f"{m['renders']:,}"),
        ("renders per day at 1 B requests/day", lambda m: f"{m['renders_per_day_at_scale']:,.0f}"),
    ]
    lines = ["| | " + " | ".join(modes) + " |", "|---|" + "---:|" * len(modes)]
    lines += [
        f"| {label} | " + " | ".join(fn(data["modes"][m]) for m in modes) + " |"
        for label, fn in rows
    ]
    seed = data["seed_reference_monthly"]
    lines.append(
        "| **monthly cost at 1 B requests/day** | " + " | ".join(" " for _ in modes) + " |"
    )
    for key, label in _COST_LABELS.items():
        values = [data["modes"][m]["monthly_cost"][key] for m in modes]
        bold = "**" if key == "total" else ""
        lines.append(
            f"| {bold}{label}{bold} | "
            + " | ".join(f"{bold}${v:,.0f}{bold}" for v in values)
            + " |"
        )
    lines.append("")
    lines.append(
        f"Seed check: the same formulas on the seed's own assumptions (80 % hit ratio, every "
        f"miss an on-the-fly transform) give ${seed['total']:,.0f}/month (the seed says ≈ $104k)."
    )
    return "\n".join(lines)


def format_inputs(data: dict[str, Any]) -> str:
    """Every input with its value (prices default to the seeds')."""
    config = ", ".join(
        f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in data["config"].items()
    )
    prices = ", ".join(f"{k}={v:g}" for k, v in data["prices"].items())
    return f"trace and caches: {config}\nprices: {prices}"


def _add_dataclass_options(parser: argparse.ArgumentParser, cls: type, prefix: str) -> None:
    for f in fields(cls):
        default = f.default
        kind = int if isinstance(default, int) else float
        parser.add_argument(
            f"--{prefix}{f.name.replace('_', '-')}",
            dest=f"{prefix.replace('-', '_')}{f.name}",
            type=kind,
            default=default,
            metavar="N",
            help=f"(default: {default:g})" if kind is float else f"(default: {default:,})",
        )


def configure(subparsers: Any) -> None:
    """Add `imgcdn simulate` to the `imgcdn` command line (entry point `imgcdn.commands`)."""
    parser = subparsers.add_parser(
        "simulate",
        help="replay a synthetic trace against a CloudFront model: hit ratios and monthly cost",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    _add_dataclass_options(parser, Config, "")
    _add_dataclass_options(parser, Prices, "price-")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run)


def _from_args(args: argparse.Namespace, cls: type, prefix: str) -> Any:
    return cls(**{f.name: getattr(args, f"{prefix}{f.name}") for f in fields(cls)})


def run(args: argparse.Namespace) -> int:
    """Run the simulation the parsed arguments describe and print the result."""
    config = _from_args(args, Config, "")
    prices = _from_args(args, Prices, "price_")
    if config.requests < 1 or config.catalogue < 1 or config.pops < 1:
        msg = "--requests, --catalogue and --pops must be at least 1"
        raise SystemExit(f"imgcdn simulate: {msg}")
    results = simulate(config, progress=not args.no_progress and sys.stderr.isatty())
    data = report(results, prices, config)
    if args.json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        elapsed = next(iter(data["modes"].values()))["elapsed_s"]
        sys.stdout.write(format_table(data) + "\n\n" + format_inputs(data) + "\n")
        sys.stdout.write(
            f"replayed {config.requests:,} requests x {len(results)} modes in {elapsed:.1f} s\n"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m imgcdn_sim.economics`: the same command without the `imgcdn` host."""
    parser = argparse.ArgumentParser(prog="imgcdn")
    configure(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulate", *(sys.argv[1:] if argv is None else argv)])
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
