"""The version index: what is stored for an image, and what its original holds now.

Shared by creating, removing and superseding. The `Ports` it reads are the service's own,
shared by reference, so a port or setting changed on the service applies everywhere at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from imgcdn_precompute.outcome import InvalidManifest
from imgcdn_precompute.renderer import Renderer
from imgcore.errors import InputTooLarge
from imgcore.keys import ImageRef, content_version
from imgcore.manifest import Manifest
from imgcore.policy import Policy
from imgcore.storage import NotFound, ObjectInfo, ObjectStore, SupportsStream

__all__ = [
    "DEFAULT_MAX_HASH_BYTES",
    "MANIFEST_CONTENT_TYPE",
    "Current",
    "Ports",
    "VersionIndex",
    "stream_version",
]

MANIFEST_CONTENT_TYPE = "application/json"
DEFAULT_MAX_HASH_BYTES = 1 << 30
"""1 GiB: an oversize original is still hashed (streamed) to name its failed manifest; beyond
this it takes too long to be worth it in a Lambda and is only logged."""


@dataclass(slots=True)
class Ports:
    """The service's ports and settings, one object shared by all of its parts."""

    originals: ObjectStore
    derivatives: ObjectStore
    policy: Policy
    renderer: Renderer
    upload_workers: int
    max_hash_bytes: int
    clock: Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Current:
    """The original's current object: its content version and S3 version id."""

    version: str
    version_id: str | None


def stream_version(chunks: Iterator[bytes]) -> tuple[str, int]:
    """`content_version` of a stream of chunks, and its size in bytes."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest()[: len(content_version(b""))], size


class VersionIndex:
    """Reads manifests and stored versions, reads and hashes originals, deletes versions."""

    def __init__(self, ports: Ports) -> None:
        """Read and write through `ports`."""
        self.ports = ports

    def manifest(self, image: ImageRef, version: str) -> Manifest | None:
        """The stored manifest of one version, or None.

        Raises:
            InvalidManifest: Something that is not a manifest of this schema is stored there.
            StorageFault: The store failed.
        """
        key = image.manifest_key(version)
        try:
            stored = self.ports.derivatives.get(key)
        except NotFound:
            return None
        try:
            return Manifest.model_validate_json(stored.data)
        except ValidationError as exc:
            msg = f"{key} is not a manifest of schema 1: {exc.error_count()} error(s)"
            raise InvalidManifest(msg) from None

    def stored_versions(self, image: ImageRef) -> dict[str, list[str]]:
        """Every version stored under an image's prefix, with its keys (this image's only)."""
        groups: dict[str, list[str]] = {}
        for info in self.ports.derivatives.list(image.prefix):
            if image.owns(info.key):
                version = info.key[len(image.prefix) :].partition("/")[0]
                groups.setdefault(version, []).append(info.key)
        return groups

    def read_original(self, key: str, version_id: str | None) -> tuple[bytes, ObjectInfo]:
        """The original's bytes and info, within the policy's byte bound."""
        stored = self.ports.originals.get(
            key, max_bytes=self.ports.policy.limits.max_input_bytes, version_id=version_id
        )
        return stored.data, stored.info

    def hash_original(self, key: str, version_id: str | None) -> tuple[str, ObjectInfo]:
        """Hash an original too large to render, without holding it when the store streams.

        Raises:
            InputTooLarge: Over `max_hash_bytes`: too large even to record a failed manifest.
            NotFound: The original is gone.
        """
        originals, max_hash_bytes = self.ports.originals, self.ports.max_hash_bytes
        if isinstance(originals, SupportsStream):
            info, chunks = originals.stream(key, version_id=version_id)
            if info.size > max_hash_bytes:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
                raise self._unrecordable(key, f"{info.size:,} bytes")
            version, size = stream_version(chunks)
            return version, ObjectInfo(key, size, version_id=info.version_id)
        try:
            stored = originals.get(key, max_bytes=max_hash_bytes, version_id=version_id)
        except InputTooLarge:
            raise self._unrecordable(key, f"over {max_hash_bytes:,} bytes") from None
        return content_version(stored.data), stored.info

    def _unrecordable(self, key: str, size: str) -> InputTooLarge:
        msg = (
            f"object {key!r} is {size}; allowed: at most "
            f"{self.ports.policy.limits.max_input_bytes:,} bytes (too large even to record a "
            "failed manifest)"
        )
        return InputTooLarge(msg)

    def current(self, key: str) -> Current | None:
        """The original's current object, or None when there is none (or it cannot be hashed)."""
        try:
            data, info = self.read_original(key, None)
            return Current(content_version(data), info.version_id)
        except NotFound:
            return None
        except InputTooLarge:
            pass
        try:
            version, info = self.hash_original(key, None)
        except NotFound:
            return None
        except InputTooLarge:
            return None  # never rendered nor recorded: no version of it can be stored
        return Current(version, info.version_id)

    def source_exists(self, key: str, version_id: str | None) -> bool:
        """Whether the original (that S3 version of it, when named) still exists."""
        originals = self.ports.originals
        info = originals.head(key)
        if info is None:
            return False
        if version_id is None or info.version_id is None or info.version_id == version_id:
            return True
        try:  # the current object is another version: does ours still exist?
            originals.get(
                key, version_id=version_id, max_bytes=self.ports.policy.limits.max_input_bytes
            )
        except NotFound:
            return False
        except InputTooLarge:
            return True
        return True

    def delete_version(
        self, image: ImageRef, version: str, keys: Iterable[str], *, manifest_first: bool
    ) -> None:
        """Delete one version's `keys`: its manifest first (a rollback: nothing half-visible)
        or last (a removal: a retry still finds what is left)."""
        derivatives = self.ports.derivatives
        manifest_key = image.manifest_key(version)
        others = sorted(k for k in keys if k != manifest_key)
        if manifest_first:
            derivatives.delete(manifest_key)
        with ThreadPoolExecutor(max(1, self.ports.upload_workers), "imgcdn-delete") as pool:
            for _ in pool.map(derivatives.delete, others):
                pass
        if not manifest_first:
            derivatives.delete(manifest_key)
