"""The precompute service: one original in, its standard variants and a manifest out.

It knows nothing of events or AWS: it takes an originals store, a derivatives store (both
`imgcore.storage.ObjectStore`), a policy and a renderer, and answers with an `Outcome`.

Creating (`created`), for an original at `{class}/{tenant}/{id}`:

1. The key must follow the layout; otherwise there is nowhere to write a manifest: the outcome
   is `rejected` (logged and counted; retrying cannot help).
2. The original is read with the policy's byte bound (the exact S3 version when the event
   named one). Gone (`NotFound`) means it was removed or replaced before we got here: nothing is
   written, so a late create can never resurrect a removed image.
3. Its version is `content_version(bytes)` (R7). When that version's manifest exists, nothing is
   rendered: a redelivered or duplicated event costs one read.
4. The standard set is rendered from one decode; every derivative is written only if absent
   (each put is atomic) under `{class}/{tenant}/{id}/{version}/{variant}` with the headers of
   `imgcore.responses.derivative_headers`, the ones the fallback sends (R4, R11); an object
   already there is kept and the manifest records its stored size, so the manifest describes
   what is stored even when racing workers made different bytes (AVIF's output depends on the
   libvips thread count). The manifest is written LAST and only if absent, so a manifest means
   all its derivatives are there, and there is exactly one. An invalid manifest is overwritten.
5. Then it checks that nothing removed the original meanwhile: if a derivative vanished (a
   concurrent removal got to it) the version is rolled back and a transient error asks for a
   retry, which sees the settled state; if the original itself is gone, the version is rolled
   back and the outcome is `gone`. Rollbacks delete the manifest first. A worker that lost the
   manifest race runs the same check (against the winning manifest): what it wrote after a
   removal is not left behind.
6. When the version is the original's current object, every object of the image's other
   versions is tagged `imgcdn-superseded=true` for the bucket's lifecycle rule (also on a
   redelivery, so a failed tagging is retried).

Failures: an original that cannot be admitted or decoded (`InputRejected`, including one over
`max_input_bytes`) is permanent: a manifest with status `failed` and the reason is written
under its version (an oversize original is hashed as a stream, never held in memory, up to
`max_hash_bytes`; beyond that the outcome is `rejected`). Storage faults, encoder faults and
everything unexpected propagate: the caller retries them.

Removing (`removed`), when an original (or one version of it) is gone:

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

Ordering is judged by the current state of the original, not by S3's `sequencer`: the state is
read, not remembered. The one case this cannot tell apart is an unversioned original that was
deleted and re-created with other bytes while a third upload was in flight: then a version that
was overwritten (not deleted) may lose its stored derivatives; its URLs then answer from the
fallback, which 404s because those bytes no longer exist anywhere.
"""

from __future__ import annotations

import contextvars
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import structlog
from pydantic import ValidationError

from imgcore.errors import ImgcoreError, InputRejected, InputTooLarge, InvalidKey
from imgcore.keys import DerivativeKey, ImageRef, content_version, parse_source_key
from imgcore.manifest import Manifest, Placeholder, VariantRecord
from imgcore.params import TransformParams
from imgcore.policy import DEFAULT_POLICY, OutputFormat, Policy
from imgcore.responses import cache_control, derivative_headers, error_cache_control
from imgcore.storage import NotFound, ObjectInfo, ObjectStore, StorageFault

if TYPE_CHECKING:
    from imgcore.pixels import Rendered, SourceInfo

__all__ = [
    "SUPERSEDED_TAG",
    "Action",
    "ConcurrentRemoval",
    "Deadline",
    "DeadlineNear",
    "InvalidManifest",
    "Outcome",
    "PixelRenderer",
    "PrecomputeService",
    "Renderer",
    "SupportsStream",
    "stream_version",
]

MANIFEST_CONTENT_TYPE = "application/json"
SUPERSEDED_TAG = "imgcdn-superseded"
"""The object tag the derivatives bucket's lifecycle rule expires (value `true`)."""
SUPERSEDED_TAGS: Mapping[str, str] = MappingProxyType({SUPERSEDED_TAG: "true"})
DEFAULT_MAX_HASH_BYTES = 1 << 30
"""1 GiB: an oversize original is still hashed (streamed) to name its failed manifest; beyond
this it takes too long to be worth it in a Lambda and is only logged."""
_HASH_CHUNK = 1 << 20
_REMOVAL_ROUNDS = 3
_PUT_ATTEMPTS = 3
# Decoding the smallest derivative for the placeholder: formats in the order they decode fastest.
_PLACEHOLDER_SOURCE_ORDER = (OutputFormat.JPEG, OutputFormat.WEBP, OutputFormat.PNG)

