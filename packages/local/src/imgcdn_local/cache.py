"""An edge cache that decides TTLs the way CloudFront does, keyed on the rewritten URI.

CloudFront's rules, as the local stack applies them (per cache behaviour: min, default, max TTL):

- the origin's `Cache-Control: s-maxage` (else `max-age`) is clamped into [min, max];
- no `max-age` at all: the behaviour's default TTL;
- `no-store`, `no-cache` or `private`: not cached when min TTL is 0, else cached for min TTL
  (the trap R12 warns about: a min TTL above 0 caches even a `no-store` redirect);
- error answers follow the same rules, so a 4xx with `max-age=10` is cached ten seconds.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from imgcore.keys import ContentClass
from imgcore.policy import Policy

__all__ = ["Behaviour", "CachedResponse", "EdgeCache", "behaviour_for", "behaviours", "ttl_for"]

_DIRECTIVE = re.compile(r"\s*([a-zA-Z-]+)\s*(?:=\s*\"?(\d+)\"?)?\s*")


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One cache behaviour: a path prefix and its TTL bounds (seconds)."""

    path_prefix: str
    min_ttl: int
    default_ttl: int
    max_ttl: int


def behaviours(policy: Policy) -> dict[ContentClass, Behaviour]:
    """The distribution's behaviours, from the policy exactly as the CDK app builds them."""
    return {
        ContentClass.STANDARD: Behaviour("/img/", 0, policy.ttl.immutable, policy.ttl.immutable),
        ContentClass.TAKEDOWN: Behaviour("/ugc/", 0, policy.ttl.takedown, policy.ttl.takedown),
    }


def behaviour_for(path: str, policy: Policy) -> Behaviour:
    """The behaviour whose path pattern matches `path` (the standard one is the default)."""
    table = behaviours(policy)
    if path.startswith(table[ContentClass.TAKEDOWN].path_prefix):
        return table[ContentClass.TAKEDOWN]
    return table[ContentClass.STANDARD]


def ttl_for(cache_control: str | None, behaviour: Behaviour) -> int:
    """Seconds CloudFront would keep a response with this `Cache-Control` (0: not cached)."""
    directives: dict[str, int | None] = {}
    for part in (cache_control or "").split(","):
        match = _DIRECTIVE.fullmatch(part)
        if match and match.group(1):
            value = match.group(2)
            directives[match.group(1).lower()] = int(value) if value is not None else None
    if {"no-store", "no-cache", "private"} & directives.keys():
        return behaviour.min_ttl
    age = directives.get("s-maxage", directives.get("max-age"))
    if age is None:
        return behaviour.default_ttl
    return max(behaviour.min_ttl, min(age, behaviour.max_ttl))


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A response as the cache stores it."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class EdgeCache:
    """A bounded, thread-safe cache of responses by key, with per-entry expiry (LRU eviction)."""

    def __init__(
        self, *, max_bytes: int = 512 * 1024 * 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Hold at most `max_bytes` of bodies; `clock` is injectable for tests."""
        self._entries: OrderedDict[str, tuple[float, CachedResponse]] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._clock = clock

    def get(self, key: str) -> CachedResponse | None:
        """The fresh entry for `key`, or None (an expired entry is dropped)."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            expires, response = found
            if self._clock() >= expires:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return response

    def put(self, key: str, response: CachedResponse, ttl: int) -> None:
        """Keep `response` for `ttl` seconds (nothing when `ttl` is 0 or it cannot fit)."""
        if ttl <= 0 or len(response.body) > self._max_bytes:
            return
        with self._lock:
            self._drop(key)
            self._entries[key] = (self._clock() + ttl, response)
            self._bytes += len(response.body)
            while self._bytes > self._max_bytes:
                self._drop(next(iter(self._entries)))

    def invalidate(self, prefix: str) -> int:
        """Drop every entry whose key starts with `prefix` (a trailing-`*` invalidation)."""
        with self._lock:
            doomed = [k for k in self._entries if k.startswith(prefix)]
            for key in doomed:
                self._drop(key)
            return len(doomed)

    def _drop(self, key: str) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._bytes -= len(found[1].body)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
