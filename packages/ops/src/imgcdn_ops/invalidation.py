"""CloudFront invalidations within the distribution's quotas: a queue that never drops a path.

CloudFront allows, per distribution, at most 15 wildcard paths (`/img/acme/shoe/*`) and 3,000
plain file paths in invalidations that are in progress at once; a request over either quota is
refused with `TooManyInvalidationsInProgress`, and the API throttles bursts. `InvalidationQueue`
takes paths as they come, packs them into invalidations that fit what is free of both quotas,
polls what it created until `Completed`, and backs off with full jitter on every refusal, so
that a bulk takedown of thousands of images submits each path exactly once and never
overruns the quota, even when other invalidations of the same distribution (made by someone
else) hold part of it.

Each invalidation gets a `CallerReference` derived from its paths, so re-sending one whose answer
was lost returns the invalidation CloudFront already made instead of a second one.

The port (`Invalidator`) is what CloudFront offers: create an invalidation, read its status.
`imgcdn_aws.cloudfront.CloudFrontInvalidator` is the real one; the local stack serves the same
contract over HTTP (`imgcdn_ops.local.HttpInvalidator`).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

__all__ = [
    "COMPLETED",
    "MAX_FILE_PATHS_IN_PROGRESS",
    "MAX_WILDCARD_PATHS_IN_PROGRESS",
    "Invalidation",
    "InvalidationBusy",
    "InvalidationQueue",
    "Invalidator",
    "is_wildcard",
]

MAX_WILDCARD_PATHS_IN_PROGRESS = 15
"""CloudFront: wildcard paths in invalidations in progress at one time, per distribution."""
MAX_FILE_PATHS_IN_PROGRESS = 3000
"""CloudFront: file (non-wildcard) paths in invalidations in progress at one time."""
COMPLETED = "Completed"
IN_PROGRESS = "InProgress"


class InvalidationBusy(Exception):
    """The CDN refused for now (quota in progress, throttling): try again later, same paths."""


class Invalidator(Protocol):
    """The CDN's invalidation API, narrowed to what the queue needs."""

    def create(self, paths: Sequence[str], reference: str) -> str:
        """Start one invalidation of `paths`; its id. Raises `InvalidationBusy` to retry later.

        The same `reference` with the same paths must answer the same invalidation.
        """
        ...

    def status(self, invalidation_id: str) -> str:
        """`InProgress` or `Completed`."""
        ...


def is_wildcard(path: str) -> bool:
    """Whether `path` counts against the wildcard quota (CloudFront: a `*` anywhere)."""
    return "*" in path


def reference_for(paths: Iterable[str], salt: str = "") -> str:
    """A stable `CallerReference` for one batch: the same paths give the same reference."""
    digest = hashlib.sha256("\n".join(sorted(paths)).encode("utf-8"))
    digest.update(salt.encode("utf-8"))
    return "imgcdn-" + digest.hexdigest()[:40]


@dataclass(slots=True)
class Invalidation:
    """One invalidation this queue created."""

    id: str
    paths: tuple[str, ...]
    status: str = IN_PROGRESS
    created_at: float = 0.0
    completed_at: float | None = None
    wave: int = 1

    @property
    def wildcards(self) -> int:
        return sum(1 for p in self.paths if is_wildcard(p))

    @property
    def files(self) -> int:
        return len(self.paths) - self.wildcards


@dataclass(slots=True)
class _Stats:
    refusals: int = 0
    polls: int = 0


