"""The S3 store honours the same storage contract as imgcore's stores (moto, in-process)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from imgcdn_aws.s3 import S3Store
from imgcore import InputTooLarge
from imgcore.storage import NotFound, StorageFault, SupportsStream


@pytest.fixture
def store() -> Iterator[S3Store]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bucket")
        client.put_bucket_versioning(Bucket="bucket", VersioningConfiguration={"Status": "Enabled"})
        yield S3Store("bucket", client=client)


def test_round_trip_with_headers_and_hostile_keys(store: S3Store) -> None:
    key = "img/acme/red shoe+1 %/caf\u00e9.jpg"
    store.put(
        key,
        b"abc",
        content_type="image/jpeg",
        cache_control="public, max-age=60",
        metadata={"v": "1"},
    )
    got = store.get(key)
    assert got.data == b"abc"
    assert (got.info.content_type, got.info.cache_control, dict(got.info.metadata)) == (
        "image/jpeg",
        "public, max-age=60",
        {"v": "1"},
    )
    assert [i.key for i in store.list("img/acme/")] == [key]
    store.delete(key)
    store.delete(key)
    assert store.head(key) is None
    with pytest.raises(NotFound):
        store.get(key)


def test_size_bound_and_versions(store: S3Store) -> None:
    store.put("o", b"v1" * 10)
    first = store.head("o")
    assert first is not None
    assert first.version_id
    store.put("o", b"v2")
    assert store.get("o", version_id=first.version_id).data == b"v1" * 10
    assert len(store.versions("o")) == 2
    with pytest.raises(InputTooLarge, match="at most 5"):
        store.get("o", version_id=first.version_id, max_bytes=5)


def test_if_absent_is_a_conditional_write(store: S3Store) -> None:
    assert store.put("m", b"one", if_absent=True)
    assert not store.put("m", b"two", if_absent=True)
    assert store.get("m").data == b"one"


def test_a_missing_bucket_is_not_found_and_faults_are_transient() -> None:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        with pytest.raises(NotFound):
            S3Store("absent", client=client).get("k")
    broken = S3Store("bucket", endpoint_url="http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(StorageFault):
        broken.put("k", b"x")


def test_stream_hands_over_an_object_in_chunks_and_names_a_missing_one(store: S3Store) -> None:
    assert isinstance(store, SupportsStream)
    data = bytes(range(256)) * 5000  # over one 1 MiB chunk
    store.put("big", data)
    first = store.head("big")
    assert first is not None
    store.put("big", b"newer")
    info, chunks = store.stream("big", version_id=first.version_id)
    parts = list(chunks)
    assert (info.size, info.version_id, b"".join(parts)) == (len(data), first.version_id, data)
    assert len(parts) == 2
    with pytest.raises(NotFound):
        store.stream("absent")
