"""The stack without HTTP: the origin group fails over like CloudFront's, uploads survive."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imgcdn_local.queue import PrecomputeQueue
from imgcdn_local.stack import RENDER_SLOTS, Stack, UploadFailed
from imgcore import DEFAULT_POLICY, ImageRef
from imgcore.storage import LocalStore, MemoryStore, ObjectStore, StorageFault, StoredObject

TARGET = "/img/acme/x.jpg/0123456789abcdef"
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 fake"


class FaultyStore(MemoryStore):
    """A derivatives store whose reads fail the way S3 does under throttling or an outage."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def get(
        self, key: str, *, max_bytes: int | None = None, version_id: str | None = None
    ) -> StoredObject:
        raise self.error


class Fallback:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[str] = []

    def __call__(self, event: dict[str, Any]) -> Mapping[str, Any]:
        self.calls.append(event["rawPath"])
        if self.error is not None:
            raise self.error
        return {
            "statusCode": 200,
            "headers": {
                "Content-Type": "image/webp",
                "Cache-Control": "public, max-age=31536000, immutable",
            },
            "body": base64.b64encode(WEBP).decode(),
            "isBase64Encoded": True,
        }


@dataclass
class _Result:
    failed: list[str]


class _Processor:
    """Reports every message failed (as for a store that never recovers), or none."""

    def __init__(self, *, fail: bool) -> None:
        self.fail = fail
        self.keys: list[tuple[str, str | None]] = []

    def process(self, invocation: Any) -> _Result:
        message = invocation.messages[0]
        event = message.events[0]
        self.keys.append((event.key, event.version_id))
        return _Result([message.message_id] if self.fail else [])


def _stack(
    tmp_path: Path,
    derivatives: MemoryStore,
    fallback: Fallback,
    processor: _Processor | None = None,
    originals: ObjectStore | None = None,
) -> Stack:
    queue = PrecomputeQueue(
        processor or _Processor(fail=False),  # type: ignore[arg-type]
        tmp_path / "dead-letter",
        max_receives=1,
        backoff_s=0.01,
    )
    stack = Stack(
        originals=originals or MemoryStore(versioned=True),
        derivatives=derivatives,
        fallback=fallback,
        queue=queue,
        originals_bucket="originals",
        policy=DEFAULT_POLICY,
        pending_dir=tmp_path / "pending",
    )
    queue.set_on_done(stack.message_done)
    return stack


@pytest.mark.parametrize(
    "error", [StorageFault("S3 derivatives/x: SlowDown"), OSError("disk gone"), PermissionError()]
)
def test_a_storage_fault_fails_over_to_the_fallback(tmp_path: Path, error: Exception) -> None:
    fallback = Fallback()
    stack = _stack(tmp_path, FaultyStore(error), fallback)
    result = asyncio.run(stack.fetch(TARGET, "w=320&fmt=webp", None))
    assert (result.status, result.cache, result.body) == (200, "Miss", WEBP)
    assert result.headers["content-type"] == "image/webp"
    assert len(fallback.calls) == 1
    assert stack.counters.primary_faults == 1
    again = asyncio.run(stack.fetch(TARGET, "fmt=webp&w=320", None))
    assert (again.status, again.cache) == (200, "Hit")


def test_when_the_fallback_fails_too_the_viewer_gets_a_503(tmp_path: Path) -> None:
    fallback = Fallback(RuntimeError("Lambda throttled"))
    stack = _stack(tmp_path, FaultyStore(StorageFault("S3 down")), fallback)
    result = asyncio.run(stack.fetch(TARGET, "w=320&fmt=webp", None))
    assert (result.status, result.cache) == (503, "Miss")
    assert result.headers["cache-control"] == "no-store"  # R13
    assert result.headers["content-type"] == "text/plain; charset=utf-8"
    assert result.body.endswith(b"\n")
    assert result.body.count(b"\n") == 1
    assert b"fallback" in result.body
    assert stack.counters.primary_faults == 1


def test_a_missing_derivative_whose_fallback_fails_is_a_503_too(tmp_path: Path) -> None:
    stack = _stack(tmp_path, MemoryStore(), Fallback(ConnectionError("no route")))
    result = asyncio.run(stack.fetch(TARGET, "w=320&fmt=webp", None))
    assert (result.status, result.headers["cache-control"]) == (503, "no-store")
    assert stack.counters.primary_faults == 0


