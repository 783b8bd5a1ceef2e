"""Takedown on versioned S3 (moto): nothing of the image remains, nothing of a neighbour goes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from imgcdn_aws.s3 import S3Store
from imgcdn_ops.invalidation import InvalidationQueue
from imgcdn_ops.takedown import (
    TakedownError,
    TakedownService,
    parse_target,
    take_down,
)
from imgcore.keys import ContentClass, ImageRef, content_version

ORIGINALS, DERIVATIVES, AUDIT = "originals", "derivatives", "audit"


@dataclass
class RecordingCdn:
    """A CDN that records what it is asked and completes each invalidation on the first read.

    Like CloudFront, a reference it has seen answers the invalidation it made then.
    """

    batches: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    references: dict[str, str] = field(default_factory=dict)

    def create(self, paths: Sequence[str], reference: str) -> str:
        if reference in self.references:
            return self.references[reference]
        inv_id = f"I{len(self.batches)}"
        self.batches.append((inv_id, tuple(paths)))
        self.references[reference] = inv_id
        return inv_id

    def status(self, invalidation_id: str) -> str:
        return "Completed"


@dataclass
class World:
    client: Any
    service: TakedownService
    cdn: RecordingCdn

    def versions(self, bucket: str, prefix: str) -> list[tuple[str, str]]:
        found = []
        for page in self.client.get_paginator("list_object_versions").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            found += [(v["Key"], v["VersionId"]) for v in page.get("Versions", ())]
            found += [(m["Key"], m["VersionId"]) for m in page.get("DeleteMarkers", ())]
        return sorted(found)

    def upload(self, image: ImageRef, data: bytes, *, overwrite_variant: bool = False) -> str:
        """An original version and what precompute makes of it (two variants and a manifest)."""
        self.client.put_object(Bucket=ORIGINALS, Key=image.source_key, Body=data)
        version = content_version(data)
        for name in ("w160-q80.jpeg", "w320-q80.webp", "manifest.json"):
            key = image.version_prefix(version) + name
            self.client.put_object(Bucket=DERIVATIVES, Key=key, Body=b"derived " + data)
            if overwrite_variant:  # a re-render: the first bytes stay as a noncurrent version
                self.client.put_object(Bucket=DERIVATIVES, Key=key, Body=b"again " + data)
        return version


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in (ORIGINALS, DERIVATIVES, AUDIT):
            client.create_bucket(Bucket=bucket)
            client.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
            )
        service = TakedownService(
            S3Store(ORIGINALS, client=client),
            S3Store(DERIVATIVES, client=client),
            S3Store(AUDIT, client=client),
        )
        yield World(client, service, RecordingCdn())


def _take_down(world: World, text: str, **kwargs: Any) -> Any:
    return take_down(
        parse_target(text, kwargs.pop("content_class", None)),
        reason=kwargs.pop("reason", "DMCA notice 42"),
        actor="legal@example.com",
        service=world.service,
        queue=InvalidationQueue(world.cdn, sleep=lambda s: None),
        render_window_s=0,
        sleep=lambda s: None,
        **kwargs,
    )


def test_three_versions_a_delete_marker_and_noncurrent_derivatives_all_go(world: World) -> None:
    shoe = ImageRef("acme", "shoes/red")
    neighbours = [
        ImageRef("acme", "shoes/red-2"),  # shares the id as a string prefix
        ImageRef("acme", "shoes/red/2"),  # an id that extends this one
        ImageRef("acme", "shoes/re"),
        ImageRef("beta", "shoes/red"),  # the same id under another tenant
        ImageRef("acme", "shoes/red", ContentClass.TAKEDOWN),  # the other class (kept: --class)
    ]
    versions = [world.upload(shoe, f"bytes {n}".encode(), overwrite_variant=n == 2) for n in (1, 2)]
    world.client.delete_object(Bucket=ORIGINALS, Key=shoe.source_key)  # a delete marker
    versions.append(world.upload(shoe, b"bytes 3"))
    for neighbour in neighbours:
        world.upload(neighbour, b"neighbour " + neighbour.source_key.encode())
    originals_all, derivatives_all = world.versions(ORIGINALS, ""), world.versions(DERIVATIVES, "")
    own = re.compile(r"img/acme/shoes/red/[0-9a-f]{16}/[^/]+")
    originals_before = [
        v for v in world.versions(ORIGINALS, shoe.source_key) if v[0] == shoe.source_key
    ]
    assert len(originals_before) == 4  # three versions and one delete marker

    report = _take_down(world, "acme/shoes/red", content_class="img", wait=True)

    assert report.complete, report.problems
    assert [v for v in world.versions(ORIGINALS, shoe.source_key) if v[0] == shoe.source_key] == []
    # Every neighbour keeps every version: exactly the image's own keys are gone.
    assert world.versions(ORIGINALS, "") == [v for v in originals_all if v[0] != shoe.source_key]
    assert world.versions(DERIVATIVES, "") == [
        v for v in derivatives_all if not own.fullmatch(v[0])
    ]
    assert len(world.versions(DERIVATIVES, "")) == 3 * len(neighbours)
    record = json.loads(world.client.get_object(Bucket=AUDIT, Key=report.audit_key)["Body"].read())
    deleted = {(d["key"], d["version_id"]) for c in record["deleted"] for d in c["originals"]}
    assert deleted == set(originals_before)
    derived = {(d["key"], d["version_id"]) for c in record["deleted"] for d in c["derivatives"]}
    assert len(derived) == 3 * 3 + 3  # three variants per version, three overwritten twice
    assert all(v for _, v in derived)  # each by its S3 version id
    assert record["reason"] == "DMCA notice 42"
    assert record["actor"] == "legal@example.com"
    assert record["verified"] == {
        "storage_404": True,
        "problems": [],
        "invalidations_completed": True,
    }
    assert "ugc" not in record["bounds"]
    assert "max-age=31536000" in record["bounds"]["img"]
    # The image's one prefix, at once and again after the render window (img is cached a year).
    assert [paths for _, paths in world.cdn.batches] == [
        ("/img/acme/shoes/red/*",),
        ("/img/acme/shoes/red/*",),
    ]
    assert [i["status"] for i in record["invalidations"]] == ["Completed", "Completed"]
    assert record["started_at"] <= record["finished_at"]


def test_both_classes_by_default_and_ugc_is_invalidated_once(world: World) -> None:
    img, ugc = ImageRef("acme", "cat"), ImageRef("acme", "cat", ContentClass.TAKEDOWN)
    world.upload(img, b"a")
    world.upload(ugc, b"b")
    report = _take_down(world, "acme/cat")
    assert report.complete
    for image in (img, ugc):
        assert world.versions(ORIGINALS, image.source_key) == []
        assert world.versions(DERIVATIVES, image.prefix) == []
    paths = [p for _, batch in world.cdn.batches for p in batch]
    assert sorted(paths) == ["/img/acme/cat/*", "/img/acme/cat/*", "/ugc/acme/cat/*"]
    assert "expires within 60 s" in report.as_dict()["bounds"]["ugc"]


def test_a_render_that_lands_after_the_deletes_is_swept_and_invalidated_again(
    world: World,
) -> None:
    ugc = ImageRef("acme", "late", ContentClass.TAKEDOWN)
    version = world.upload(ugc, b"late bytes")
    late_key = ugc.version_prefix(version) + "w640-q80.webp"

    def render_lands(seconds: float) -> None:  # the window passes while a render stores
        world.client.put_object(Bucket=DERIVATIVES, Key=late_key, Body=b"rendered late")

    report = take_down(
        parse_target("acme/late", "ugc"),
        reason="r",
        actor="a",
        service=world.service,
        queue=InvalidationQueue(world.cdn, sleep=lambda s: None),
        render_window_s=30,
        sleep=render_lands,
    )
    assert report.complete
    assert world.versions(DERIVATIVES, ugc.prefix) == []
    assert [v.key for s in report.swept for v in s.derivatives] == [late_key]
    # ugc is invalidated a second time only because the sweep found something.
    assert [b for _, b in world.cdn.batches] == [("/ugc/acme/late/*",), ("/ugc/acme/late/*",)]


def test_a_dry_run_changes_nothing_and_writes_no_record(world: World) -> None:
    img = ImageRef("acme", "keep")
    world.upload(img, b"keep")
    before = world.versions(DERIVATIVES, img.prefix)
    report = _take_down(world, "acme/keep", dry_run=True)
    assert report.dry_run
    assert sum(r.count for r in report.removals) == 1 + 3
    assert world.versions(DERIVATIVES, img.prefix) == before
    assert world.cdn.batches == []
    assert world.versions(AUDIT, "") == []
    assert "would delete" in report.summary()


def test_nothing_stored_is_still_invalidated_and_recorded(world: World) -> None:
    report = _take_down(world, "acme/never-uploaded", content_class="ugc")
    assert report.complete
    assert [b for _, b in world.cdn.batches] == [("/ugc/acme/never-uploaded/*",)]
    assert world.versions(AUDIT, "takedowns/") != []


@pytest.mark.parametrize(
    ("text", "tenants", "message"),
    [
        ("acme", None, "TENANT/IMAGE_ID"),
        ("/shoe", None, "TENANT/IMAGE_ID"),
        ("Acme/shoe", None, "tenant 'Acme' is not valid"),
        ("acme/../beta/shoe", None, "'..' segment"),
        ("acme/shoe\u202e", None, "invisible character U+202E"),
        ("zeta/shoe", {"acme", "beta"}, "allowed: acme, beta"),
    ],
)
def test_bad_targets_are_one_line_errors(text: str, tenants: set[str] | None, message: str) -> None:
    with pytest.raises(TakedownError, match=re.escape(message)) as caught:
        parse_target(text, tenants=tenants)
    assert "\n" not in str(caught.value)


def test_a_reason_and_an_actor_are_required(world: World) -> None:
    with pytest.raises(TakedownError, match="reason and an actor"):
        _take_down(world, "acme/x", reason="  ")
    assert world.cdn.batches == []


def test_a_second_takedown_of_the_same_image_invalidates_again(world: World) -> None:
    for _ in range(2):
        world.upload(ImageRef("acme", "again", ContentClass.TAKEDOWN), b"same bytes")
        _take_down(world, "acme/again", content_class="ugc")
    # A reused CallerReference would have answered the first invalidation: nothing new sent.
    assert [b for _, b in world.cdn.batches] == [("/ugc/acme/again/*",), ("/ugc/acme/again/*",)]


def test_the_replica_in_another_region_loses_every_version_too(world: World) -> None:
    """S3 replicates delete markers, never the deletion of a version: the takedown does it."""
    world.client.create_bucket(Bucket="replica")
    world.client.put_bucket_versioning(
        Bucket="replica", VersioningConfiguration={"Status": "Enabled"}
    )
    image = ImageRef("acme", "copied")
    for body in (b"one", b"two"):
        world.upload(image, body)
        world.client.put_object(Bucket="replica", Key=image.source_key, Body=body)
    world.client.put_object(Bucket="replica", Key="img/acme/copied-2", Body=b"neighbour")
    world.service.replica = S3Store("replica", client=world.client)
    report = _take_down(world, "acme/copied", content_class="img")
    assert report.complete, report.problems
    assert world.versions("replica", "") == [
        v for v in world.versions("replica", "") if v[0] == "img/acme/copied-2"
    ]
    assert len(world.versions("replica", "")) == 1
    assert len(report.as_dict()["deleted"][0]["replica"]) == 2
