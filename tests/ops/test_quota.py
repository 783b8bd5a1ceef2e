"""3,000 takedowns against a CloudFront that throttles and enforces its invalidation quotas.

The fake speaks boto3's shapes and errors (`ClientError` with CloudFront's codes), so the real
adapter (`imgcdn_aws.cloudfront.CloudFrontInvalidator`) and the real queue are what is tested.
Time is simulated: `sleep` advances the clock, and an invalidation completes 60 simulated
seconds after it was created, so the run covers 3,000 paths in a second of real time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from imgcdn_aws.cloudfront import CloudFrontInvalidator
from imgcdn_ops.bulk import Journal, read_requests, run_bulk
from imgcdn_ops.invalidation import InvalidationBusy, InvalidationQueue
from imgcdn_ops.takedown import TakedownService
from imgcore.keys import ContentClass, ImageRef
from imgcore.storage import MemoryStore


def _rng(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible refusals and jitter, not secrets


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


def _error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "CreateInvalidation",
    )


@dataclass
class ThrottlingCloudFront:
    """boto3's CloudFront client for invalidations, with the quotas and random refusals."""

    clock: Clock
    rng: random.Random
    refuse_rate: float = 0.2
    duration_s: float = 60.0
    created: dict[str, tuple[float, tuple[str, ...]]] = field(default_factory=dict)
    by_reference: dict[str, str] = field(default_factory=dict)
    max_wildcards_seen: int = 0
    refusals: int = 0

    def _wildcards_in_progress(self) -> int:
        return sum(
            sum(1 for p in paths if "*" in p)
            for at, paths in self.created.values()
            if self.clock() - at < self.duration_s
        )

    def create_invalidation(self, *, DistributionId: str, InvalidationBatch: Any) -> Any:  # noqa: N803 - boto3's names
        paths = tuple(InvalidationBatch["Paths"]["Items"])
        assert InvalidationBatch["Paths"]["Quantity"] == len(paths)
        if self.rng.random() < self.refuse_rate:
            self.refusals += 1
            raise _error(self.rng.choice(["Throttling", "TooManyInvalidationsInProgress"]), 400)
        reference = InvalidationBatch["CallerReference"]
        if reference in self.by_reference:
            return {"Invalidation": {"Id": self.by_reference[reference], "Status": "InProgress"}}
        busy = self._wildcards_in_progress()
        if busy + sum(1 for p in paths if "*" in p) > 15:
            self.refusals += 1
            raise _error("TooManyInvalidationsInProgress", 400)
        inv_id = f"I{len(self.created):05d}"
        self.created[inv_id] = (self.clock(), paths)
        self.by_reference[reference] = inv_id
        self.max_wildcards_seen = max(self.max_wildcards_seen, self._wildcards_in_progress())
        return {"Invalidation": {"Id": inv_id, "Status": "InProgress"}}

    def get_invalidation(self, *, DistributionId: str, Id: str) -> Any:  # noqa: N803 - boto3's names
        if self.rng.random() < self.refuse_rate / 4:
            raise _error("Throttling", 400)
        at, _ = self.created[Id]
        done = self.clock() - at >= self.duration_s
        return {"Invalidation": {"Id": Id, "Status": "Completed" if done else "InProgress"}}


def _bulk(
    tmp_path: Path, client: ThrottlingCloudFront, clock: Clock, lines: list[str]
) -> tuple[Any, InvalidationQueue]:
    source = tmp_path / "ids.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    requests, skipped = read_requests(
        source, reason="DMCA batch 7", content_class="ugc", tenants=None
    )
    service = TakedownService(
        MemoryStore(versioned=True), MemoryStore(), MemoryStore(), wall_clock=clock
    )
    queue = InvalidationQueue(
        CloudFrontInvalidator("E123", client=client, busy=InvalidationBusy),
        salt="run-1",
        clock=clock,
        sleep=clock.sleep,
        rng=_rng(7),
    )
    journal = Journal(tmp_path / "ids.txt.journal")
    try:
        report = run_bulk(
            requests,
            actor="legal",
            service=service,
            queue=queue,
            journal=journal,
            skipped=skipped,
            wait_for_cdn=True,
            render_window_s=35,
            progress=None,
            sleep=clock.sleep,
            workers=4,
        )
    finally:
        journal.close()
    return report, queue