_A = TypeVar("_A")
_R = TypeVar("_R")

log = structlog.get_logger("imgcdn.precompute")
_Log = Any  # structlog's bound loggers are typed Any


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


Deadline = Callable[[], None]
"""Called before each write; raises `DeadlineNear` when the invocation is about to end."""


def _no_deadline() -> None:
    return None


class InvalidManifest(ImgcoreError):
    """What is stored under a manifest key is not a manifest of this schema."""

    permanent = True


class Renderer(Protocol):
    """The pixels port: what the service needs from `imgcore.pixels`."""

    def probe(self, data: bytes, policy: Policy) -> SourceInfo:
        """Admit an original and read its header (see `imgcore.pixels.probe`)."""
        ...

    def render(
        self, data: bytes, params: Sequence[TransformParams], policy: Policy
    ) -> list[Rendered]:
        """Render many variants from one decode (see `imgcore.pixels.render_variants`)."""
        ...

    def placeholder(self, data: bytes, policy: Policy) -> Placeholder:
        """A dominant colour and a tiny preview (see `imgcore.pixels.placeholder`)."""
        ...


class PixelRenderer:
    """The `Renderer` over `imgcore.pixels`, which loads libvips on first use."""

    def probe(self, data: bytes, policy: Policy) -> SourceInfo:
        """See `imgcore.pixels.probe`."""
        from imgcore import pixels  # noqa: PLC0415 - libvips loads only when pixels are needed

        return pixels.probe(data, policy)

    def render(
        self, data: bytes, params: Sequence[TransformParams], policy: Policy
    ) -> list[Rendered]:
        """See `imgcore.pixels.render_variants`."""
        from imgcore import pixels  # noqa: PLC0415

        return pixels.render_variants(data, params, policy)

    def placeholder(self, data: bytes, policy: Policy) -> Placeholder:
        """See `imgcore.pixels.placeholder`."""
        from imgcore import pixels  # noqa: PLC0415

        return pixels.placeholder(data, policy)


@runtime_checkable
class SupportsStream(Protocol):
    """A store that can hand over an object in chunks, so it can be hashed without holding it."""

    def stream(
        self, key: str, *, version_id: str | None = None
    ) -> tuple[ObjectInfo, Iterator[bytes]]:
        """The object's info and an iterator over its bytes; raises `NotFound`."""
        ...


def stream_version(chunks: Iterator[bytes]) -> tuple[str, int]:
    """`content_version` of a stream of chunks, and its size in bytes."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest()[: len(content_version(b""))], size


def _now() -> datetime:
    return datetime.now(UTC)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


@dataclass(frozen=True, slots=True)
class _Current:
    """The original's current object: its content version and S3 version id."""

    version: str
    version_id: str | None


@dataclass(frozen=True, slots=True)
class _Job:
    """One original being created: what every step needs to know and to log."""

    image: ImageRef
    key: str
    version: str
    source_version_id: str | None
    source_bytes: int
    log: _Log
    deadline: Deadline = _no_deadline
    replace_manifest: bool = False
    """What is stored under the manifest key is not a valid manifest: overwrite it."""

    def outcome(self, action: Action, **fields: Any) -> Outcome:
        return Outcome(action, self.key, self.image, self.version, **fields)


