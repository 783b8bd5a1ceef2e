"""The local stack's invalidation API: CloudFront's contract over the local edge cache.

`POST /_admin/invalidations` with `{"paths": [...], "reference": "..."}` answers
`{"id": ..., "status": "InProgress"}` and `GET /_admin/invalidations/{id}` answers its status,
as `CreateInvalidation` and `GetInvalidation` do. Paths follow CloudFront's rules: each starts
with `/`, a `*` may only end a path (a wildcard path invalidates every cached URI it prefixes),
and at most 3,000 paths go in one invalidation. The quotas in progress (15 wildcard paths, 3,000
file paths) are enforced with CloudFront's `TooManyInvalidationsInProgress` (answered 429), and
the same reference with the same paths answers the invalidation it already made, with other
paths `InvalidationBatchAlreadyExists` (409).

The cache is one machine, so entries are dropped when the invalidation is created; it reports
`InProgress` until `completion_s` has passed, so that a client's waiting is exercised too.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from imgcdn_local.cache import EdgeCache

__all__ = ["InvalidationRefused", "LocalInvalidations"]

MAX_PATHS = 3000
MAX_WILDCARDS_IN_PROGRESS = 15
MAX_FILES_IN_PROGRESS = 3000


class InvalidationRefused(Exception):
    """CloudFront would refuse this request; `status` and `code` say how."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class _Invalidation:
    id: str
    paths: tuple[str, ...]
    reference: str
    created: float


class LocalInvalidations:
    """Invalidations of the local edge cache (see the module docstring)."""

    def __init__(
        self,
        cache: EdgeCache,
        *,
        completion_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Invalidate entries of `cache`."""
        self.cache = cache
        self.completion_s = completion_s
        self._clock = clock
        self._lock = threading.Lock()
        self._by_id: dict[str, _Invalidation] = {}
        self._by_reference: dict[str, _Invalidation] = {}

    def _status(self, inv: _Invalidation) -> str:
        return "Completed" if self._clock() - inv.created >= self.completion_s else "InProgress"

    def create(self, paths: Sequence[str], reference: str) -> tuple[str, str]:
        """Invalidate `paths`; the invalidation's id and status.

        Raises:
            InvalidationRefused: The request breaks CloudFront's rules or quotas.
        """
        _check(paths, reference)
        with self._lock:
            known = self._by_reference.get(reference)
            if known is not None:
                if sorted(known.paths) != sorted(paths):
                    msg = f"reference {reference!r} was used for other paths"
                    raise InvalidationRefused(409, "InvalidationBatchAlreadyExists", msg)
                return known.id, self._status(known)
            busy = [i for i in self._by_id.values() if self._status(i) == "InProgress"]
            wildcards = sum(1 for i in busy for p in i.paths if "*" in p)
            files = sum(1 for i in busy for p in i.paths if "*" not in p)
            new_wildcards = sum(1 for p in paths if "*" in p)
            if wildcards + new_wildcards > MAX_WILDCARDS_IN_PROGRESS or (
                files + len(paths) - new_wildcards > MAX_FILES_IN_PROGRESS
            ):
                msg = (
                    f"{wildcards} wildcard and {files} file path(s) are in progress; allowed: "
                    f"{MAX_WILDCARDS_IN_PROGRESS} and {MAX_FILES_IN_PROGRESS}"
                )
                raise InvalidationRefused(429, "TooManyInvalidationsInProgress", msg)
            inv = _Invalidation(
                "I" + uuid.uuid4().hex[:13].upper(), tuple(paths), reference, self._clock()
            )
            self._by_id[inv.id] = inv
            self._by_reference[reference] = inv
        for path in paths:
            if path.endswith("*"):
                self.cache.invalidate(path[:-1])
            else:
                self.cache.invalidate_exact(path)
        return inv.id, self._status(inv)

    def status(self, invalidation_id: str) -> str:
        """`InProgress` or `Completed`.

        Raises:
            InvalidationRefused: No such invalidation (404 `NoSuchInvalidation`).
        """
        with self._lock:
            inv = self._by_id.get(invalidation_id)
        if inv is None:
            msg = f"no invalidation {invalidation_id!r}"
            raise InvalidationRefused(404, "NoSuchInvalidation", msg)
        return self._status(inv)


def _check(paths: Sequence[str], reference: str) -> None:
    allowed = "allowed: 1-3,000 paths, each starting with '/', with '*' only as the last character"
    if not isinstance(reference, str) or not reference or len(reference) > 128:
        msg = "the reference must be 1-128 characters (CloudFront's CallerReference)"
        raise InvalidationRefused(400, "InvalidArgument", msg)
    if not isinstance(paths, list | tuple) or not 0 < len(paths) <= MAX_PATHS:
        raise InvalidationRefused(400, "InvalidArgument", f"{len(paths or ())} paths; {allowed}")
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/") or "*" in path[:-1]:
            raise InvalidationRefused(400, "InvalidArgument", f"path {path!r}; {allowed}")
