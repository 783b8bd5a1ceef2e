"""An edge cache that decides TTLs the way CloudFront does, keyed on the rewritten URI.

CloudFront's rules, as the local stack applies them (per cache behaviour: min, default, max TTL):

- the origin's `Cache-Control: s-maxage` (else `max-age`) is clamped into [min, max];
- no `max-age` at all: the behaviour's default TTL;
- `no-store`, `no-cache` or `private`: not cached when min TTL is 0, else cached for min TTL
  (the trap R12 warns about: a min TTL above 0 caches even a `no-store` redirect);
- errors follow CloudFront's error caching instead ("Control how long CloudFront caches errors"
  in its developer guide): only the status codes it caches are kept; with `max-age` or
  `s-maxage`, for the larger of that and the error caching minimum TTL (10 s, except 0 for the
  5xx codes the CDK app gives a custom error response), never past the behaviour's max TTL;
  `no-store`, `no-cache` or `private` prevent caching only for 404, 410, 414 and 501; anything
  else: the error caching minimum TTL.
- `stale-if-error=<s>` on a cacheable 2xx keeps the object that much longer, expired: when the
  origin then answers 5xx (or cannot be reached) the stale copy is served instead. An object is
  never kept past the behaviour's max TTL, stale or not; the CDK app sets each max TTL to
  max-age plus the class's stale window, so the takedown bound (R9) holds stale or not.
  (`stale-while-revalidate` is not served early here: an expired object is refetched before it
  is answered, which is the same bytes, later.)
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

__all__ = [
    "CACHED_ERROR_STATUSES",
    "ERROR_CACHING_MIN_TTL",
    "SERVER_ERROR_CACHING_MIN_TTL",
    "Behaviour",
    "CachedResponse",
    "EdgeCache",
    "behaviour_for",
    "behaviours",
    "parse_cache_control",
    "stale_if_error_for",
    "ttl_for",
]

ERROR_CACHING_MIN_TTL = 10
"""CloudFront's error caching minimum TTL when no custom error response sets one."""
SERVER_ERROR_CACHING_MIN_TTL: Mapping[int, int] = {500: 0, 502: 0, 503: 0, 504: 0}
"""The CDK app's custom error responses (R13: 5xx are never kept, CloudFront ignores their
`no-store`); a test holds this to `imgcdn_infra.delivery.SERVER_ERROR_STATUS_CODES`."""
CACHED_ERROR_STATUSES = frozenset({400, 403, 404, 405, 414, 500, 501, 502, 503, 504})
"""The 4xx/5xx codes CloudFront caches; it passes any other error through uncached."""
_NO_STORE_HONOURED = frozenset({404, 410, 414, 501})
"""The error codes for which CloudFront honours `no-store`, `no-cache` and `private`."""
_UNCACHEABLE = frozenset({"no-store", "no-cache", "private"})

# RFC 9111 5.2: `token [ "=" ( token / quoted-string ) ]`, comma-separated. A quoted value may
# hold commas (`private="set-cookie, x"`), so the header is tokenized, not split on commas.
_DIRECTIVE = re.compile(
    r"""[\s,]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*))?\s*(?=,|$)"""
)


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One cache behaviour: a path prefix and its TTL bounds (seconds)."""

    path_prefix: str
    min_ttl: int
    default_ttl: int
    max_ttl: int


def behaviours(policy: Policy) -> dict[ContentClass, Behaviour]:
    """The distribution's behaviours, from the policy exactly as the CDK app builds them."""
    ttl = policy.ttl
    return {
        ContentClass.STANDARD: Behaviour(
            "/img/", 0, ttl.immutable, ttl.immutable + ttl.immutable_stale
        ),
        ContentClass.TAKEDOWN: Behaviour(
            "/ugc/", 0, ttl.takedown, ttl.takedown + ttl.takedown_stale_if_error
        ),
    }


def behaviour_for(path: str, policy: Policy) -> Behaviour:
    """The behaviour whose path pattern matches `path` (the standard one is the default)."""
    table = behaviours(policy)
    if path.startswith(table[ContentClass.TAKEDOWN].path_prefix):
        return table[ContentClass.TAKEDOWN]
    return table[ContentClass.STANDARD]