class PrecomputeService:
    """Render, record and remove the standard variants of originals (see the module docstring)."""

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
        self.originals = originals
        self.derivatives = derivatives
        self.policy = policy
        self.renderer: Renderer = renderer or PixelRenderer()
        self.upload_workers = upload_workers
        self.max_hash_bytes = max_hash_bytes
        self._clock = clock

    @cached_property
    def standard(self) -> list[TransformParams]:
        """The params of the policy's standard variant set."""
        from imgcore.pixels import standard_params  # noqa: PLC0415 - loads libvips

        return standard_params(self.policy)

    # --- reading --------------------------------------------------------------------------

    def manifest(self, image: ImageRef, version: str) -> Manifest | None:
        """The stored manifest of one version, or None.

        Raises:
            InvalidManifest: Something that is not a manifest of this schema is stored there.
            StorageFault: The store failed.
        """
        key = image.manifest_key(version)
        try:
            stored = self.derivatives.get(key)
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
        for info in self.derivatives.list(image.prefix):
            if image.owns(info.key):
                version = info.key[len(image.prefix) :].partition("/")[0]
                groups.setdefault(version, []).append(info.key)
        return groups

    def _read_original(self, key: str, version_id: str | None) -> tuple[bytes, ObjectInfo]:
        stored = self.originals.get(
            key, max_bytes=self.policy.limits.max_input_bytes, version_id=version_id
        )
        return stored.data, stored.info

    def _hash_original(self, key: str, version_id: str | None) -> tuple[str, ObjectInfo]:
        """Hash an original too large to render, without holding it when the store streams."""
        if isinstance(self.originals, SupportsStream):
            info, chunks = self.originals.stream(key, version_id=version_id)
            if info.size > self.max_hash_bytes:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
                raise self._unrecordable(key, f"{info.size:,} bytes")
            version, size = stream_version(chunks)
            return version, ObjectInfo(key, size, version_id=info.version_id)
        try:
            stored = self.originals.get(key, max_bytes=self.max_hash_bytes, version_id=version_id)
        except InputTooLarge:
            raise self._unrecordable(key, f"over {self.max_hash_bytes:,} bytes") from None
        return content_version(stored.data), stored.info

    def _unrecordable(self, key: str, size: str) -> InputTooLarge:
        msg = (
            f"object {key!r} is {size}; allowed: at most "
            f"{self.policy.limits.max_input_bytes:,} bytes (too large even to record a "
            "failed manifest)"
        )
        return InputTooLarge(msg)

    def _current(self, key: str) -> _Current | None:
        """The original's current object, or None when there is none (or it cannot be hashed)."""
        try:
            data, info = self._read_original(key, None)
            return _Current(content_version(data), info.version_id)
        except NotFound:
            return None
        except InputTooLarge:
            pass
        try:
            version, info = self._hash_original(key, None)
        except NotFound:
            return None
        except InputTooLarge:
            return None  # never rendered nor recorded: no version of it can be stored
        return _Current(version, info.version_id)

    def _source_exists(self, key: str, version_id: str | None) -> bool:
        info = self.originals.head(key)
        if info is None:
            return False
        if version_id is None or info.version_id is None or info.version_id == version_id:
            return True
        try:  # the current object is another version: does ours still exist?
            self.originals.get(
                key, version_id=version_id, max_bytes=self.policy.limits.max_input_bytes
            )
        except NotFound:
            return False
        except InputTooLarge:
            return True
        return True

    # --- creating ---------------------------------------------------------------------------

    def render(self, data: bytes) -> tuple[SourceInfo, list[Rendered], Placeholder]:
        """Admit an original, render its standard set from one decode, make its placeholder.

        Raises:
            InputRejected: The original cannot be admitted or decoded (permanent).
            ImgcoreError: An encoder failed (not the original's fault).
        """
        source = self.renderer.probe(data, self.policy)
        rendered = self.renderer.render(data, self.standard, self.policy)
        placeholder = self.renderer.placeholder(
            _placeholder_source(rendered, data, self.policy), self.policy
        )
        return source, rendered, placeholder

    def created(
        self, key: str, *, version_id: str | None = None, deadline: Deadline | None = None
    ) -> Outcome:
        """Render and record the standard set of the original at `key` (see the module doc).

        Args:
            key: The original's key, decoded.
            version_id: The S3 version the event is about, when the bucket is versioned.
            deadline: Called before each write; raises `DeadlineNear` to stop before a write
                that could outlive the invocation.

        Returns:
            What was done.

        Raises:
            StorageFault: A store failed, or the original was removed while being rendered;
                retrying is safe.
            ImgcoreError: An encoder failed (not the original's fault); retrying is safe.
        """
        try:
            image = parse_source_key(key)
        except InvalidKey as exc:
            return _rejected(key, exc)
        bound = log.bind(key=key, tenant=image.tenant)
        try:
            data, info = self._read_original(key, version_id)
        except NotFound:
            bound.info("original_gone", source_version_id=version_id)
            self._sweep_orphans(image, bound)
            return Outcome(Action.GONE, key, image, reason="the original no longer exists")
        except InputTooLarge as exc:
            return self._oversize(image, key, version_id, exc, deadline or _no_deadline)
        version = content_version(data)
        source_version_id = info.version_id or version_id
        job = _Job(
            image,
            key,
            version,
            source_version_id,
            len(data),
            bound.bind(version=version, source_version_id=source_version_id),
            deadline or _no_deadline,
        )
        existing = self._existing(job)
        return existing if isinstance(existing, Outcome) else self._render(existing, data)

    def _existing(self, job: _Job) -> Outcome | _Job:
        """An outcome when this version was already handled (its manifest exists), else the job
        to do (told to overwrite what is stored under the manifest key when it is invalid)."""
        try:
            existing = self.manifest(job.image, job.version)
        except InvalidManifest as exc:
            # Skipping would block this version forever: nothing else ever rewrites it.
            job.log.warning("manifest_invalid_rewriting", reason=str(exc))
            return replace(job, replace_manifest=True)
        if existing is None:
            return job
        job.log.info("manifest_exists", status=existing.status)
        if existing.status == "complete":
            self._tag_superseded(job)  # a retry after tagging failed lands here
        return job.outcome(
            Action.SKIPPED,
            manifest=existing,
            reason=f"version {job.version} already has a {existing.status} manifest",
        )

    def _render(self, job: _Job, data: bytes) -> Outcome:
        started = time.perf_counter()
        try:
            source, rendered, placeholder = self.render(data)
        except InputRejected as exc:
            try:  # what the header says, when it can be read, goes into the failed manifest
                header: SourceInfo | None = self.renderer.probe(data, self.policy)
            except InputRejected:
                header = None
            return self._record_failure(job, exc, header)
        render_ms = _ms_since(started)
        job.log.info("rendered", variants=len(rendered), render_ms=render_ms)

        image, version = job.image, job.version
        width, height = source.display_size
        variants, written = self._store_derivatives(job, rendered)
        manifest = Manifest(
            tenant=image.tenant,
            image_id=image.image_id,
            content_class=image.content_class,
            version=version,
            status="complete",
            source_key=job.key,
            source_version_id=job.source_version_id,
            source_bytes=job.source_bytes,
            source_format=source.format,
            source_width=width,
            source_height=height,
            variants=variants,
            placeholder=placeholder,
            created_at=self._clock(),
        )
        body = manifest.to_json()
        job.deadline()
        if not self.derivatives.put(
            image.manifest_key(version),
            body,
            content_type=MANIFEST_CONTENT_TYPE,
            cache_control=cache_control(image.content_class, self.policy),
            if_absent=not job.replace_manifest,
        ):
            job.log.info("manifest_race_lost", bytes_written=written)
            return self._lost_race(job, manifest, written, render_ms)
        written += len(body)
        if not self._still_wanted(image, manifest, job.log):
            return job.outcome(
                Action.GONE,
                bytes_written=written,
                render_ms=render_ms,
                reason="the original was removed while rendering",
            )
        job.log.info("manifest_written", status="complete", bytes_written=written)
        self._tag_superseded(job)
        return job.outcome(
            Action.RENDERED, manifest=manifest, bytes_written=written, render_ms=render_ms
        )

    def _lost_race(self, job: _Job, ours: Manifest, written: int, render_ms: float) -> Outcome:
        """Another worker's manifest got there first. The derivatives this worker wrote may
        still have landed after a removal of the original (which deletes derivatives first,
        the manifest last), so the same rollback check runs on the manifest that won; when it
        has vanished too, on ours, whose manifest key is then missing: rolled back, retried."""
        try:
            winner = self.manifest(job.image, job.version)
        except InvalidManifest:
            winner = None
        if not self._still_wanted(job.image, winner or ours, job.log):
            return job.outcome(
                Action.GONE,
                bytes_written=written,
                render_ms=render_ms,
                reason="the original was removed while rendering (after a lost race)",
            )
        if winner is not None and winner.status == "complete":
            self._tag_superseded(job)
        return job.outcome(
            Action.SKIPPED,
            manifest=winner,
            bytes_written=written,
            render_ms=render_ms,
            reason="another worker wrote this version's manifest first",
        )

    def _store_derivatives(
        self, job: _Job, rendered: Sequence[Rendered]
    ) -> tuple[tuple[VariantRecord, ...], int]:
        """Write every derivative that is not there yet; its records and the bytes written.

        A derivative already stored (a racing worker, an earlier attempt, the fallback) is kept,
        never overwritten: a CDN may already hold its bytes, and the manifest must describe
        what is stored, so its record takes the stored object's size.
        """

        image, version, bound = job.image, job.version, job.log

        def put(result: Rendered) -> tuple[VariantRecord, int]:
            job.deadline()
            key = DerivativeKey(image, version, result.params).key
            headers = derivative_headers(result.params.fmt, image.content_class, self.policy)
            started = time.perf_counter()
            size, wrote = self._put_if_absent(key, result.data, headers)
            record = VariantRecord(
                key=key,
                variant=result.params.variant,
                fmt=result.params.fmt,
                width=result.width,
                height=result.height,
                bytes=size,
            )
            bound.info(
                "variant_stored",
                variant=record.variant,
                bytes=size,
                width=record.width,
                height=record.height,
                kept_existing=not wrote,
                render_ms=round(result.ms, 1),
                store_ms=_ms_since(started),
            )
            return record, len(result.data) if wrote else 0

        with ThreadPoolExecutor(max(1, self.upload_workers), "imgcdn-put") as pool:
            # Every put must finish before the manifest: map re-raises the first failure.
            stored = list(pool.map(_in_context(put), rendered))
        return tuple(r for r, _ in stored), sum(n for _, n in stored)

    def _put_if_absent(self, key: str, data: bytes, headers: Mapping[str, str]) -> tuple[int, bool]:
        """Write `key` unless it exists; the stored object's size and whether this wrote it."""
        for _ in range(_PUT_ATTEMPTS):
            if self.derivatives.put(
                key,
                data,
                content_type=headers["Content-Type"],
                cache_control=headers["Cache-Control"],
                if_absent=True,
            ):
                return len(data), True
            existing = self.derivatives.head(key)
            if existing is not None:
                return existing.size, False
            # Deleted between the refused put and the head: a removal is running; try again.
        msg = f"{key} keeps vanishing while it is written (a concurrent removal); retry"
        raise ConcurrentRemoval(msg)

    def _still_wanted(self, image: ImageRef, manifest: Manifest, bound: _Log) -> bool:
        """After the manifest: roll back if a concurrent removal touched this version."""
        version = manifest.version
        expected = {r.key for r in manifest.variants} | {image.manifest_key(version)}
        prefix = image.version_prefix(version)
        present = {i.key for i in self.derivatives.list(prefix) if "/" not in i.key[len(prefix) :]}
        if missing := sorted(expected - present):
            self._delete_version(image, version, present, manifest_first=True)
            bound.warning("rolled_back", reason="concurrent removal", missing=missing[:5])
            msg = (
                f"{len(missing)} object(s) of {image.version_prefix(version)} vanished while it "
                "was written (the original was removed meanwhile); rolled back, retry"
            )
            raise ConcurrentRemoval(msg)
        if not self._source_exists(manifest.source_key, manifest.source_version_id):
            self._delete_version(image, version, present, manifest_first=True)
            bound.info("rolled_back", reason="original removed while rendering")
            return False
        return True

    def _tag_superseded(self, job: _Job) -> None:
        """Tag every object of the image's other versions `imgcdn-superseded=true`, for the
        derivatives bucket's lifecycle rule to expire, when `job.version` is the original's
        current version. A late or out-of-order event for an older version tags nothing: the
        current object is read, not the event trusted (R18)."""
        if not self._is_current(job):
            job.log.info("superseded_not_tagged", reason="not the original's current version")
            return
        versions = self.stored_versions(job.image)
        older = {v: keys for v, keys in versions.items() if v != job.version}
        keys = sorted(k for group in older.values() for k in group)

        def tag(key: str) -> None:
            self.derivatives.set_tags(key, SUPERSEDED_TAGS)

        def untag(key: str) -> None:
            tags = self.derivatives.get_tags(key)
            if SUPERSEDED_TAG in tags:
                self.derivatives.set_tags(
                    key, {k: v for k, v in tags.items() if k != SUPERSEDED_TAG}
                )

        with ThreadPoolExecutor(max(1, self.upload_workers), "imgcdn-tag") as pool:
            # A version made current again (A, B, then A re-uploaded) was tagged when B landed:
            # its own objects lose the tag first, or the lifecycle rule would expire the live set.
            # The manifest is tagged whenever its version is, so one read tells.
            if SUPERSEDED_TAG in self.derivatives.get_tags(job.image.manifest_key(job.version)):
                for _ in pool.map(untag, versions.get(job.version, [])):
                    pass
                job.log.info("superseded_untagged", version=job.version)
            for _ in pool.map(tag, keys):  # re-raises the first failure: the event is retried
                pass
        if keys:
            job.log.info("superseded_tagged", versions=sorted(older), objects=len(keys))

    def _is_current(self, job: _Job) -> bool:
        """Whether the original's current object holds exactly `job.version`'s bytes."""
        info = self.originals.head(job.key)
        if info is None:
            return False
        if info.version_id is not None and info.version_id == job.source_version_id:
            return True
        if info.size != job.source_bytes:
            return False
        # Same size, no version id to compare (or an identical re-upload): compare the bytes.
        current = self._current(job.key)
        return current is not None and current.version == job.version

    def _record_failure(
        self, job: _Job, error: ImgcoreError, source: SourceInfo | None = None
    ) -> Outcome:
        image, version = job.image, job.version
        width, height = source.display_size if source else (None, None)
        manifest = Manifest(
            tenant=image.tenant,
            image_id=image.image_id,
            content_class=image.content_class,
            version=version,
            status="failed",
            failure=str(error),
            source_key=job.key,
            source_version_id=job.source_version_id,
            source_bytes=job.source_bytes,
            source_format=source.format if source else None,
            source_width=width,
            source_height=height,
            created_at=self._clock(),
        )
        body = manifest.to_json()
        job.deadline()
        written = self.derivatives.put(
            image.manifest_key(version),
            body,
            content_type=MANIFEST_CONTENT_TYPE,
            cache_control=error_cache_control(error.http_status, self.policy),
            if_absent=not job.replace_manifest,
        )
        job.log.warning(
            "original_failed", reason=str(error), error=type(error).__name__, recorded=written
        )
        if written and not self._source_exists(job.key, job.source_version_id):
            self._delete_version(image, version, [image.manifest_key(version)], manifest_first=True)
            return job.outcome(Action.GONE, reason="the original was removed while reading")
        return job.outcome(
            Action.FAILED,
            manifest=manifest,
            bytes_written=len(body) if written else 0,
            reason=str(error),
        )

    def _oversize(
        self,
        image: ImageRef,
        key: str,
        version_id: str | None,
        error: InputTooLarge,
        deadline: Deadline,
    ) -> Outcome:
        try:
            version, info = self._hash_original(key, version_id)
        except NotFound:
            return Outcome(Action.GONE, key, image, reason="the original no longer exists")
        except InputTooLarge as exc:
            log.warning("original_rejected", key=key, tenant=image.tenant, reason=str(exc))
            return Outcome(Action.REJECTED, key, image, reason=str(exc))
        if info.size <= self.policy.limits.max_input_bytes:
            msg = f"original {key!r} changed while it was read; retry"
            raise StorageFault(msg)
        job = _Job(
            image,
            key,
            version,
            info.version_id or version_id,
            info.size,
            log.bind(key=key, tenant=image.tenant, version=version),
            deadline,
        )
        existing = self._existing(job)
        return existing if isinstance(existing, Outcome) else self._record_failure(existing, error)

    # --- removing ---------------------------------------------------------------------------

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
            return _rejected(key, exc)
        bound = log.bind(key=key, tenant=image.tenant, source_version_id=version_id)
        if version_id is not None and not delete_marker:
            removed, repointed = self._remove_source_version(image, key, version_id)
            reason = f"re-pointed {', '.join(repointed)}" if repointed else None
        else:
            current = self._current(key)
            keep = current.version if current else None
            removed = self._remove_all_but(image, keep)
            reason = f"kept {keep} (the current object)" if keep else None
        bound.info("removed", versions=removed, detail=reason)
        return Outcome(Action.REMOVED, key, image, removed=tuple(removed), reason=reason)

    def _remove_source_version(
        self, image: ImageRef, key: str, version_id: str
    ) -> tuple[list[str], list[str]]:
        removed: list[str] = []
        repointed: list[str] = []
        current: _Current | bool | None = False  # False: not read yet
        for version, keys in sorted(self.stored_versions(image).items()):
            try:
                manifest = self.manifest(image, version)
            except InvalidManifest as exc:
                log.error("manifest_invalid", key=key, reason=str(exc))
                continue
            if manifest is None or manifest.source_version_id != version_id:
                continue
            if current is False:
                current = self._current(key)
            if isinstance(current, _Current) and current.version == version:
                self.derivatives.put(
                    image.manifest_key(version),
                    manifest.model_copy(update={"source_version_id": current.version_id}).to_json(),
                    content_type=MANIFEST_CONTENT_TYPE,
                    cache_control=cache_control(image.content_class, self.policy)
                    if manifest.status == "complete"
                    else error_cache_control(422, self.policy),
                )
                repointed.append(version)
                continue
            self._delete_version(image, version, keys, manifest_first=False)
            removed.append(version)
        return removed, repointed

    def _remove_all_but(self, image: ImageRef, keep: str | None) -> list[str]:
        removed: set[str] = set()
        for _ in range(_REMOVAL_ROUNDS):
            doomed = {v: k for v, k in self.stored_versions(image).items() if v != keep}
            if not doomed:
                return sorted(removed)
            for version, keys in doomed.items():
                self._delete_version(image, version, keys, manifest_first=False)
            removed.update(doomed)
        msg = f"versions under {image.prefix} keep reappearing while being removed; retry"
        raise StorageFault(msg)

    def _sweep_orphans(self, image: ImageRef, bound: _Log) -> None:
        """Delete the versions that have derivatives but no manifest, once the original is gone.

        An attempt stopped before its manifest (a deadline, a crash) leaves derivatives that the
        S3 primary serves by key; when the original was removed meanwhile, the removal's sweep
        may have run before they landed, and no manifest ever names them. The retry that finds
        the original gone is the last event that can remove them (R10).
        """
        if self.originals.head(image.source_key) is not None:
            return  # a newer upload exists: its worker may be writing a version right now
        for version, keys in self.stored_versions(image).items():
            if image.manifest_key(version) not in keys:
                self._delete_version(image, version, keys, manifest_first=False)
                bound.info("orphans_removed", version=version, objects=len(keys))

    def _delete_version(
        self, image: ImageRef, version: str, keys: Iterable[str], *, manifest_first: bool
    ) -> None:
        manifest_key = image.manifest_key(version)
        others = sorted(k for k in keys if k != manifest_key)
        if manifest_first:
            self.derivatives.delete(manifest_key)
        with ThreadPoolExecutor(max(1, self.upload_workers), "imgcdn-delete") as pool:
            for _ in pool.map(self.derivatives.delete, others):
                pass
        if not manifest_first:
            self.derivatives.delete(manifest_key)


