"""The precompute service: one original in, its standard variants and a manifest out.

It knows nothing of events or AWS: it takes an originals store, a derivatives store (both
`imgcore.storage.ObjectStore`), a policy and a renderer, and answers with an `Outcome`.
`PrecomputeService` is the one front door; its work lives in modules that import downwards
only, in this order:

- `outcome`: what an event came to (`Action`, `Outcome`) and the typed failures;
- `renderer`: the pixels port (`Renderer`) over `imgcore.pixels`;
- `versions`: the version index, i.e. what is stored per image, what its original holds now;
- `supersede`: tagging the versions a new current one supersedes, for the lifecycle rule;
- `remove`: deleting what was made from a removed original (`removed`);
- `create`: rendering and recording the standard set of a new original (`created`).

Each module's docstring states its rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from imgcdn_precompute.create import Creator
from imgcdn_precompute.outcome import (
    Action,
    ConcurrentRemoval,
    DeadlineNear,
    InvalidManifest,
    Outcome,
    WriteGuard,
)
from imgcdn_precompute.remove import Remover
from imgcdn_precompute.renderer import PixelRenderer, Renderer
from imgcdn_precompute.supersede import SUPERSEDED_TAG, Superseder
from imgcdn_precompute.versions import DEFAULT_MAX_HASH_BYTES, Ports, VersionIndex, stream_version
from imgcore.keys import ImageRef
from imgcore.manifest import Manifest, Placeholder
from imgcore.params import TransformParams
from imgcore.policy import DEFAULT_POLICY, Policy
from imgcore.storage import ObjectStore

if TYPE_CHECKING:
    from imgcore.pixels import Rendered, SourceInfo

__all__ = [
    "SUPERSEDED_TAG",
    "Action",
    "ConcurrentRemoval",
    "DeadlineNear",
    "InvalidManifest",
    "Outcome",
    "PixelRenderer",
    "PrecomputeService",
    "Renderer",
    "WriteGuard",
    "stream_version",
]


def _now() -> datetime:
    return datetime.now(UTC)


class PrecomputeService:
    """Render, record and remove the standard variants of originals (see the module docstring).

    Its ports and settings are attributes that can be replaced after construction (a test
    swaps the renderer of a running handler): every part reads them from one shared `Ports`.
    """

    def __init__(
        self,
        originals: ObjectStore,
        derivatives: ObjectStore,
        *,
        policy: Policy = DEFAULT_POLICY,
        renderer: Renderer | None = None,
        upload_workers: int = 8,
        max_hash_bytes: int = DEFAULT_MAX_HASH_BYTES,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        """Wire the service to its ports.

        Args:
            originals: Where originals are read (`{class}/{tenant}/{id}`).
            derivatives: Where derivatives and manifests are written.
            policy: The policy whose standard set, limits and TTLs apply.
            renderer: The pixels port (imgcore's libvips pipeline by default).
            upload_workers: Derivative puts in flight at once (S3 latency, not CPU, bounds them).
            max_hash_bytes: The largest oversize original that is still hashed to record a
                failed manifest.
            clock: The time stamped into manifests.
        """
        self._ports = Ports(
            originals,
            derivatives,
            policy,
            renderer or PixelRenderer(),
            upload_workers,
            max_hash_bytes,
            clock,
        )
        self._index = VersionIndex(self._ports)
        self._remover = Remover(self._index)
        self._creator = Creator(self._index, Superseder(self._index), self._remover)

    @property
    def originals(self) -> ObjectStore:
        """Where originals are read."""
        return self._ports.originals

    @originals.setter
    def originals(self, store: ObjectStore) -> None:
        self._ports.originals = store

    @property
    def derivatives(self) -> ObjectStore:
        """Where derivatives and manifests are written."""
        return self._ports.derivatives

    @derivatives.setter
    def derivatives(self, store: ObjectStore) -> None:
        self._ports.derivatives = store

    @property
    def policy(self) -> Policy:
        """The policy whose standard set, limits and TTLs apply."""
        return self._ports.policy

    @property
    def renderer(self) -> Renderer:
        """The pixels port."""
        return self._ports.renderer

    @renderer.setter
    def renderer(self, renderer: Renderer) -> None:
        self._ports.renderer = renderer

    @property
    def upload_workers(self) -> int:
        """Store calls in flight at once."""
        return self._ports.upload_workers

    @property
    def max_hash_bytes(self) -> int:
        """The largest oversize original that is still hashed to record a failed manifest."""
        return self._ports.max_hash_bytes

    @property
    def standard(self) -> list[TransformParams]:
        """The params of the policy's standard variant set."""
        return self._creator.standard

    def manifest(self, image: ImageRef, version: str) -> Manifest | None:
        """The stored manifest of one version, or None (see `VersionIndex.manifest`)."""
        return self._index.manifest(image, version)

    def stored_versions(self, image: ImageRef) -> dict[str, list[str]]:
        """Every version stored under an image's prefix, with its keys (this image's only)."""
        return self._index.stored_versions(image)

    def render(self, data: bytes) -> tuple[SourceInfo, list[Rendered], Placeholder]:
        """Admit an original, render its standard set, make its placeholder (`Creator.render`)."""
        return self._creator.render(data)

    def created(
        self, key: str, *, version_id: str | None = None, deadline: WriteGuard | None = None
    ) -> Outcome:
        """Render and record the standard set of the original at `key` (`Creator.created`)."""
        return self._creator.created(key, version_id=version_id, deadline=deadline)

    def removed(
        self, key: str, *, version_id: str | None = None, delete_marker: bool = False
    ) -> Outcome:
        """Remove what was made from a removed original (`Remover.removed`)."""
        return self._remover.removed(key, version_id=version_id, delete_marker=delete_marker)
