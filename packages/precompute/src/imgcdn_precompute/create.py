"""Creating: one original in, its standard variants and a manifest out.

For an original at `{class}/{tenant}/{id}`:

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
6. When the version is the original's current object, its older versions are superseded
   (`imgcdn_precompute.supersede`).

Failures: an original that cannot be admitted or decoded (`InputRejected`, including one over
`max_input_bytes`) is permanent: a manifest with status `failed` and the reason is written
under its version (an oversize original is hashed as a stream, never held in memory, up to
`max_hash_bytes`; beyond that the outcome is `rejected`). Storage faults, encoder faults and
everything unexpected propagate: the caller retries them.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

from imgcdn_precompute.outcome import (
    Action,
    BoundLog,
    ConcurrentRemoval,
    InvalidManifest,
    Job,
    Outcome,
    WriteGuard,
    log,
    no_write_guard,
    rejected,
)
from imgcdn_precompute.remove import Remover
from imgcdn_precompute.renderer import placeholder_source
from imgcdn_precompute.supersede import Superseder
from imgcdn_precompute.versions import MANIFEST_CONTENT_TYPE, VersionIndex
from imgcore.errors import ImgcoreError, InputRejected, InputTooLarge, InvalidKey
from imgcore.keys import DerivativeKey, ImageRef, content_version, parse_source_key
from imgcore.manifest import Manifest, Placeholder, VariantRecord
from imgcore.params import TransformParams
from imgcore.responses import cache_control, derivative_headers, error_cache_control
from imgcore.storage import NotFound, StorageFault

if TYPE_CHECKING:
    from imgcore.pixels import Rendered, SourceInfo

__all__ = ["Creator"]

_PUT_ATTEMPTS = 3

_A = TypeVar("_A")
_R = TypeVar("_R")


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


class Creator:
    """Renders and records the standard set of new originals (see the module docstring)."""

    def __init__(self, index: VersionIndex, superseder: Superseder, remover: Remover) -> None:
        """Work through `index` and its ports; supersede and sweep with the other two."""
        self.index = index
        self.ports = index.ports
        self.superseder = superseder
        self.remover = remover

    @cached_property
    def standard(self) -> list[TransformParams]:
        """The params of the policy's standard variant set."""
        from imgcore.pixels import standard_params  # noqa: PLC0415 - loads libvips

        return standard_params(self.ports.policy)

    def render(self, data: bytes) -> tuple[SourceInfo, list[Rendered], Placeholder]:
        """Admit an original, render its standard set from one decode, make its placeholder.

        Raises:
            InputRejected: The original cannot be admitted or decoded (permanent).
            ImgcoreError: An encoder failed (not the original's fault).
        """
        renderer, policy = self.ports.renderer, self.ports.policy
        source = renderer.probe(data, policy)
        rendered = renderer.render(data, self.standard, policy)
        placeholder = renderer.placeholder(placeholder_source(rendered, data, policy), policy)
        return source, rendered, placeholder

    def created(
        self, key: str, *, version_id: str | None = None, deadline: WriteGuard | None = None
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
            return rejected(key, exc)
        bound = log.bind(key=key, tenant=image.tenant)
        try:
            data, info = self.index.read_original(key, version_id)
        except NotFound:
            bound.info("original_gone", source_version_id=version_id)
            self.remover.sweep_orphans(image, bound)
            return Outcome(Action.GONE, key, image, reason="the original no longer exists")
        except InputTooLarge as exc:
            return self._oversize(image, key, version_id, exc, deadline or no_write_guard)
        version = content_version(data)
        source_version_id = info.version_id or version_id
        job = Job(
            image,
            key,
            version,
            source_version_id,
            len(data),
            bound.bind(version=version, source_version_id=source_version_id),
            deadline or no_write_guard,
        )
        existing = self._existing(job)
        return existing if isinstance(existing, Outcome) else self._render(existing, data)

    def _existing(self, job: Job) -> Outcome | Job:
        """An outcome when this version was already handled (its manifest exists), else the job
        to do (told to overwrite what is stored under the manifest key when it is invalid)."""
        try:
            existing = self.index.manifest(job.image, job.version)
        except InvalidManifest as exc:
            # Skipping would block this version forever: nothing else ever rewrites it.
            job.log.warning("manifest_invalid_rewriting", reason=str(exc))
            return replace(job, replace_manifest=True)
        if existing is None:
            return job
        job.log.info("manifest_exists", status=existing.status)
        if existing.status == "complete":
            self.superseder.tag(job)  # a retry after tagging failed lands here
        return job.outcome(
            Action.SKIPPED,
            manifest=existing,
            reason=f"version {job.version} already has a {existing.status} manifest",
        )

    def _render(self, job: Job, data: bytes) -> Outcome:
        started = time.perf_counter()
        try:
            source, rendered, placeholder = self.render(data)
        except InputRejected as exc:
            try:  # what the header says, when it can be read, goes into the failed manifest
                header: SourceInfo | None = self.ports.renderer.probe(data, self.ports.policy)
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
            created_at=self.ports.clock(),
        )
        body = manifest.to_json()
        job.deadline()
        if not self.ports.derivatives.put(
            image.manifest_key(version),
            body,
            content_type=MANIFEST_CONTENT_TYPE,
            cache_control=cache_control(image.content_class, self.ports.policy),
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
        self.superseder.tag(job)
        return job.outcome(
            Action.RENDERED, manifest=manifest, bytes_written=written, render_ms=render_ms
        )

    def _lost_race(self, job: Job, ours: Manifest, written: int, render_ms: float) -> Outcome:
        """Another worker's manifest got there first. The derivatives this worker wrote may
        still have landed after a removal of the original (which deletes derivatives first,
        the manifest last), so the same rollback check runs on the manifest that won; when it
        has vanished too, on ours, whose manifest key is then missing: rolled back, retried."""
        try:
            winner = self.index.manifest(job.image, job.version)
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
            self.superseder.tag(job)
        return job.outcome(
            Action.SKIPPED,
            manifest=winner,
            bytes_written=written,
            render_ms=render_ms,
            reason="another worker wrote this version's manifest first",
        )

    def _store_derivatives(
        self, job: Job, rendered: Sequence[Rendered]
    ) -> tuple[tuple[VariantRecord, ...], int]:
        """Write every derivative that is not there yet; its records and the bytes written.

        A derivative already stored (a racing worker, an earlier attempt, the fallback) is kept,
        never overwritten: a CDN may already hold its bytes, and the manifest must describe
        what is stored, so its record takes the stored object's size.
        """

        image, version, bound, policy = job.image, job.version, job.log, self.ports.policy

        def put(result: Rendered) -> tuple[VariantRecord, int]:
            job.deadline()
            key = DerivativeKey(image, version, result.params).key
            headers = derivative_headers(result.params.fmt, image.content_class, policy)
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

        with ThreadPoolExecutor(max(1, self.ports.upload_workers), "imgcdn-put") as pool:
            # Every put must finish before the manifest: map re-raises the first failure.
            stored = list(pool.map(_in_context(put), rendered))
        return tuple(r for r, _ in stored), sum(n for _, n in stored)

    def _put_if_absent(self, key: str, data: bytes, headers: Mapping[str, str]) -> tuple[int, bool]:
        """Write `key` unless it exists; the stored object's size and whether this wrote it."""
        derivatives = self.ports.derivatives
        for _ in range(_PUT_ATTEMPTS):
            if derivatives.put(
                key,
                data,
                content_type=headers["Content-Type"],
                cache_control=headers["Cache-Control"],
                if_absent=True,
            ):
                return len(data), True
            existing = derivatives.head(key)
            if existing is not None:
                return existing.size, False
            # Deleted between the refused put and the head: a removal is running; try again.
        msg = f"{key} keeps vanishing while it is written (a concurrent removal); retry"
        raise ConcurrentRemoval(msg)

    def _still_wanted(self, image: ImageRef, manifest: Manifest, bound: BoundLog) -> bool:
        """After the manifest: roll back if a concurrent removal touched this version."""
        version = manifest.version
        expected = {r.key for r in manifest.variants} | {image.manifest_key(version)}
        prefix = image.version_prefix(version)
        present = {
            i.key for i in self.ports.derivatives.list(prefix) if "/" not in i.key[len(prefix) :]
        }
        if missing := sorted(expected - present):
            self.index.delete_version(image, version, present, manifest_first=True)
            bound.warning("rolled_back", reason="concurrent removal", missing=missing[:5])
            msg = (
                f"{len(missing)} object(s) of {image.version_prefix(version)} vanished while it "
                "was written (the original was removed meanwhile); rolled back, retry"
            )
            raise ConcurrentRemoval(msg)
        if not self.index.source_exists(manifest.source_key, manifest.source_version_id):
            self.index.delete_version(image, version, present, manifest_first=True)
            bound.info("rolled_back", reason="original removed while rendering")
            return False
        return True

    def _record_failure(
        self, job: Job, error: ImgcoreError, source: SourceInfo | None = None
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
            created_at=self.ports.clock(),
        )
        body = manifest.to_json()
        job.deadline()
        written = self.ports.derivatives.put(
            image.manifest_key(version),
            body,
            content_type=MANIFEST_CONTENT_TYPE,
            cache_control=error_cache_control(error.http_status, self.ports.policy),
            if_absent=not job.replace_manifest,
        )
        job.log.warning(
            "original_failed", reason=str(error), error=type(error).__name__, recorded=written
        )
        if written and not self.index.source_exists(job.key, job.source_version_id):
            self.index.delete_version(
                image, version, [image.manifest_key(version)], manifest_first=True
            )
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
        deadline: WriteGuard,
    ) -> Outcome:
        try:
            version, info = self.index.hash_original(key, version_id)
        except NotFound:
            return Outcome(Action.GONE, key, image, reason="the original no longer exists")
        except InputTooLarge as exc:
            log.warning("original_rejected", key=key, tenant=image.tenant, reason=str(exc))
            return Outcome(Action.REJECTED, key, image, reason=str(exc))
        if info.size <= self.ports.policy.limits.max_input_bytes:
            msg = f"original {key!r} changed while it was read; retry"
            raise StorageFault(msg)
        job = Job(
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


def _in_context(fn: Callable[[_A], _R]) -> Callable[[_A], _R]:
    """Run `fn` in a pool thread with the caller's context (structlog's bound request id)."""
    context = contextvars.copy_context()

    def run(arg: _A) -> _R:
        return context.copy().run(fn, arg)

    return run