@dataclass
class InvalidationQueue:
    """Batches paths into invalidations within the quotas (see the module docstring).

    Args:
        invalidator: The CDN port.
        salt: Mixed into every `CallerReference` (a run id), so that a later takedown of the
            same image makes a new invalidation rather than getting the old one back.
        max_wildcards: Wildcard paths this queue keeps in progress at most.
        max_files: File paths this queue keeps in progress at most.
        base_delay: First back-off, seconds; doubled per refusal in a row, up to `max_delay`.
        poll_interval: Seconds between status reads of invalidations in progress.
        clock, sleep, rng: Injected for tests.
        on_created: Called with each invalidation as it is created (journals, progress).
    """

    invalidator: Invalidator
    salt: str = ""
    max_wildcards: int = MAX_WILDCARD_PATHS_IN_PROGRESS
    max_files: int = MAX_FILE_PATHS_IN_PROGRESS
    base_delay: float = 1.0
    max_delay: float = 60.0
    poll_interval: float = 5.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    on_created: Callable[[Invalidation], None] | None = None
    _wild: dict[str, None] = field(default_factory=dict)
    _files: dict[str, None] = field(default_factory=dict)
    created: list[Invalidation] = field(default_factory=list)
    _seen: set[tuple[int, str]] = field(default_factory=set)
    _wave_of: dict[str, int] = field(default_factory=dict)
    _refusals_in_a_row: int = 0
    _not_before: float = 0.0
    _next_poll: float = 0.0
    stats: _Stats = field(default_factory=_Stats)

    def submit(self, paths: Iterable[str], *, wave: int = 1) -> int:
        """Queue each path once per wave; how many were new.

        A second wave on purpose (the sweep after the render window) sends a path again, but no
        wave ever sends a path twice, and a path is never pending twice at once.
        """
        new = 0
        for path in paths:
            waiting = self._wild if is_wildcard(path) else self._files
            if (wave, path) not in self._seen and path not in waiting:
                self._seen.add((wave, path))
                self._wave_of[path] = wave
                waiting[path] = None
                new += 1
        return new

    def adopt(self, invalidation: Invalidation) -> None:
        """Count an invalidation made earlier (a resumed run): its paths are not sent again."""
        self._seen.update((invalidation.wave, p) for p in invalidation.paths)
        for path in invalidation.paths:
            self._wild.pop(path, None)
            self._files.pop(path, None)
        self.created.append(invalidation)

    @property
    def pending(self) -> list[str]:
        """The paths waiting for quota, in the order they came (wildcards first)."""
        return [*self._wild, *self._files]

    @property
    def in_progress(self) -> list[Invalidation]:
        return [i for i in self.created if i.status != COMPLETED]

    def _free(self) -> tuple[int, int]:
        busy = self.in_progress
        return (
            self.max_wildcards - sum(i.wildcards for i in busy),
            self.max_files - sum(i.files for i in busy),
        )

    def poll(self) -> None:
        """Read the status of every invalidation in progress."""
        for inv in self.in_progress:
            self.stats.polls += 1
            try:
                status = self.invalidator.status(inv.id)
            except InvalidationBusy:
                self._back_off()
                return
            if status == COMPLETED:
                inv.status = COMPLETED
                inv.completed_at = self.clock()
        self._next_poll = self.clock() + self.poll_interval

    def _back_off(self) -> None:
        self.stats.refusals += 1
        self._refusals_in_a_row += 1
        ceiling = min(self.max_delay, self.base_delay * 2 ** (self._refusals_in_a_row - 1))
        self._not_before = self.clock() + self.rng.uniform(0, ceiling)  # full jitter

    def _next_batch(self) -> list[str]:
        wildcards, files = self._free()
        return list(islice(self._wild, max(0, wildcards))) + list(
            islice(self._files, max(0, files))
        )

    def step(self) -> bool:
        """Create at most one invalidation if the quotas and back-off allow; whether it did."""
        now = self.clock()
        if now < self._not_before:
            return False
        batch = self._next_batch()
        if not batch:
            if self.in_progress and now >= self._next_poll:
                self.poll()
            return False
        wave = max(self._wave_of.get(p, 1) for p in batch)
        try:
            # The wave is part of the reference: a second wave of the same paths is a new
            # invalidation, not CloudFront's answer to the first.
            inv_id = self.invalidator.create(batch, reference_for(batch, f"{self.salt}:{wave}"))
        except InvalidationBusy:
            # Someone else's invalidations may hold the quota: poll ours, wait, try again.
            self._back_off()
            return False
        self._refusals_in_a_row = 0
        for path in batch:
            self._wild.pop(path, None)
            self._files.pop(path, None)
        inv = Invalidation(inv_id, tuple(batch), created_at=now, wave=wave)
        self.created.append(inv)
        if self.on_created is not None:
            self.on_created(inv)
        return True

    def _idle(self) -> None:
        """Sleep until something can change: the back-off ends or a poll is due."""
        now = self.clock()
        wake = max(self._not_before, now)
        if not self._next_batch() and self.in_progress:
            wake = max(wake, self._next_poll)
        self.sleep(max(0.0, wake - now) or min(self.poll_interval, 0.05))

    def flush(self, *, deadline: float | None = None) -> None:
        """Create invalidations until no path is pending (waiting for quota as needed).

        Raises:
            TimeoutError: `deadline` (on `clock`) passed with paths still pending.
        """
        while self._wild or self._files:
            if deadline is not None and self.clock() > deadline:
                msg = f"{len(self.pending)} path(s) still waiting for CloudFront's quota"
                raise TimeoutError(msg)
            if not self.step():
                self._idle()

    def wait(self, *, deadline: float | None = None) -> None:
        """Flush, then poll until every invalidation created here is `Completed`.

        Raises:
            TimeoutError: `deadline` passed first.
        """
        self.flush(deadline=deadline)
        while self.in_progress:
            if deadline is not None and self.clock() > deadline:
                msg = f"{len(self.in_progress)} invalidation(s) still in progress"
                raise TimeoutError(msg)
            if self.clock() >= max(self._next_poll, self._not_before):
                self.poll()
            if self.in_progress:
                self._idle()
