"""Superseding: tag an image's older versions for the derivatives bucket's lifecycle rule.

When a version is the original's current object, every object of the image's other versions
is tagged `imgcdn-superseded=true` (also on a redelivery, so a failed tagging is retried). A
late or out-of-order event for an older version tags nothing: the current object is read, not
the event trusted (R18).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType

from imgcdn_precompute.outcome import Job
from imgcdn_precompute.versions import VersionIndex

__all__ = ["SUPERSEDED_TAG", "SUPERSEDED_TAGS", "Superseder"]

SUPERSEDED_TAG = "imgcdn-superseded"
"""The object tag the derivatives bucket's lifecycle rule expires (value `true`)."""
SUPERSEDED_TAGS: Mapping[str, str] = MappingProxyType({SUPERSEDED_TAG: "true"})


class Superseder:
    """Tags the versions a new current version supersedes (see the module docstring)."""

    def __init__(self, index: VersionIndex) -> None:
        """Work through the version index `index` and its ports."""
        self.index = index

    def tag(self, job: Job) -> None:
        """Tag every object of the image's other versions when `job.version` is current."""
        if not self.is_current(job):
            job.log.info("superseded_not_tagged", reason="not the original's current version")
            return
        derivatives = self.index.ports.derivatives
        versions = self.index.stored_versions(job.image)
        older = {v: keys for v, keys in versions.items() if v != job.version}
        keys = sorted(k for group in older.values() for k in group)

        def tag(key: str) -> None:
            derivatives.set_tags(key, SUPERSEDED_TAGS)

        def untag(key: str) -> None:
            tags = derivatives.get_tags(key)
            if SUPERSEDED_TAG in tags:
                derivatives.set_tags(key, {k: v for k, v in tags.items() if k != SUPERSEDED_TAG})

        with ThreadPoolExecutor(max(1, self.index.ports.upload_workers), "imgcdn-tag") as pool:
            # A version made current again (A, B, then A re-uploaded) was tagged when B landed:
            # its own objects lose the tag first, or the lifecycle rule would expire the live set.
            # The manifest is tagged whenever its version is, so one read tells.
            if SUPERSEDED_TAG in derivatives.get_tags(job.image.manifest_key(job.version)):
                for _ in pool.map(untag, versions.get(job.version, [])):
                    pass
                job.log.info("superseded_untagged", version=job.version)
            for _ in pool.map(tag, keys):  # re-raises the first failure: the event is retried
                pass
        if keys:
            job.log.info("superseded_tagged", versions=sorted(older), objects=len(keys))

    def is_current(self, job: Job) -> bool:
        """Whether the original's current object holds exactly `job.version`'s bytes."""
        info = self.index.ports.originals.head(job.key)
        if info is None:
            return False
        if info.version_id is not None and info.version_id == job.source_version_id:
            return True
        if info.size != job.source_bytes:
            return False
        # Same size, no version id to compare (or an identical re-upload): compare the bytes.
        current = self.index.current(job.key)
        return current is not None and current.version == job.version
