"""The local stack's pipeline, without HTTP: viewer request -> cache -> origin group -> fallback.

`Stack.fetch` does what the distribution does for one request: the viewer-request rewrite
(`imgcore.rewrite`, the Python twin of the generated Function, held to the same golden
vectors), a cache keyed on the rewritten URI with each behaviour's TTLs, then the origin group:
the derivatives store first, and on a miss the real fallback handler fed a Function-URL-shaped
event. The fallback is asked whenever the primary fails, not only on a missing key, as the
origin group fails over on 403, 404 and 5xx (R14). Concurrent misses for one key share one
origin fetch, as Origin Shield collapses them. Uploads go to the originals store and, as
S3-shaped events, through a queue to the real precompute worker; a pending marker written
before the original makes each accepted upload survive a crash, and on start every original
version with neither a manifest nor a dead-letter record is queued again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from imgcdn_local.cache import (
    CachedResponse,
    EdgeCache,
    behaviour_for,
    stale_if_error_for,
    ttl_for,
)
from imgcdn_local.invalidations import LocalInvalidations
from imgcdn_local.queue import PrecomputeQueue, s3_notification
from imgcdn_local.signed import KeyGroups
from imgcdn_precompute.events import EventError, parse_notification
from imgcore import (
    ImageRef,
    ImgcoreError,
    InvalidRequest,
    Policy,
    SignatureRejected,
    build_url,
    content_version,
    rewrite,
)
from imgcore.manifest import Manifest
from imgcore.responses import error_cache_control
from imgcore.storage import NotFound, ObjectStore, write_atomic

__all__ = [
    "CONTENT_VERSION_METADATA",
    "RENDER_SLOTS",
    "STALE_WARNING",
    "Fallback",
    "FetchResult",
    "SingleFlight",
    "Stack",
    "UploadFailed",
    "function_error",
    "function_url_event",
]

STALE_WARNING = '111 - "Revalidation Failed"'
"""The `Warning` (RFC 7234 5.5.2) on a stale copy served because the origin failed."""
CONTENT_VERSION_METADATA = "imgcdn-content-version"
"""User metadata on each original: its content version, so a HEAD tells whose bytes it sees."""
RENDER_SLOTS = 2
"""Fallback renders that may run at once in the local stack; the rest wait their turn.

Each Lambda invocation renders one original, and its memory is sized for one render
(`imgcore.Limits.max_render_bytes`, 1 GiB); the local stack is one process, where every miss
used to render at once (six concurrent first requests raised its RSS by 1.7-2.3 GB). With two
slots the fallback adds at most 2 x 1 GiB, and the precompute queue's workers (one by default,
`--render-workers`) one render each, to the process's baseline."""


def function_error(exc: InvalidRequest, policy: Policy) -> tuple[dict[str, str], bytes]:
    """The headers and body of the generated Function's 400 for `exc`, header for header.

    The parity tests hold the Function to this too, so the twin and the JS cannot drift.
    """
    headers = {
        "cache-control": error_cache_control(400, policy),
        "content-type": "text/plain; charset=utf-8",
        "x-imgcdn-error-field": exc.field or "path",
    }
    return headers, f"{exc}\n".encode()


log = structlog.get_logger("imgcdn.local")

Fallback = Callable[[dict[str, Any]], Mapping[str, Any]]
"""A Lambda handler for Function URL (payload 2.0) events, bound to its context."""


