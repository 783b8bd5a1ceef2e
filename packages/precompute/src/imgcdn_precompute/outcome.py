"""What the precompute service answers: the outcome of one event, and its typed failures.

Shared by creating, removing and superseding (the bottom of the service's modules: it imports
none of them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from imgcore.errors import ImgcoreError, InvalidKey
from imgcore.keys import ImageRef
from imgcore.manifest import Manifest
from imgcore.storage import StorageFault

__all__ = [
    "Action",
    "ConcurrentRemoval",
    "DeadlineNear",
    "InvalidManifest",
    "Job",
    "Outcome",
    "WriteGuard",
    "no_write_guard",
    "rejected",
]

log = structlog.get_logger("imgcdn.precompute")
BoundLog = Any  # structlog's bound loggers are typed Any


class Action(StrEnum):
    """What the service did with one event."""

    RENDERED = "rendered"
    """The standard set and a complete manifest were written."""
    SKIPPED = "skipped"
    """That version's manifest already existed (a duplicate, a redelivery, a lost race)."""
    FAILED = "failed"
    """A permanent failure, recorded in a manifest with status `failed`."""
    REJECTED = "rejected"
    """A permanent failure with nowhere to record it (key outside the layout, or too large to
    hash): logged and counted only."""
    GONE = "gone"
    """The original no longer exists; nothing was left written."""
    REMOVED = "removed"
    """An original was removed; its versions' derivatives and manifests were deleted."""
    IGNORED = "ignored"
    """An event this worker has nothing to do for."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of handling one event for one original."""

    action: Action
    key: str
    image: ImageRef | None = None
    version: str | None = None
    manifest: Manifest | None = None
    bytes_written: int = 0
    render_ms: float = 0.0
    removed: tuple[str, ...] = ()
    reason: str | None = None


class ConcurrentRemoval(StorageFault):
    """Derivatives vanished while a version was being written: the original was removed
    concurrently. The version was rolled back; a retry sees the settled state."""


class DeadlineNear(StorageFault):
    """Too little of the invocation is left for another storage write to finish: stopped
    before writing (nothing half-visible), so the message is reported failed and retried."""


WriteGuard = Callable[[], None]
"""Called before each write; raises `DeadlineNear` when the invocation is about to end (not the
fallback's `imgcdn_edge.Deadline`, a point in time: this is the check made against one)."""


def no_write_guard() -> None:
    """The `WriteGuard` of a caller without one: never stops."""
    return None


class InvalidManifest(ImgcoreError):
    """What is stored under a manifest key is not a manifest of this schema."""

    permanent = True


@dataclass(frozen=True, slots=True)
class Job:
    """One original being created: what every step needs to know and to log."""

    image: ImageRef
    key: str
    version: str
    source_version_id: str | None
    source_bytes: int
    log: BoundLog
    deadline: WriteGuard = no_write_guard
    replace_manifest: bool = False
    """What is stored under the manifest key is not a valid manifest: overwrite it."""

    def outcome(self, action: Action, **fields: Any) -> Outcome:
        """This job's outcome: its key, image and version, and `fields`."""
        return Outcome(action, self.key, self.image, self.version, **fields)


def rejected(key: str, error: InvalidKey) -> Outcome:
    """A key outside the layout: logged, and nothing can be recorded for it."""
    log.warning("original_rejected", key=key, reason=str(error))
    return Outcome(Action.REJECTED, key, reason=str(error))
