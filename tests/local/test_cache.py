"""The local edge cache follows CloudFront's TTL rules, and concurrent misses share one fetch."""

from __future__ import annotations

import asyncio

import pytest

from imgcdn_local.cache import (
    ERROR_CACHING_MIN_TTL,
    Behaviour,
    CachedResponse,
    EdgeCache,
    behaviour_for,
    parse_cache_control,
    stale_if_error_for,
    ttl_for,
)
from imgcdn_local.stack import SingleFlight
from imgcore import DEFAULT_POLICY

STANDARD = behaviour_for("/img/acme/x/0123456789abcdef/w320-q80.webp", DEFAULT_POLICY)
TAKEDOWN = behaviour_for("/ugc/acme/x/0123456789abcdef/w320-q80.webp", DEFAULT_POLICY)


def test_behaviours_come_from_the_policy() -> None:
    ttl = DEFAULT_POLICY.ttl
    # The max TTL leaves room for the stale windows past max-age (the CDK app builds the same).
    assert (STANDARD.min_ttl, STANDARD.default_ttl) == (0, ttl.immutable)
    assert STANDARD.max_ttl == ttl.immutable + ttl.immutable_stale_if_error
    assert (TAKEDOWN.min_ttl, TAKEDOWN.default_ttl, TAKEDOWN.max_ttl) == (0, 60, 60)


@pytest.mark.parametrize(
    ("cache_control", "standard", "takedown"),
    [
        ("public, max-age=31536000, immutable", 31_536_000, 60),
        ("public, max-age=60", 60, 60),
        ("public, s-maxage=5, max-age=600", 5, 5),
        ("max-age=10", 10, 10),
        (None, 31_536_000, 60),
        ("private, no-store", 0, 0),
        ("no-cache", 0, 0),
        ("no-store", 0, 0),
    ],
)
def test_ttl_rules(cache_control: str | None, standard: int, takedown: int) -> None:
    assert ttl_for(cache_control, STANDARD) == standard
    assert ttl_for(cache_control, TAKEDOWN) == takedown


def test_a_min_ttl_above_zero_caches_even_no_store() -> None:
    # The R12 trap, reproduced so the stack behaves like the real thing.
    assert ttl_for("private, no-store", Behaviour("/x/", 5, 10, 100)) == 5


def test_entries_expire_and_the_cache_stays_bounded() -> None:
    now = [0.0]
    cache = EdgeCache(max_bytes=10, clock=lambda: now[0])
    cache.put("a", CachedResponse(200, {}, b"12345"), ttl=60)
    cache.put("b", CachedResponse(200, {}, b"12345"), ttl=1)
    assert cache.get("a") is not None
    now[0] = 2
    assert cache.get("b") is None
    cache.put("c", CachedResponse(200, {}, b"123456"), ttl=60)  # evicts the least recent
    assert cache.get("a") is None
    assert cache.get("c") is not None
    cache.put("d", CachedResponse(200, {}, b"x"), ttl=0)
    assert cache.get("d") is None
    assert cache.invalidate("c") == 1
    assert len(cache) == 0


def test_single_flight_runs_once_for_concurrent_callers() -> None:
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "done"

    async def main() -> list[str]:
        flight = SingleFlight()
        return await asyncio.gather(*(flight.run("k", work) for _ in range(200)))

    assert asyncio.run(main()) == ["done"] * 200
    assert calls == 1


def test_single_flight_shares_failures_and_recovers() -> None:
    async def boom() -> str:
        await asyncio.sleep(0.01)
        raise RuntimeError("origin down")

    async def ok() -> str:
        return "fine"

    async def main() -> list[object]:
        flight = SingleFlight()
        results = await asyncio.gather(
            *(flight.run("k", boom) for _ in range(5)), return_exceptions=True
        )
        results.append(await flight.run("k", ok))
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in results[:5])
    assert results[5] == "fine"