def parse_cache_control(cache_control: str | None) -> dict[str, str | None]:
    """The directives of a `Cache-Control` value, names lower-cased, quotes removed.

    A malformed part is skipped, as a cache ignores a directive it cannot read.
    """
    directives: dict[str, str | None] = {}
    text = cache_control or ""
    position = 0
    while position < len(text):
        match = _DIRECTIVE.match(text, position)
        if match is None:  # skip to the next comma outside this unreadable part
            comma = text.find(",", position)
            if comma < 0:
                break
            position = comma + 1
            continue
        name, value = match.group(1).lower(), match.group(2)
        if value is not None and value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        directives.setdefault(name, value)
        position = match.end()
    return directives


def _seconds(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def ttl_for(cache_control: str | None, behaviour: Behaviour, status: int = 200) -> int:
    """Seconds CloudFront would keep a response with this `Cache-Control` (0: not cached)."""
    directives = parse_cache_control(cache_control)
    age = _seconds(directives.get("s-maxage"))
    if age is None:
        age = _seconds(directives.get("max-age"))
    if status >= 400:
        return _error_ttl(status, directives, age, behaviour)
    if _UNCACHEABLE & directives.keys():
        return behaviour.min_ttl
    if age is None:
        return behaviour.default_ttl
    return max(behaviour.min_ttl, min(age, behaviour.max_ttl))


def stale_if_error_for(cache_control: str | None, behaviour: Behaviour, status: int = 200) -> int:
    """Seconds an expired response is still served while the origin fails (0: never).

    Only a response the cache keeps (a 2xx or 3xx with a TTL) can be served stale, and only for
    what its behaviour's max TTL leaves after its TTL.
    """
    if status >= 400:
        return 0
    ttl = ttl_for(cache_control, behaviour, status)
    window = _seconds(parse_cache_control(cache_control).get("stale-if-error"))
    if ttl <= 0 or not window:
        return 0
    return min(window, max(0, behaviour.max_ttl - ttl))


def _error_ttl(
    status: int, directives: Mapping[str, str | None], age: int | None, behaviour: Behaviour
) -> int:
    if status not in CACHED_ERROR_STATUSES:
        return 0
    if status in _NO_STORE_HONOURED and _UNCACHEABLE & directives.keys():
        return 0
    minimum = SERVER_ERROR_CACHING_MIN_TTL.get(status, ERROR_CACHING_MIN_TTL)
    if age is None:
        return minimum
    return min(max(age, minimum), behaviour.max_ttl)


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
        # key -> (expires, stale until, response); stale until >= expires.
        self._entries: OrderedDict[str, tuple[float, float, CachedResponse]] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._clock = clock

    def get(self, key: str) -> CachedResponse | None:
        """The fresh entry for `key`, or None (an expired entry is kept for its stale window)."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            expires, stale_until, response = found
            now = self._clock()
            if now >= expires:
                if now >= stale_until:
                    self._drop(key)
                return None
            self._entries.move_to_end(key)
            return response

    def get_stale(self, key: str) -> CachedResponse | None:
        """The expired entry for `key` while its stale-if-error window lasts, else None."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            expires, stale_until, response = found
            if not expires <= self._clock() < stale_until:
                return None
            self._entries.move_to_end(key)
            return response

    def put(self, key: str, response: CachedResponse, ttl: int, stale_if_error: int = 0) -> None:
        """Keep `response` for `ttl` seconds, then `stale_if_error` more for `get_stale`.

        Nothing is kept when `ttl` is 0 or the body cannot fit.
        """
        if ttl <= 0 or len(response.body) > self._max_bytes:
            return
        with self._lock:
            self._drop(key)
            expires = self._clock() + ttl
            self._entries[key] = (expires, expires + max(0, stale_if_error), response)
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

    def invalidate_exact(self, key: str) -> int:
        """Drop the entry of exactly `key` (a file-path invalidation); 1 if there was one."""
        with self._lock:
            found = key in self._entries
            self._drop(key)
            return int(found)

    def _drop(self, key: str) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._bytes -= len(found[2].body)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