@pytest.mark.slow
def test_3000_ids_every_path_exactly_once_never_over_15_wildcards(tmp_path: Path) -> None:
    clock = Clock()
    client = ThrottlingCloudFront(clock, _rng(3))
    ids = [f"acme/user-{n:04d}/photo.jpg" for n in range(3000)]
    report, queue = _bulk(tmp_path, client, clock, ids)

    assert report.failed == []
    assert len(report.done) == 3000
    sent = [p for _, paths in client.created.values() for p in paths]
    expected = [
        ImageRef("acme", i.partition("/")[2], ContentClass.TAKEDOWN).invalidation_path for i in ids
    ]
    assert sorted(sent) == sorted(expected)  # every path, each exactly once
    assert client.max_wildcards_seen <= 15
    assert client.refusals > 20  # the run really met refusals, and rode them out
    assert all(i.status == "Completed" for i in report.invalidations)
    assert queue.stats.refusals >= client.refusals


def test_bad_lines_are_skipped_with_reasons_and_nothing_is_taken_down_for_them(
    tmp_path: Path,
) -> None:
    clock = Clock()
    client = ThrottlingCloudFront(clock, _rng(1), refuse_rate=0.0)
    lines = [
        "# a comment",
        "acme/a.jpg",
        "",
        "acme/a.jpg",
        "Acme/b.jpg",
        "nothing-here",
        "acme/bad/../c.jpg",
        "acme/d.jpg\tGDPR erasure request 12",
    ]
    report, _ = _bulk(tmp_path, client, clock, lines)
    assert [d["target"] for d in report.done] == ["acme/a.jpg", "acme/d.jpg"]
    assert [(s.line, s.why.split(";")[0]) for s in report.skipped] == [
        (4, "duplicate of line 2"),
        (5, "tenant 'Acme' is not valid"),
        (6, "'nothing-here' does not name an image"),
        (7, "image id 'bad/../c.jpg' has an empty, '.' or '..' segment"),
    ]
    sent = sorted(p for _, paths in client.created.values() for p in paths)
    assert sent == ["/ugc/acme/a.jpg/*", "/ugc/acme/d.jpg/*"]


def test_an_empty_file_is_one_clear_error(tmp_path: Path) -> None:
    from imgcdn_ops.takedown import TakedownError

    source = tmp_path / "empty.txt"
    source.write_text("\n# nothing\n", encoding="utf-8")
    with pytest.raises(TakedownError, match="names no image to take down"):
        read_requests(source, reason="r", content_class=None, tenants=None)


def test_the_adapter_maps_cloudfront_errors(tmp_path: Path) -> None:
    from imgcdn_aws.cloudfront import CloudFrontError

    class Refusing:
        def __init__(self, code: str) -> None:
            self.code = code

        def create_invalidation(self, **kwargs: Any) -> Any:
            raise _error(self.code, 404 if self.code == "NoSuchDistribution" else 400)

    with pytest.raises(InvalidationBusy):
        CloudFrontInvalidator("E1", client=Refusing("Throttling"), busy=InvalidationBusy).create(
            ["/x/*"], "r"
        )
    with pytest.raises(CloudFrontError, match="does not exist in this account"):
        CloudFrontInvalidator("E1", client=Refusing("NoSuchDistribution")).create(["/x/*"], "r")
    with pytest.raises(CloudFrontError, match="cloudfront:CreateInvalidation"):
        CloudFrontInvalidator("E1", client=Refusing("AccessDenied")).create(["/x/*"], "r")