@pytest.mark.parametrize(
    ("cache_control", "ttl"),
    [
        ('private="set-cookie"', 0),
        ('private="set-cookie, authorization", max-age=600', 0),
        ('no-cache="set-cookie"', 0),
        ('max-age="600"', 600),
        ('public, max-age=600, community="UCI"', 600),
        ("Max-Age=600", 600),
        ("max-age=abc", 31_536_000),  # unreadable: as if absent, the behaviour's default
    ],
)
def test_directive_values_may_be_quoted(cache_control: str, ttl: int) -> None:
    assert ttl_for(cache_control, STANDARD) == ttl


def test_quoted_values_keep_their_commas() -> None:
    assert parse_cache_control('private="a, b", max-age=5') == {"private": "a, b", "max-age": "5"}


@pytest.mark.parametrize(
    ("status", "cache_control", "ttl"),
    [
        # CloudFront caches an error for the larger of its max-age and the error caching
        # minimum TTL (10 s by default), never past the behaviour's max TTL.
        (404, "public, max-age=10", ERROR_CACHING_MIN_TTL),
        (404, "public, max-age=3", ERROR_CACHING_MIN_TTL),
        (404, "public, max-age=600", 600),
        (400, None, ERROR_CACHING_MIN_TTL),  # no header: the error caching minimum TTL
        # no-store is honoured for 404, 410, 414 and 501 only; other errors get the minimum TTL.
        (404, "no-store", 0),
        (501, "private", 0),
        (403, "no-store", ERROR_CACHING_MIN_TTL),
        # The CDK app sets the error caching minimum TTL of 500, 502, 503 and 504 to 0 (R13).
        (503, "no-store", 0),
        (500, "no-cache", 0),
        (504, None, 0),
        # Codes CloudFront does not cache at all.
        (415, "public, max-age=10", 0),
        (422, "public, max-age=10", 0),
        (429, None, 0),
    ],
)
def test_errors_follow_cloudfronts_error_caching(
    status: int, cache_control: str | None, ttl: int
) -> None:
    assert ttl_for(cache_control, STANDARD, status) == ttl


def test_an_error_is_never_cached_past_the_behaviours_max_ttl() -> None:
    assert ttl_for("public, max-age=600", TAKEDOWN, 404) == TAKEDOWN.max_ttl == 60


@pytest.mark.parametrize(
    ("cache_control", "status", "window"),
    [
        ("public, max-age=60, stale-if-error=600", 200, 600),
        ("public, max-age=60", 200, 0),
        ("public, max-age=60, stale-if-error=600", 404, 0),  # errors are never served stale
        ("no-store, stale-if-error=600", 200, 0),  # not kept at all
        # Never past the behaviour's max TTL: max-age took it all.
        ("public, max-age=99999999999, stale-if-error=600", 200, 0),
    ],
)
def test_stale_if_error_window(cache_control: str, status: int, window: int) -> None:
    assert stale_if_error_for(cache_control, STANDARD, status) == window


def test_takedown_stale_window_is_capped_by_its_max_ttl() -> None:
    # The default takedown behaviour leaves nothing past max-age=60 (R9).
    assert stale_if_error_for("public, max-age=60, stale-if-error=30", TAKEDOWN) == 0
    assert stale_if_error_for("public, max-age=40, stale-if-error=30", TAKEDOWN) == 20


def test_an_expired_entry_is_kept_for_its_stale_window_only() -> None:
    now = [0.0]
    cache = EdgeCache(clock=lambda: now[0])
    cache.put("a", CachedResponse(200, {}, b"x"), ttl=10, stale_if_error=5)
    assert cache.get_stale("a") is None  # fresh: not stale yet
    now[0] = 12
    assert cache.get("a") is None
    assert cache.get_stale("a") is not None
    now[0] = 15
    assert cache.get_stale("a") is None
    assert cache.get("a") is None
    assert len(cache) == 0
