"""Removing: delete what was made from an original (or one version of it) that is gone.

- With the S3 version id of a removed object version (versioned bucket, `ObjectRemoved:Delete`):
  the versions whose manifest records that `source_version_id` are removed, unless the
  original's current object holds the same bytes (an identical re-upload): then the manifest is
  re-pointed at the current object's version id instead, so the fallback can still read it.
- Without a version id (unversioned bucket) or for a delete marker: every version under the
  image's prefix is removed except the one whose bytes are the original's current object, if
  there is one (a re-upload that happened after the delete, whichever event arrives first).
  The prefix is listed again afterwards, so a create racing with the removal cannot leave a
  manifest behind.
- Only keys of this image are touched: `{prefix}{version}/{name}` with exactly one name segment,
  never those of a neighbour image whose id extends this one (`a` vs `a/b`).
- Removal deletes a version's derivatives first and its manifest last: the manifest is what a
  retried removal uses to find what is left.
- Once a create finds its original gone, the versions with derivatives but no manifest are
  swept (`sweep_orphans`).

Ordering is judged by the current state of the original, not by S3's `sequencer`: the state is
read, not remembered. The one case this cannot tell apart is an unversioned original that was
deleted and re-created with other bytes while a third upload was in flight: then a version that
was overwritten (not deleted) may lose its stored derivatives; its URLs then answer from the
fallback, which 404s because those bytes no longer exist anywhere.
"""

from __future__ import annotations

from imgcdn_precompute.outcome import Action, BoundLog, InvalidManifest, Outcome, log, rejected
from imgcdn_precompute.versions import MANIFEST_CONTENT_TYPE, Current, VersionIndex
from imgcore.errors import InvalidKey
from imgcore.keys import ImageRef, parse_source_key
from imgcore.responses import cache_control, error_cache_control
from imgcore.storage import StorageFault

__all__ = ["Remover"]

_REMOVAL_ROUNDS = 3


class Remover:
    """Removes the versions of removed originals (see the module docstring)."""

    def __init__(self, index: VersionIndex) -> None:
        """Work through the version index `index` and its ports."""
        self.index = index

    def removed(
        self, key: str, *, version_id: str | None = None, delete_marker: bool = False
    ) -> Outcome:
        """Remove what was made from a removed original (see the module docstring).

        Args:
            key: The original's key, decoded.
            version_id: The removed S3 version (versioned buckets); None when unversioned.
            delete_marker: The event created a delete marker (`version_id` names the marker).

        Returns:
            What was removed.

        Raises:
            StorageFault: A store failed; retrying is safe.
        """
        try:
            image = parse_source_key(key)
        except InvalidKey as exc:
            return rejected(key, exc)
        bound = log.bind(key=key, tenant=image.tenant, source_version_id=version_id)
        if version_id is not None and not delete_marker:
            removed, repointed = self._remove_source_version(image, key, version_id)
            reason = f"re-pointed {', '.join(repointed)}" if repointed else None
        else:
            current = self.index.current(key)
            keep = current.version if current else None
            removed = self._remove_all_but(image, keep)
            reason = f"kept {keep} (the current object)" if keep else None
        bound.info("removed", versions=removed, detail=reason)
        return Outcome(Action.REMOVED, key, image, removed=tuple(removed), reason=reason)

    def _remove_source_version(
        self, image: ImageRef, key: str, version_id: str
    ) -> tuple[list[str], list[str]]:
        index, policy = self.index, self.index.ports.policy
        removed: list[str] = []
        repointed: list[str] = []
        current: Current | bool | None = False  # False: not read yet
        for version, keys in sorted(index.stored_versions(image).items()):
            try:
                manifest = index.manifest(image, version)
            except InvalidManifest as exc:
                log.error("manifest_invalid", key=key, reason=str(exc))
                continue
            if manifest is None or manifest.source_version_id != version_id:
                continue
            if current is False:
                current = index.current(key)
            if isinstance(current, Current) and current.version == version:
                index.ports.derivatives.put(
                    image.manifest_key(version),
                    manifest.model_copy(update={"source_version_id": current.version_id}).to_json(),
                    content_type=MANIFEST_CONTENT_TYPE,
                    cache_control=cache_control(image.content_class, policy)
                    if manifest.status == "complete"
                    else error_cache_control(422, policy),
                )
                repointed.append(version)
                continue
            index.delete_version(image, version, keys, manifest_first=False)
            removed.append(version)
        return removed, repointed

    def _remove_all_but(self, image: ImageRef, keep: str | None) -> list[str]:
        removed: set[str] = set()
        for _ in range(_REMOVAL_ROUNDS):
            doomed = {v: k for v, k in self.index.stored_versions(image).items() if v != keep}
            if not doomed:
                return sorted(removed)
            for version, keys in doomed.items():
                self.index.delete_version(image, version, keys, manifest_first=False)
            removed.update(doomed)
        msg = f"versions under {image.prefix} keep reappearing while being removed; retry"
        raise StorageFault(msg)

    def sweep_orphans(self, image: ImageRef, bound: BoundLog) -> None:
        """Delete the versions that have derivatives but no manifest, once the original is gone.

        An attempt stopped before its manifest (a deadline, a crash) leaves derivatives that the
        S3 primary serves by key; when the original was removed meanwhile, the removal's sweep
        may have run before they landed, and no manifest ever names them. The retry that finds
        the original gone is the last event that can remove them (R10).
        """
        if self.index.ports.originals.head(image.source_key) is not None:
            return  # a newer upload exists: its worker may be writing a version right now
        for version, keys in self.index.stored_versions(image).items():
            if image.manifest_key(version) not in keys:
                self.index.delete_version(image, version, keys, manifest_first=False)
                bound.info("orphans_removed", version=version, objects=len(keys))
