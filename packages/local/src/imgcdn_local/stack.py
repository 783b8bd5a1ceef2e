"""The local stack's pipeline, without HTTP: viewer request -> cache -> origin group -> fallback.

`Stack.fetch` does what the distribution does for one request: the viewer-request rewrite
(`imgcore.rewrite`, the Python twin of the generated Function, held to the same golden
vectors), a cache keyed on the rewritten URI with each behaviour's TTLs, then the origin group:
the derivatives store first, and on a miss the real fallback handler fed a Function-URL-shaped
event. Concurrent misses for one key share one origin fetch, as Origin Shield collapses them.
Uploads go to the originals store and, as S3-shaped events, through a queue to the real
precompute worker.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from imgcdn_local.cache import CachedResponse, EdgeCache, behaviour_for, ttl_for
from imgcdn_local.queue import PrecomputeQueue, s3_notification
from imgcore import (
    ImageRef,
    InvalidRequest,
    Policy,
    build_url,
    content_version,
    rewrite,
)
from imgcore.manifest import Manifest
from imgcore.responses import error_cache_control
from imgcore.storage import NotFound, ObjectStore

__all__ = ["Fallback", "FetchResult", "SingleFlight", "Stack", "function_url_event"]

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
    """`Hit`, `Miss`, or `FunctionGeneratedResponse` (the Function answered before the cache)."""


class SingleFlight:
    """Runs one coroutine per key at a time; concurrent callers for that key share its result."""

    def __init__(self) -> None:
        """Start with nothing in flight."""
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[Any]]) -> Any:
        """Await `work()` once for `key`, however many callers ask at the same time."""
        found = self._inflight.get(key)
        if found is not None:
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
    fallback_invocations: int = 0
    uploads: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


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
    ) -> None:
        """Wire the stack to its stores, the fallback handler and the precompute queue."""
        self.originals = originals
        self.derivatives = derivatives
        self.fallback = fallback
        self.queue = queue
        self.originals_bucket = originals_bucket
        self.policy = policy
        self.cache = cache or EdgeCache()
        self.base_url = base_url
        self.counters = Counters()
        self._flight = SingleFlight()
        self._pending = pending_dir
        self._pending.mkdir(parents=True, exist_ok=True)

    # -- delivery -----------------------------------------------------------------------------

    async def fetch(self, path: str, query: str, accept: str | None) -> FetchResult:
        """Answer one viewer request for an image."""
        started = time.perf_counter()
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
        response: CachedResponse = await self._flight.run(
            # Always a GET to the origin: a HEAD's empty answer must never be cached for GETs.
            uri,
            lambda: asyncio.to_thread(self._origin, uri, derivative.key),
        )
        total_ms = (time.perf_counter() - started) * 1000
        timing = ", ".join(
            filter(None, [response.headers.get("server-timing"), f"edge;dur={total_ms:.2f}"])
        )
        headers = {**response.headers, "server-timing": timing}
        return self._count(FetchResult(response.status, headers, response.body, "Miss"))

    def _count(self, result: FetchResult) -> FetchResult:
        self.counters.by_status[result.status] = self.counters.by_status.get(result.status, 0) + 1
        return result

    def _function_error(self, exc: InvalidRequest) -> FetchResult:
        headers = {
            "content-type": "text/plain; charset=utf-8",
            "cache-control": error_cache_control(400, self.policy),
        }
        return FetchResult(400, headers, f"{exc}\n".encode(), "FunctionGeneratedResponse")

    def _origin(self, uri: str, key: str) -> CachedResponse:
        """The origin group: the derivatives store, then the fallback (runs in a thread)."""
        self.counters.origin_fetches += 1
        started = time.perf_counter()
        try:
            stored = self.derivatives.get(key)
        except NotFound:
            response = self._call_fallback(uri)
        else:
            headers = {
                "content-type": stored.info.content_type or "application/octet-stream",
                "server-timing": f"origin;dur={(time.perf_counter() - started) * 1000:.2f}",
            }
            if stored.info.cache_control:
                headers["cache-control"] = stored.info.cache_control
            response = CachedResponse(200, headers, stored.data)
        behaviour = behaviour_for(uri, self.policy)
        self.cache.put(uri, response, ttl_for(response.headers.get("cache-control"), behaviour))
        return response

    def _call_fallback(self, uri: str) -> CachedResponse:
        self.counters.fallback_invocations += 1
        answer = self.fallback(function_url_event("GET", uri, {"accept": "*/*"}))
        raw = answer.get("body") or ""
        body = base64.b64decode(raw) if answer.get("isBase64Encoded") else str(raw).encode()
        headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
        return CachedResponse(int(answer.get("statusCode", 200)), headers, body)

    # -- uploads ------------------------------------------------------------------------------

    def upload(self, data: bytes, image: ImageRef) -> dict[str, Any]:
        """Store an original and queue its S3-shaped event; returns its version and URLs."""
        key = image.source_key
        self.originals.put(key, data)
        info = self.originals.head(key)
        version = content_version(data)
        extra: dict[str, Any] = {"size": len(data), "eTag": hashlib.md5(data).hexdigest()}  # noqa: S324 - S3's ETag, not security
        if info is not None and info.version_id:
            extra["versionId"] = info.version_id
        body = s3_notification(self.originals_bucket, key, **extra)
        # The marker is the queue's durable half: it is removed once the message is done.
        self._marker(body).write_text(body)
        self.queue.send(body)
        self.counters.uploads += 1
        where = {"base_url": self.base_url, "content_class": image.content_class}
        ident = (image.tenant, image.image_id, version)
        return {
            "tenant": image.tenant,
            "image_id": image.image_id,
            "class": image.content_class.value,
            "version": version,
            "bytes": len(data),
            "url": build_url(*ident, **where),  # type: ignore[arg-type]
            "example": build_url(*ident, w=640, fmt="webp", **where),  # type: ignore[arg-type]
            "page": f"{self.base_url}/_image{image.public_path(version)}",
        }

    def _marker(self, body: str) -> Path:
        return self._pending / f"{hashlib.sha256(body.encode()).hexdigest()[:32]}.json"

    def message_done(self, body: str) -> None:
        """The queue's callback: a message is processed or dead-lettered."""
        self._marker(body).unlink(missing_ok=True)

    def resume_pending(self) -> int:
        """Re-enqueue the uploads a previous run accepted but did not finish."""
        markers = sorted(self._pending.glob("*.json"))
        for marker in markers:
            self.queue.send(marker.read_text())
        return len(markers)

    def wait_until_rendered(
        self, image: ImageRef, version: str, timeout: float = 120.0
    ) -> Manifest:
        """Block until the manifest of `version` exists; raises TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            manifest = self.manifest(image, version)
            if manifest is not None:
                return manifest
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
            "origin_fetches": c.origin_fetches,
            "fallback_invocations": c.fallback_invocations,
            "uploads": c.uploads,
            "cached_objects": len(self.cache),
            "pending_uploads": len(list(self._pending.glob("*.json"))),
            "dead_letters": len(self.queue.dead_letters),
            "by_status": {str(k): v for k, v in sorted(c.by_status.items())},
        }


def dump(value: Any) -> bytes:
    """JSON for the admin endpoints."""
    return json.dumps(value, indent=1, default=str).encode()
