"""Fault injection: every store call that can fail, fails; exactly the failed messages are
reported, and no manifest is ever visible without all of its derivatives."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

from imgcdn_aws.emf import Metrics
from imgcdn_aws.s3 import S3Store
from imgcdn_precompute.batch import BatchProcessor
from imgcdn_precompute.events import parse_invocation
from imgcdn_precompute.service import SUPERSEDED_TAG, PrecomputeService
from imgcore.keys import MANIFEST_NAME, content_version, parse_source_key
from imgcore.manifest import Manifest
from imgcore.policy import Policy
from imgcore.storage import MemoryStore, ObjectInfo, StorageFault, StoredObject

ORIGINALS = "imgcdn-originals"


class FaultyStore:
    """Wraps a store; `fail(n)` makes its n-th call (counting from 1) raise `error`."""

    def __init__(self, inner: Any, name: str, calls: list[str]) -> None:
        self.inner = inner
        self.name = name
        self.calls = calls  # shared by the stores of one test: one global call order
        self.fail_at: int | None = None
        self.error: Callable[[], BaseException] = lambda: StorageFault("injected fault")
        self.delay = 0.0
        self.on_call: Callable[[], None] | None = None  # e.g. spend a simulated clock
        self._lock = threading.Lock()

    def _call(self, op: str, key: str) -> None:
        with self._lock:
            self.calls.append(f"{self.name}.{op} {key}")
            index = len(self.calls)
            if self.on_call is not None:
                self.on_call()
        if index == self.fail_at:
            if self.delay:
                time.sleep(self.delay)  # a slow call that then times out
            raise self.error()

    def get(self, key: str, **kwargs: Any) -> StoredObject:
        self._call("get", key)
        return self.inner.get(key, **kwargs)

    def head(self, key: str) -> ObjectInfo | None:
        self._call("head", key)
        return self.inner.head(key)

    def put(self, key: str, data: bytes, **kwargs: Any) -> bool:
        self._call("put", key)
        return self.inner.put(key, data, **kwargs)

    def delete(self, key: str, **kwargs: Any) -> None:
        self._call("delete", key)
        self.inner.delete(key, **kwargs)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._call("list", prefix)
        return self.inner.list(prefix)

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        self._call("set_tags", key)
        self.inner.set_tags(key, tags)

    def get_tags(self, key: str) -> dict[str, str]:
        self._call("get_tags", key)
        return dict(self.inner.get_tags(key))


class Watched(MemoryStore):
    """A derivatives store that checks, after every write and delete, that each stored
    complete manifest has all of its derivatives."""

    def __init__(self) -> None:
        super().__init__()
        self.violations: list[str] = []
        self.checking = True

    def _check(self) -> None:
        if not self.checking:
            return
        keys = {i.key for i in super().list()}
        for key in keys:
            if key.endswith("/" + MANIFEST_NAME):
                manifest = Manifest.model_validate_json(super().get(key).data)
                missing = [v.key for v in manifest.variants if v.key not in keys]
                if manifest.status == "complete" and missing:
                    self.violations.append(f"{key} visible without {missing}")

    def put(self, key: str, data: bytes, **kwargs: Any) -> bool:
        written = super().put(key, data, **kwargs)
        self._check()
        return written

    def delete(self, key: str, *, version_id: str | None = None) -> None:
        super().delete(key, version_id=version_id)
        self._check()


class Rig:
    """Two faulty stores, a service and a batch processor, and the events to feed it."""

    def __init__(self, policy: Policy, events: Any, stream: Any) -> None:
        self.calls: list[str] = []
        self.originals = FaultyStore(MemoryStore(), "originals", self.calls)
        self.watched = Watched()
        self.derivatives = FaultyStore(self.watched, "derivatives", self.calls)
        self.service = PrecomputeService(self.originals, self.derivatives, policy=policy)  # type: ignore[arg-type]
        self.processor = BatchProcessor(
            self.service, originals_bucket=ORIGINALS, metrics=Metrics(stream)
        )
        self.events = events

    def inject(self, store: FaultyStore, at: int, error: Callable[[], BaseException]) -> None:
        store.fail_at, store.error = at, error

    def clear(self) -> None:
        for store in (self.originals, self.derivatives):
            store.fail_at = None
        self.calls.clear()

    def batch(self, keys: list[str]) -> dict[str, Any]:
        bodies = [self.events.notification(self.events.s3_record(k)) for k in keys]
        return self.events.sqs(*bodies, ids=[f"m-{i}" for i in range(len(keys))])

    def run(self, keys: list[str]) -> list[str]:
        return self.processor.process(parse_invocation(self.batch(keys))).failed

    def manifests(self) -> Mapping[str, Manifest]:
        return {
            i.key: Manifest.model_validate_json(self.watched.get(i.key).data)
            for i in self.watched.list()
            if i.key.endswith(MANIFEST_NAME)
        }


TINY_POLICY = Policy.model_validate(
    {"standard": {"widths": [160, 320], "formats": ["webp", "jpeg"]}}
)
"""Four variants of two formats: the fault sweep renders dozens of times."""


@pytest.fixture
def rig(events: Any) -> Rig:
    return Rig(TINY_POLICY, events, io.StringIO())


@pytest.fixture
def photo(photo_factory: Any) -> bytes:
    return photo_factory(7, (640, 480))


def _create_calls(rig: Rig, photo: bytes) -> list[str]:
    """The store calls one clean create makes, in order."""
    rig.originals.inner.put("img/acme/probe.jpg", photo)
    rig.run(["img/acme/probe.jpg"])
    calls = list(rig.calls)
    rig.clear()
    return calls


ERRORS: dict[str, Callable[[], BaseException]] = {
    "storage-fault": lambda: StorageFault("S3 imgcdn/x: SlowDown"),
    "read-timeout": lambda: StorageFault("S3 imgcdn/x: ReadTimeoutError"),
    "builtin-timeout": lambda: TimeoutError("timed out"),
    "unexpected-bug": lambda: RuntimeError("a bug nobody foresaw"),
}


@pytest.mark.parametrize("error", list(ERRORS), ids=list(ERRORS))
def test_every_store_call_of_a_create_can_fail_and_the_retry_completes(
    rig: Rig, photo: bytes, error: str
) -> None:
    calls = _create_calls(rig, photo)
    # get, manifest check, 4 variants, manifest, list, head, then the superseded check:
    # head and get of the original (is it still the current one?), list of the image's prefix,
    # and the tags of this version's manifest (was it superseded once, and is current again?).
    assert len(calls) == 13, calls
    key = "img/acme/summer sale/red shoe+1.jpg"
    rig.originals.inner.put(key, photo)
    image = parse_source_key(key)
    manifest_key = image.manifest_key(content_version(photo))
    for index in range(1, len(calls) + 1):
        # A fresh derivatives store for each fault, so every run starts from nothing.
        for k in [i.key for i in rig.watched.list() if i.key.startswith(image.prefix)]:
            rig.watched.delete(k)
        rig.clear()
        store = rig.originals if calls[index - 1].startswith("originals") else rig.derivatives
        rig.inject(store, index, ERRORS[error])

        failed = rig.run([key])

        assert failed == ["m-0"], f"fault at {calls[index - 1]} was not reported"
        assert rig.watched.violations == []
        rig.clear()
        assert rig.run([key]) == []  # SQS's retry
        assert manifest_key in rig.manifests()
        assert rig.manifests()[manifest_key].status == "complete"
        assert rig.watched.violations == []


def test_exactly_the_failed_messages_are_reported(rig: Rig, photo_factory: Any) -> None:
    keys = [f"img/acme/photo-{i}.jpg" for i in range(4)]
    for seed, key in enumerate(keys):
        rig.originals.inner.put(key, photo_factory(seed, (640, 480)))
    # Message 1: the 3rd derivative put of its render fails. Message 3: the original times out.
    failing_put = {"count": 0}
    original_put = rig.derivatives.put

    def put(key: str, data: bytes, **kwargs: Any) -> bool:
        if key.startswith("img/acme/photo-1.jpg/") and not key.endswith(MANIFEST_NAME):
            failing_put["count"] += 1
            if failing_put["count"] == 3:
                raise StorageFault("S3 imgcdn-derivatives: InternalError")
        return original_put(key, data, **kwargs)

    original_get = rig.originals.get

    def get(key: str, **kwargs: Any) -> StoredObject:
        if key == "img/acme/photo-3.jpg":
            time.sleep(0.05)
            raise StorageFault("S3 imgcdn-originals: ReadTimeoutError")
        return original_get(key, **kwargs)

    rig.derivatives.put = put  # type: ignore[method-assign]
    rig.originals.get = get  # type: ignore[method-assign]

    assert rig.run(keys) == ["m-1", "m-3"]

    done = {m.source_key for m in rig.manifests().values()}
    assert done == {"img/acme/photo-0.jpg", "img/acme/photo-2.jpg"}
    assert rig.watched.violations == []
    # The derivatives photo-1 did write are not under a manifest: not half-visible as "done".
    del rig.derivatives.put, rig.originals.get
    assert rig.run(keys) == []
    assert {m.source_key for m in rig.manifests().values()} == set(keys)
    assert rig.watched.violations == []


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_a_failed_removal_is_retried_until_everything_is_gone(
    events: Any, photo: bytes, versioned: bool
) -> None:
    rig = Rig(TINY_POLICY, events, io.StringIO())
    rig.originals.inner = MemoryStore(versioned=versioned)
    key = "img/acme/x.jpg"

    def upload_and_delete() -> dict[str, Any]:
        rig.originals.inner.put(key, photo)
        version_id = rig.originals.inner.head(key).version_id
        assert rig.run([key]) == []
        rig.originals.inner.delete(key, version_id=version_id)
        rig.clear()
        record = rig.events.s3_record(key, "ObjectRemoved:Delete", version_id=version_id)
        return rig.events.sqs(rig.events.notification(record), ids=["rm"])

    removal = upload_and_delete()
    rig.processor.process(parse_invocation(removal))
    calls = list(rig.calls)
    deletes = [c for c in calls if ".delete " in c]
    assert len(deletes) == 5
    # Every call of the removal fails once, in turn: the reads (the original's current object,
    # the manifests, the listings) as well as the deletes.
    reads = {"derivatives.list"} | ({"derivatives.get"} if versioned else {"originals.get"})
    assert {c.split()[0] for c in calls} >= reads | {"derivatives.delete"}, calls
    for at, call in enumerate(calls, 1):
        rig.clear()
        removal = upload_and_delete()
        store = rig.originals if call.startswith("originals") else rig.derivatives
        rig.inject(store, at, ERRORS["storage-fault"])
        assert rig.processor.process(parse_invocation(removal)).failed == ["rm"], call
        rig.clear()
        assert rig.processor.process(parse_invocation(removal)).failed == []
        assert list(rig.watched.list()) == []


class _TimingOutClient:
    """A boto3 client whose every call times out, as botocore reports it."""

    def __getattr__(self, name: str) -> Any:
        def call(**kwargs: Any) -> Any:
            if name == "get_object":
                raise ReadTimeoutError(endpoint_url="https://s3.amazonaws.com/x")
            raise ConnectTimeoutError(endpoint_url="https://s3.amazonaws.com/x")

        return call


def test_s3_timeouts_are_transient_storage_faults(events: Any, policy: Policy) -> None:
    store = S3Store(ORIGINALS, client=_TimingOutClient())
    with pytest.raises(StorageFault, match="ReadTimeoutError"):
        store.get("img/acme/x.jpg")
    with pytest.raises(StorageFault, match="ConnectTimeoutError"):
        store.put("img/acme/x.jpg", b"x")
    with pytest.raises(StorageFault):
        store.stream("img/acme/x.jpg")
    service = PrecomputeService(store, MemoryStore(), policy=policy)
    processor = BatchProcessor(service, originals_bucket=ORIGINALS, metrics=Metrics(io.StringIO()))
    batch = events.sqs(events.notification(events.s3_record("img/acme/x.jpg")), ids=["t"])
    assert processor.process(parse_invocation(batch)).failed == ["t"]


class SimulatedClock:
    """The invocation's remaining time, spent by the slow store, not by the test's wall clock."""

    def __init__(self, budget_ms: int) -> None:
        self.left_ms = budget_ms

    def remaining_ms(self) -> int:
        return self.left_ms


def test_a_slow_store_fails_the_message_that_cannot_finish_not_the_batch(
    rig: Rig, photo_factory: Any
) -> None:
    """Every store call takes 1 s: the second message starts, then stops before a write that
    could outlive the invocation, and is reported failed with nothing half-visible."""
    keys = ["img/acme/first.jpg", "img/acme/second.jpg"]
    for seed, key in enumerate(keys):
        rig.originals.inner.put(key, photo_factory(seed, (640, 480)))
    clock = SimulatedClock(budget_ms=20_000)

    def spend() -> None:
        clock.left_ms -= 1_000

    for store in (rig.originals, rig.derivatives):
        store.on_call = spend
    service = PrecomputeService(
        rig.originals, rig.derivatives, policy=TINY_POLICY, upload_workers=1
    )  # type: ignore[arg-type]
    processor = BatchProcessor(
        service,
        originals_bucket=ORIGINALS,
        metrics=Metrics(io.StringIO()),
        deadline_guard_ms=3_000,
        write_guard_ms=5_000,
    )

    result = processor.process(parse_invocation(rig.batch(keys)), clock.remaining_ms)

    assert result.failed == ["m-1"]
    assert "stopped before writing" in (result.results[1].failure or "")
    assert {m.source_key for m in rig.manifests().values()} == {keys[0]}
    assert rig.watched.violations == []
    written = [i.key for i in rig.watched.list() if i.key.startswith(keys[1] + "/")]
    assert 0 < len(written) < 4  # it did start writing, and stopped in time
    # SQS's redelivery, in a fresh invocation, keeps what was written and completes.
    for store in (rig.originals, rig.derivatives):
        store.on_call = None
    assert processor.process(parse_invocation(rig.batch(keys[1:])), lambda: 300_000).failed == []
    assert {m.source_key for m in rig.manifests().values()} == set(keys)


def test_a_slow_call_that_times_out_is_reported(rig: Rig, photo: bytes) -> None:
    key = "img/acme/slow.jpg"
    rig.originals.inner.put(key, photo)
    rig.derivatives.delay = 0.2
    rig.inject(rig.derivatives, 3, ERRORS["read-timeout"])  # the first derivative put
    started = time.perf_counter()
    assert rig.run([key]) == ["m-0"]
    assert time.perf_counter() - started >= 0.2
    assert rig.manifests() == {}
    rig.clear()
    assert rig.run([key]) == []


def test_a_tagging_fault_is_transient_and_the_retry_tags(rig: Rig, photo_factory: Any) -> None:
    key = "img/acme/retagged.jpg"
    rig.originals.inner.put(key, photo_factory(1, (640, 480)))
    assert rig.run([key]) == []
    rig.originals.inner.put(key, photo_factory(2, (640, 480)))
    assert rig.run([key]) == []
    rig.clear()
    assert rig.run([key]) == []  # a duplicate delivery: its calls are what the retries make
    tag_calls = [i for i, c in enumerate(rig.calls, 1) if ".set_tags " in c]
    assert len(tag_calls) == 5  # four variants and the manifest of the older version
    old = parse_source_key(key).version_prefix(content_version(photo_factory(1, (640, 480))))
    for at in tag_calls:
        for k in [i.key for i in rig.watched.list(old)]:
            rig.watched.set_tags(k, {})
        rig.clear()
        rig.inject(rig.derivatives, at, ERRORS["storage-fault"])
        assert rig.run([key]) == ["m-0"]
        rig.clear()
        assert rig.run([key]) == []  # the retry is a duplicate: it only tags
        assert all(
            rig.watched.get_tags(i.key) == {SUPERSEDED_TAG: "true"} for i in rig.watched.list(old)
        )
