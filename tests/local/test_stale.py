"""Serve stale on origin faults: an expired copy answers while the origin group fails (R9)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imgcdn_local.cache import EdgeCache
from imgcdn_local.queue import PrecomputeQueue
from imgcdn_local.stack import STALE_WARNING, FetchResult, Stack
from imgcore import DEFAULT_POLICY, Policy
from imgcore.policy import CacheTtls
from imgcore.responses import cache_control, error_cache_control
from imgcore.storage import MemoryStore, StorageFault, StoredObject

STANDARD = "/img/acme/x.jpg/0123456789abcdef"
TAKEDOWN = "/ugc/acme/x.jpg/0123456789abcdef"
QUERY = "w=320&fmt=webp"
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 fake"
YEAR = DEFAULT_POLICY.ttl.immutable


class SwitchableStore(MemoryStore):
    """A derivatives store (always missing the key) whose reads can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.error: Exception | None = None

    def get(
        self, key: str, *, max_bytes: int | None = None, version_id: str | None = None
    ) -> StoredObject:
        if self.error is not None:
            raise self.error
        return super().get(key, max_bytes=max_bytes, version_id=version_id)


class Fallback:
    """Renders with imgcore's headers for the URI's class; can fail, or answer 404."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.error: Exception | None = None
        self.gone = False

    def __call__(self, event: dict[str, Any]) -> Mapping[str, Any]:
        if self.error is not None:
            raise self.error
        if self.gone:  # the original was taken down
            return {
                "statusCode": 404,
                "headers": {"Cache-Control": error_cache_control(404, self.policy)},
                "body": "404: no such image\n",
            }
        content_class = event["rawPath"].split("/")[1]
        return {
            "statusCode": 200,
            "headers": {
                "Content-Type": "image/webp",
                "Cache-Control": cache_control(content_class, self.policy),
            },
            "body": base64.b64encode(WEBP).decode(),
            "isBase64Encoded": True,
        }


class Rig:
    """A stack on a clock the test moves, with an origin group it can break."""

    def __init__(self, tmp_path: Path, policy: Policy = DEFAULT_POLICY) -> None:
        self.now = 0.0
        self.store = SwitchableStore()
        self.fallback = Fallback(policy)
        queue = PrecomputeQueue(
            None,  # type: ignore[arg-type] - nothing is uploaded here
            tmp_path / "dead-letter",
            max_receives=1,
            backoff_s=0.01,
        )
        self.stack = Stack(
            originals=MemoryStore(versioned=True),
            derivatives=self.store,
            fallback=self.fallback,
            queue=queue,
            originals_bucket="originals",
            policy=policy,
            pending_dir=tmp_path / "pending",
            cache=EdgeCache(clock=lambda: self.now),
        )

    def fetch(self, path: str) -> FetchResult:
        return asyncio.run(self.stack.fetch(path, QUERY, None))

    def break_origin(self) -> None:
        self.store.error = StorageFault("S3 derivatives: 503 SlowDown")
        self.fallback.error = RuntimeError("Lambda: Rate exceeded")


def test_an_expired_standard_image_is_served_stale_while_the_origin_fails(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    first = rig.fetch(STANDARD)
    assert (first.status, first.cache) == (200, "Miss")
    assert "stale-if-error=604800" in first.headers["cache-control"]
    rig.break_origin()
    rig.now = YEAR + 1  # expired: the cache must ask the origin, which fails
    stale = rig.fetch(STANDARD)
    assert (stale.status, stale.cache, stale.body) == (200, "Stale", WEBP)
    assert stale.headers["warning"] == STALE_WARNING
    assert stale.headers["content-type"] == "image/webp"
    assert rig.stack.counters.stale_served == 1


def test_the_stale_copy_is_gone_once_its_window_ends(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.fetch(STANDARD)
    rig.break_origin()
    rig.now = YEAR + DEFAULT_POLICY.ttl.immutable_stale_if_error + 1
    result = rig.fetch(STANDARD)
    assert (result.status, result.cache) == (503, "Miss")
    assert result.headers["cache-control"] == "no-store"


def test_a_healthy_origin_replaces_the_expired_copy(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.fetch(STANDARD)
    rig.now = YEAR + 1
    again = rig.fetch(STANDARD)
    assert (again.status, again.cache) == (200, "Miss")
    assert "warning" not in again.headers
    assert rig.stack.counters.stale_served == 0


def test_takedown_content_is_never_served_stale_past_its_60_seconds(tmp_path: Path) -> None:
    """R9: the default policy gives takedown-eligible content no stale window at all."""
    rig = Rig(tmp_path)
    first = rig.fetch(TAKEDOWN)
    assert first.headers["cache-control"] == "public, max-age=60"
    rig.break_origin()
    rig.now = 61
    result = rig.fetch(TAKEDOWN)
    assert (result.status, result.cache) == (503, "Miss")


def test_a_takedown_stale_window_ends_within_the_takedown_bound(tmp_path: Path) -> None:
    policy = Policy(ttl=CacheTtls(takedown=45, takedown_stale_if_error=15))
    rig = Rig(tmp_path, policy)
    first = rig.fetch(TAKEDOWN)
    assert first.headers["cache-control"] == "public, max-age=45, stale-if-error=15"
    rig.break_origin()
    rig.now = 50
    assert rig.fetch(TAKEDOWN).cache == "Stale"
    rig.now = 60  # max-age + stale-if-error: the takedown bound, reached
    assert rig.fetch(TAKEDOWN).status == 503


def test_a_404_after_a_takedown_is_answered_not_replaced_by_the_stale_copy(
    tmp_path: Path,
) -> None:
    """stale-if-error covers 5xx only: an origin that says the image is gone is believed."""
    policy = Policy(ttl=CacheTtls(takedown=45, takedown_stale_if_error=15))
    rig = Rig(tmp_path, policy)
    rig.fetch(TAKEDOWN)
    rig.fallback.gone = True
    rig.now = 50
    gone = rig.fetch(TAKEDOWN)
    assert (gone.status, gone.cache) == (404, "Miss")
    rig.break_origin()
    rig.now = 52  # the 404 replaced the entry: nothing stale is left to serve
    cached = rig.fetch(TAKEDOWN)
    assert (cached.status, cached.cache) == (404, "Hit")
    rig.now = 61  # the 404 expired too; the origin fails and there is no copy
    assert rig.fetch(TAKEDOWN).status == 503