def test_a_dead_lettered_upload_is_reported_at_once_and_not_requeued(tmp_path: Path) -> None:
    originals = MemoryStore(versioned=True)
    failing = _Processor(fail=True)
    stack = _stack(tmp_path, MemoryStore(), Fallback(), failing, originals)
    stack.queue.start()
    image = ImageRef("acme", "x.jpg")
    try:
        result = stack.upload(b"original bytes", image)
        with pytest.raises(UploadFailed, match="gave up") as caught:
            stack.wait_until_rendered(
                image,
                result["version"],
                timeout=20,
                version_id=result["version_id"],
                etag=result["etag"],
            )
    finally:
        stack.queue.stop()
    assert "reported failed by the precompute worker" in str(caught.value)
    assert failing.keys == [("img/acme/x.jpg", result["version_id"])]
    assert list((tmp_path / "pending").glob("*.json")) == []  # the marker went with the message

    # A restart re-queues what has neither a manifest nor a dead-letter record, nothing else.
    originals.put("img/acme/new.jpg", b"other bytes")
    recording = _Processor(fail=False)
    again = _stack(tmp_path, MemoryStore(), Fallback(), recording, originals)
    again.queue.start()
    try:
        assert again.resume() == {"pending": 0, "unrendered": 1}
        assert again.queue.join(timeout=10)
    finally:
        again.queue.stop()
    [(key, version_id)] = recording.keys
    assert key == "img/acme/new.jpg"
    assert version_id is not None


def test_the_pending_marker_exists_before_the_original(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    class Watching(MemoryStore):
        def put(self, key: str, data: bytes, **kwargs: Any) -> bool:
            seen.append([p.read_text() for p in (tmp_path / "pending").glob("*.json")])
            return super().put(key, data, **kwargs)

    stack = _stack(tmp_path, MemoryStore(), Fallback(), originals=Watching(versioned=True))
    result = stack.upload(b"bytes", ImageRef("acme", "x.jpg"))
    [[before]] = seen
    assert json.loads(before)["Records"][0]["s3"]["object"]["key"] == "img/acme/x.jpg"
    [marker] = (tmp_path / "pending").glob("*.json")
    after = json.loads(marker.read_text())["Records"][0]["s3"]["object"]
    assert after["versionId"] == result["version_id"]  # rewritten to name the stored version


class _CountingFallback(Fallback):
    """A fallback that records how many calls overlap (each one a render in the real stack)."""

    def __init__(self) -> None:
        super().__init__()
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()
        self.release = threading.Event()

    def __call__(self, event: dict[str, Any]) -> Mapping[str, Any]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.release.wait(timeout=10)
            return super().__call__(event)
        finally:
            with self.lock:
                self.running -= 1


def test_concurrent_misses_render_at_most_render_slots_at_once(tmp_path: Path) -> None:
    fallback = _CountingFallback()
    stack = _stack(tmp_path, MemoryStore(), fallback)

    async def six_first_requests() -> list[int]:
        requests = [
            stack.fetch(f"/img/acme/x{i}.jpg/0123456789abcdef", "w=320&fmt=webp", None)
            for i in range(6)
        ]
        tasks = [asyncio.ensure_future(r) for r in requests]
        # Every miss reaches the origin group (counted before a slot is taken) before any
        # render may finish: without the slots all six would be rendering now.
        while stack.counters.fallback_invocations < 6:
            await asyncio.sleep(0.01)
        inside = len(fallback.calls)
        fallback.release.set()
        assert inside <= RENDER_SLOTS
        return [result.status for result in await asyncio.gather(*tasks)]

    assert asyncio.run(six_first_requests()) == [200] * 6
    assert len(fallback.calls) == 6
    assert fallback.most == RENDER_SLOTS


class _RefusingStore(MemoryStore):
    """Originals whose put fails before writing anything (a full disk, a refused key)."""

    def put(self, key: str, data: bytes, **kwargs: Any) -> bool:
        raise StorageFault(f"cannot store {key!r}")


def test_a_failed_upload_leaves_no_pending_marker(tmp_path: Path) -> None:
    stack = _stack(tmp_path, MemoryStore(), Fallback(), _Processor(fail=False), _RefusingStore())
    with pytest.raises(StorageFault, match="cannot store"):
        stack.upload(b"original bytes", ImageRef("acme", "x.jpg"))
    assert list((tmp_path / "pending").glob("*.json")) == []


def test_keys_that_are_each_others_folders_are_both_uploaded(tmp_path: Path) -> None:
    originals = LocalStore(tmp_path / "originals", versioned=True)
    stack = _stack(tmp_path, MemoryStore(), Fallback(), _Processor(fail=False), originals)
    for image_id in ("a", "a/b", "c/d", "c"):
        stack.upload(image_id.encode(), ImageRef("acme", image_id))
    assert [i.key for i in originals.list()] == [
        "img/acme/a",
        "img/acme/a/b",
        "img/acme/c",
        "img/acme/c/d",
    ]