def _rejected(key: str, error: InvalidKey) -> Outcome:
    log.warning("original_rejected", key=key, reason=str(error))
    return Outcome(Action.REJECTED, key, reason=str(error))


def _in_context(fn: Callable[[_A], _R]) -> Callable[[_A], _R]:
    """Run `fn` in a pool thread with the caller's context (structlog's bound request id)."""
    context = contextvars.copy_context()

    def run(arg: _A) -> _R:
        return context.copy().run(fn, arg)

    return run


def _placeholder_source(rendered: Sequence[Rendered], original: bytes, policy: Policy) -> bytes:
    """The smallest derivative that the policy admits as input (one cheap decode), else the
    original."""
    admitted = {f.value for f in policy.input_formats}
    candidates = [
        r
        for r in rendered
        if r.params.fmt.value in admitted and r.params.fmt in _PLACEHOLDER_SOURCE_ORDER
    ] or [r for r in rendered if r.params.fmt.value in admitted]
    if not candidates:
        return original

    def cost(r: Rendered) -> tuple[int, int]:
        order = (
            _PLACEHOLDER_SOURCE_ORDER.index(r.params.fmt)
            if r.params.fmt in _PLACEHOLDER_SOURCE_ORDER
            else len(_PLACEHOLDER_SOURCE_ORDER)
        )
        return r.width * r.height, order

    return min(candidates, key=cost).data