def function_url_event(method: str, uri: str, headers: Mapping[str, str]) -> dict[str, Any]:
    """The event CloudFront's origin request becomes at a Lambda Function URL (payload 2.0)."""
    now = time.time()
    request_id = str(uuid.uuid4())
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": uri,
        "rawQueryString": "",
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": "local.lambda-url.us-east-1.on.aws",
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": uri,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "Amazon CloudFront",
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What the stack answers a viewer with."""

    status: int
    headers: dict[str, str]
    body: bytes
    cache: str
    """`Hit`, `Miss`, `Stale` (an expired copy, served because the origin failed: see
    `STALE_WARNING`), or `FunctionGeneratedResponse` (the Function answered before the cache)."""


class SingleFlight:
    """Runs one coroutine per key at a time; concurrent callers for that key share its result."""

    def __init__(self) -> None:
        """Start with nothing in flight."""
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self.joined = 0
        """Callers that found their key in flight and waited for its result."""

    async def run(self, key: str, work: Callable[[], Awaitable[Any]]) -> Any:
        """Await `work()` once for `key`, however many callers ask at the same time."""
        found = self._inflight.get(key)
        if found is not None:
            self.joined += 1
            return await asyncio.shield(found)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # Mark the exception retrieved: with no other waiter it is still raised to the caller.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._inflight[key] = future
        try:
            result = await work()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]


@dataclass
class Counters:
    """What the stack did, for tests, the health page and load reports."""

    hits: int = 0
    misses: int = 0
    origin_fetches: int = 0
    primary_faults: int = 0
    """Origin fetches whose derivatives-store read failed for another reason than a missing key."""
    fallback_invocations: int = 0
    stale_served: int = 0
    """Viewer requests answered with an expired copy because the origin group failed."""
    uploads: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    fallback_ms: float = 0.0
    """Total time of the fallback invocations (on-demand renders), milliseconds."""


class Stack:
    """The distribution, the origin group and the upload pipeline, on one machine."""

    def __init__(
        self,
        *,
        originals: ObjectStore,
        derivatives: ObjectStore,
        fallback: Fallback,
        queue: PrecomputeQueue,
        originals_bucket: str,
        policy: Policy,
        pending_dir: Path,
        cache: EdgeCache | None = None,
        base_url: str = "",
        description: Mapping[str, Any] | None = None,
        key_groups: KeyGroups | None = None,
        render_slots: int = RENDER_SLOTS,
        audit: ObjectStore | None = None,
    ) -> None:
        """Wire the stack to its stores, the fallback handler and the precompute queue.

        `description` is what `GET /_admin/stack` tells a client such as `imgcdn takedown`:
        where the stores are, the audit store, the render window. `render_slots`: fallback
        renders at once (see `RENDER_SLOTS`). `audit` is that audit store, for the console's
        takedown button.
        """
        self.originals = originals
        self.derivatives = derivatives
        self.audit = audit
        self.fallback = fallback
        self.queue = queue
        self.originals_bucket = originals_bucket
        self.policy = policy
        # Not `cache or ...`: an empty EdgeCache is falsy (it has a length).
        self.cache = cache if cache is not None else EdgeCache()
        self.invalidations = LocalInvalidations(self.cache)
        self.description = dict(description or {})
        self.base_url = base_url
        self.key_groups = key_groups or KeyGroups()
        self.counters = Counters()
        self._flight = SingleFlight()
        self._pending = pending_dir
        self._pending.mkdir(parents=True, exist_ok=True)
        self._key_locks: dict[str, threading.Lock] = {}
        self._key_locks_guard = threading.Lock()
        self._render_slots = threading.BoundedSemaphore(max(1, render_slots))

    # -- delivery -----------------------------------------------------------------------------

    async def fetch(
        self,
        path: str,
        query: str,
        accept: str | None,
        origin: str | None = None,
        viewer_ip: str | None = None,
    ) -> FetchResult:
        """Answer one viewer request for an image.

        Args:
            path: The raw path, as sent.
            query: The raw query string, as sent.
            accept: The `Accept` header.
            origin: The scheme and host the viewer asked (a signed URL covers them); default:
                the stack's base URL.
            viewer_ip: The viewer's address (a signed policy may limit it).
        """
        started = time.perf_counter()
        url = f"{self.base_url if origin is None else origin}{path}{'?' + query if query else ''}"
        try:
            # A trusted key group is checked before the Function and the cache (R17).
            self.key_groups.check(url, path, viewer_ip=viewer_ip)
        except SignatureRejected as exc:
            return self._count(self._signature_error(exc))
        try:
            derivative = rewrite(path, query, accept, self.policy)
        except InvalidRequest as exc:
            return self._count(self._function_error(exc))
        uri = derivative.uri
        cached = self.cache.get(uri)
        if cached is not None:
            self.counters.hits += 1
            edge_ms = (time.perf_counter() - started) * 1000
            headers = {**cached.headers, "server-timing": f"edge;dur={edge_ms:.2f}"}
            return self._count(FetchResult(cached.status, headers, cached.body, "Hit"))
        self.counters.misses += 1
        response, outcome = await self._flight.run(
            # Always a GET to the origin: a HEAD's empty answer must never be cached for GETs.
            uri,
            lambda: asyncio.to_thread(self._origin, uri, derivative.key),
        )
        total_ms = (time.perf_counter() - started) * 1000
        timing = ", ".join(
            filter(None, [response.headers.get("server-timing"), f"edge;dur={total_ms:.2f}"])
        )
        headers = {**response.headers, "server-timing": timing}
        return self._count(FetchResult(response.status, headers, response.body, outcome))

    def _count(self, result: FetchResult) -> FetchResult:
        self.counters.by_status[result.status] = self.counters.by_status.get(result.status, 0) + 1
        return result

    @staticmethod
    def _signature_error(exc: SignatureRejected) -> FetchResult:
        # CloudFront's answer to a bad signature is its own 403, never cached.
        headers = {"content-type": "text/plain; charset=utf-8", "cache-control": "no-store"}
        body = f"403: {exc}; allowed: a URL signed by one of this tenant's keys\n".encode()
        return FetchResult(403, headers, body, "Error")

    def _function_error(self, exc: InvalidRequest) -> FetchResult:
        headers, body = function_error(exc, self.policy)
        return FetchResult(400, headers, body, "FunctionGeneratedResponse")

    def _origin(self, uri: str, key: str) -> tuple[CachedResponse, str]:
        """The origin group: the derivatives store, then the fallback (runs in a thread).

        Returns the answer and `Miss`, or, when the origin group fails with a 5xx and the cache
        still holds an expired copy inside its stale-if-error window, that copy and `Stale`.
        """
        self.counters.origin_fetches += 1
        started = time.perf_counter()
        try:
            stored = self.derivatives.get(key)
        except NotFound:
            response = self._failover(uri, None)
        except Exception as exc:  # noqa: BLE001 - the origin group fails over on any 5xx, whatever its cause
            self.counters.primary_faults += 1
            log.warning("primary_origin_failed", key=key, error=f"{type(exc).__name__}: {exc}")
            response = self._failover(uri, exc)
        else:
            headers = {
                "content-type": stored.info.content_type or "application/octet-stream",
                "server-timing": f"origin;dur={(time.perf_counter() - started) * 1000:.2f}",
            }
            if stored.info.cache_control:
                headers["cache-control"] = stored.info.cache_control
            response = CachedResponse(200, headers, stored.data)
        behaviour = behaviour_for(uri, self.policy)
        cache_control = response.headers.get("cache-control")
        if response.status >= 500:
            stale = self.cache.get_stale(uri)
            if stale is not None:
                self.counters.stale_served += 1
                log.warning("served_stale", uri=uri, origin_status=response.status)
                return CachedResponse(
                    stale.status, {**stale.headers, "warning": STALE_WARNING}, stale.body
                ), "Stale"
        ttl = ttl_for(cache_control, behaviour, response.status)
        stale_window = stale_if_error_for(cache_control, behaviour, response.status)
        self.cache.put(uri, response, ttl, stale_window)
        return response, "Miss"

    def _failover(self, uri: str, primary_error: Exception | None) -> CachedResponse:
        """The origin group's secondary; when it fails too, the viewer gets a 503 (R13)."""
        try:
            return self._call_fallback(uri)
        except Exception as exc:  # noqa: BLE001 - an origin that cannot answer is a 503, never a dropped connection
            primary = f"{type(primary_error).__name__}: {primary_error}" if primary_error else "404"
            log.error(
                "origin_group_failed",
                uri=uri,
                primary=primary,
                fallback=f"{type(exc).__name__}: {exc}",
            )
            body = (
                "503: the origin is unavailable: the derivatives store "
                + ("failed" if primary_error else "has no such derivative")
                + " and the fallback transformer failed; retry later\n"
            )
            headers = {
                "content-type": "text/plain; charset=utf-8",
                "cache-control": error_cache_control(503, self.policy),
            }
            return CachedResponse(503, headers, body.encode())

    def _call_fallback(self, uri: str) -> CachedResponse:
        self.counters.fallback_invocations += 1
        # Each call may take a render's worth of memory: bound how many run at once.
        with self._render_slots:
            started = time.perf_counter()
            try:
                answer = self.fallback(function_url_event("GET", uri, {"accept": "*/*"}))
            finally:
                self.counters.fallback_ms += (time.perf_counter() - started) * 1000
        raw = answer.get("body") or ""
        body = base64.b64decode(raw) if answer.get("isBase64Encoded") else str(raw).encode()
        headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
        return CachedResponse(int(answer.get("statusCode", 200)), headers, body)

    # -- uploads ------------------------------------------------------------------------------

    def upload(self, data: bytes, image: ImageRef) -> dict[str, Any]:
        """Store an original and queue its S3-shaped event; returns its version and URLs."""
        key = image.source_key
        version = content_version(data)
        extra: dict[str, Any] = {"size": len(data), "eTag": hashlib.md5(data).hexdigest()}  # noqa: S324 - S3's ETag, not security
        marker = self._marker(key, extra["eTag"])
        # The marker is the queue's durable half, written before the original: a crash after the
        # put can never leave an original that nothing will render. Until the put is done it
        # names no S3 version, so a replay reads whatever the key holds then.
        write_atomic(marker, s3_notification(self.originals_bucket, key, **extra).encode())
        try:
            with self._key_lock(key):
                self.originals.put(key, data, metadata={CONTENT_VERSION_METADATA: version})
                version_id = self._version_id_of(key, version)
        except BaseException:
            self._drop_marker_unless_stored(marker, key, version)
            raise
        if version_id is not None:
            extra["versionId"] = version_id
        body = s3_notification(self.originals_bucket, key, **extra)
        write_atomic(marker, body.encode())
        self.queue.send(body)
        self.counters.uploads += 1
        where = {
            "base_url": self.base_url,
            "content_class": image.content_class,
            "policy": self.policy,
        }
        ident = (image.tenant, image.image_id, version)
        return {
            "tenant": image.tenant,
            "image_id": image.image_id,
            "class": image.content_class.value,
            "version": version,
            "version_id": version_id,
            "etag": extra["eTag"],
            "bytes": len(data),
            "url": build_url(*ident, **where),  # type: ignore[arg-type]
            "example": build_url(*ident, w=640, fmt="webp", **where),  # type: ignore[arg-type]
            "page": f"{self.base_url}/_image{image.public_path(version)}",
        }

    def _key_lock(self, key: str) -> threading.Lock:
        with self._key_locks_guard:
            return self._key_locks.setdefault(key, threading.Lock())

    def _version_id_of(self, key: str, version: str) -> str | None:
        """The S3 version id of the object at `key` whose bytes have content version `version`.

        The put does not return it, so the HEAD after it is checked against the content version
        stamped on the object: uploads through this stack hold the key's lock across both, but
        another writer of the same bucket may still slip between them. Then our version is
        looked for among the key's versions; None when the store keeps no versions.
        """
        info = self.originals.head(key)
        if info is None or info.version_id is None:
            return None
        if info.metadata.get(CONTENT_VERSION_METADATA) == version:
            return info.version_id
        list_versions = getattr(self.originals, "versions", None)
        for candidate in reversed(list_versions(key) if list_versions else []):
            try:
                stored = self.originals.get(
                    key,
                    version_id=candidate.version_id,
                    max_bytes=self.policy.limits.max_input_bytes,
                )
            except NotFound:
                continue
            if content_version(stored.data) == version:
                found: str | None = candidate.version_id
                return found
        log.warning("upload_version_not_found", key=key, version=version)
        return None

    def _drop_marker_unless_stored(self, marker: Path, key: str, version: str) -> None:
        """After a failed put: the marker goes unless these bytes are stored all the same.

        A put is atomic, so the key holds these bytes (a failure after the write: keep the
        marker, the next start renders them) or not (nothing to render: a marker left behind
        would only be replayed against whatever the key holds then). When the store cannot
        even say which, the marker stays: a replay renders nothing twice (R18).
        """
        try:
            info = self.originals.head(key)
        except Exception:  # noqa: BLE001 - unknown: keeping the marker is the safe answer
            return
        if info is None or info.metadata.get(CONTENT_VERSION_METADATA) != version:
            marker.unlink(missing_ok=True)

    def _marker(self, key: str, etag: str) -> Path:
        # Named by key and bytes, so the marker written before the put is the one replaced after.
        name = hashlib.sha256(f"{key}\0{etag}".encode()).hexdigest()[:32]
        return self._pending / f"{name}.json"

    def message_done(self, body: str) -> None:
        """The queue's callback: a message is processed or dead-lettered."""
        try:
            obj = json.loads(body)["Records"][0]["s3"]["object"]
            [event] = parse_notification(body)[0]
        except (EventError, ValueError, KeyError, IndexError, TypeError):
            return
        if not obj.get("eTag"):
            return  # queued by `resume` for an original without a marker
        marker = self._marker(event.key, str(obj["eTag"]))
        # A re-upload of the same bytes may have rewritten the marker since: keep its message.
        with contextlib.suppress(FileNotFoundError):
            if marker.read_text() == body:
                marker.unlink()

    def resume(self) -> dict[str, int]:
        """Queue again what a previous run accepted but did not finish; returns the counts.

        First every pending marker (an upload whose message was not done), then every original
        version that has no manifest, no dead-letter record and no pending marker: an original
        written by a run that crashed before its marker existed, or put into the store directly.
        """
        markers = sorted(self._pending.glob("*.json"))
        handled: set[tuple[str, str | None]] = set()
        for marker in markers:
            body = marker.read_text()
            handled |= _identities(body)
            self.queue.send(body)
        handled |= {ident for path in self.queue.dead_letters for ident in _dead_letter_ids(path)}
        by_version_id: set[tuple[str, str | None]] = set()
        by_content: set[tuple[str, str]] = set()
        for manifest in self.manifests():
            by_version_id.add((manifest.source_key, manifest.source_version_id))
            by_content.add((manifest.source_key, manifest.version))
        queued = 0
        list_versions = getattr(self.originals, "versions", None)
        for info in self.originals.list():
            version_ids = [v.version_id for v in list_versions(info.key)] if list_versions else []
            if not version_ids and info.version_id is None:  # unversioned: hash what is there
                try:
                    data = self.originals.get(info.key).data
                except NotFound:
                    continue
                if (info.key, content_version(data)) in by_content or (info.key, None) in handled:
                    continue
                self.queue.send(s3_notification(self.originals_bucket, info.key))
                queued += 1
                continue
            for version_id in version_ids or [info.version_id]:
                ident = (info.key, version_id)
                if ident in by_version_id or ident in handled:
                    continue
                self.queue.send(
                    s3_notification(self.originals_bucket, info.key, versionId=version_id)
                )
                queued += 1
        if markers or queued:
            log.info("uploads_resumed", pending=len(markers), unrendered=queued)
        return {"pending": len(markers), "unrendered": queued}

    def dead_letter_for(self, image: ImageRef, version_id: str | None, etag: str) -> str | None:
        """The reason the upload of these bytes was dead-lettered, or None."""
        for path in self.queue.dead_letters:
            try:
                record = json.loads(path.read_text())
                [event] = parse_notification(record["body"])[0]
                obj = json.loads(record["body"])["Records"][0]["s3"]["object"]
            except (OSError, ValueError, KeyError, IndexError, TypeError, EventError):
                continue
            same = event.version_id == version_id if version_id else obj.get("eTag") == etag
            if event.key == image.source_key and same:
                return str(record.get("reason") or "no reason recorded")
        return None

    def wait_until_rendered(
        self,
        image: ImageRef,
        version: str,
        timeout: float = 120.0,
        *,
        version_id: str | None = None,
        etag: str | None = None,
    ) -> Manifest:
        """Block until the manifest of `version` exists.

        Raises:
            UploadFailed: The upload's message was dead-lettered (given `etag`).
            TimeoutError: No manifest within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            manifest = self.manifest(image, version)
            if manifest is not None:
                return manifest
            if etag is not None:
                reason = self.dead_letter_for(image, version_id, etag)
                if reason is not None:
                    msg = (
                        f"{image.source_key} version {version} was not rendered: the precompute "
                        f"worker gave up ({reason}); the original is stored, upload it again "
                        "once the cause is fixed"
                    )
                    raise UploadFailed(msg)
            time.sleep(0.1)
        msg = f"no manifest for {image.source_key} version {version} after {timeout:.0f} s"
        raise TimeoutError(msg)

    # -- catalogue ------------------------------------------------------------------------------

    def manifest(self, image: ImageRef, version: str) -> Manifest | None:
        """The manifest of one version, or None."""
        try:
            stored = self.derivatives.get(image.manifest_key(version))
        except NotFound:
            return None
        return Manifest.model_validate_json(stored.data)

    def manifests(self) -> Iterator[Manifest]:
        """Every manifest in the derivatives store."""
        for info in self.derivatives.list():
            if info.key.endswith("/manifest.json"):
                try:
                    yield Manifest.model_validate_json(self.derivatives.get(info.key).data)
                except (NotFound, ValueError):
                    continue

    def latest(self) -> list[Manifest]:
        """The newest manifest of each image, newest images first."""
        newest: dict[tuple[str, str, str], Manifest] = {}
        for manifest in self.manifests():
            ident = (manifest.content_class.value, manifest.tenant, manifest.image_id)
            if ident not in newest or manifest.created_at > newest[ident].created_at:
                newest[ident] = manifest
        return sorted(newest.values(), key=lambda m: m.created_at, reverse=True)

    def health(self) -> dict[str, Any]:
        """What the health endpoint reports."""
        c = self.counters
        return {
            "status": "ok",
            "hits": c.hits,
            "misses": c.misses,
            "coalesced": self._flight.joined,
            "origin_fetches": c.origin_fetches,
            "primary_faults": c.primary_faults,
            "fallback_invocations": c.fallback_invocations,
            "uploads": c.uploads,
            "cached_objects": len(self.cache),
            "pending_uploads": len(list(self._pending.glob("*.json"))),
            "dead_letters": len(self.queue.dead_letters),
            "queue_depth": self.queue.depth,
            "precompute_renders": self.queue.processed,
            "precompute_ms": round(self.queue.process_ms, 1),
            "fallback_ms": round(c.fallback_ms, 1),
            "by_status": {str(k): v for k, v in sorted(c.by_status.items())},
        }


class UploadFailed(ImgcoreError):
    """An upload was stored but its message was dead-lettered: it will not be rendered."""

    http_status = 422
    permanent = True


def _identities(body: str) -> set[tuple[str, str | None]]:
    """(key, S3 version id) of each object event in a notification body."""
    try:
        events, _ = parse_notification(body)
    except EventError:
        return set()
    return {(e.key, e.version_id) for e in events}


def _dead_letter_ids(path: Path) -> set[tuple[str, str | None]]:
    try:
        return _identities(str(json.loads(path.read_text())["body"]))
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def dump(value: Any) -> bytes:
    """JSON for the admin endpoints."""
    return json.dumps(value, indent=1, default=str).encode()
