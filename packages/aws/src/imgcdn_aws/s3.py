"""The S3 implementation of imgcore's storage ports (`ObjectStore`, `VersionListing`,
`SupportsStream`), shared by precompute, the fallback and operations.

boto3 clients are built lazily, once per process and endpoint, so a warm Lambda reuses its
connection pool and moto can intercept them. Errors are classified for the callers: a missing
key or version is `NotFound`, a refused size bound is `InputTooLarge`, and anything a retry may
cure (throttling, 5xx, timeouts, connection errors) is `StorageFault`.
"""

from __future__ import annotations

import builtins
import functools
import os
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from imgcore import InputTooLarge
from imgcore.storage import NotFound, ObjectInfo, ObjectVersion, StorageFault, StoredObject

__all__ = ["INTERACTIVE_CALL_BUDGET_MS", "WORKER_CALL_BUDGET_MS", "S3Store", "s3_client"]

_STREAM_CHUNK = 1 << 20
_NOT_FOUND = {"NoSuchKey", "NoSuchVersion", "404", "NotFound", "NoSuchBucket"}
_ALREADY_EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict"}

# The worker (precompute, backfill): an SQS retry costs a whole batch, so S3 hiccups are
# retried here, well inside the worker's default 300 s timeout.
_WORKER_CONNECT_S = 2
_WORKER_READ_S = 10
_WORKER_RETRIES = 3
"""botocore's `max_attempts` counts retries: one call makes up to 4 attempts."""
_BACKOFF_BASE_S = 2
"""Standard mode waits a random fraction of `2 ** (attempt - 1)` seconds before each retry."""
_WORKER_CONFIG = Config(
    retries={"max_attempts": _WORKER_RETRIES, "mode": "standard"},
    connect_timeout=_WORKER_CONNECT_S,
    read_timeout=_WORKER_READ_S,
    max_pool_connections=32,
)
WORKER_CALL_BUDGET_MS = 1000 * (
    (_WORKER_RETRIES + 1) * (_WORKER_CONNECT_S + _WORKER_READ_S)
    + sum(_BACKOFF_BASE_S**attempt for attempt in range(_WORKER_RETRIES))
)
"""The longest one S3 call of the worker's client can stall: 4 attempts x (2 s to connect plus
10 s without a byte) plus the backoff between them (< 1 + 2 + 4 s) = 55,000 ms. The worker's
write guard derives from it (`imgcdn_precompute.batch`)."""

_INTERACTIVE_CONNECT_S = 0.5
_INTERACTIVE_READ_S = 1.0
INTERACTIVE_CALL_BUDGET_MS = round((_INTERACTIVE_CONNECT_S + _INTERACTIVE_READ_S) * 1000)
"""The longest one S3 call of an interactive client can stall: one attempt (no retry), 0.5 s to
connect plus 1.0 s without a byte = 1,500 ms. The fallback's deadline margin must be at least
this (`imgcdn_edge.config`), so a call abandoned at the deadline ends before the invocation."""

# The fallback (a viewer is waiting, the Lambda has a deadline): no retry inside the call, the
# next miss is the retry. `read_timeout` bounds the wait between bytes, not a whole download,
# so a large original still streams in as long as S3 keeps sending.
_INTERACTIVE_CONFIG = Config(
    retries={"total_max_attempts": 1, "mode": "standard"},
    connect_timeout=_INTERACTIVE_CONNECT_S,
    read_timeout=_INTERACTIVE_READ_S,
    max_pool_connections=32,
)


@functools.cache
def s3_client(
    endpoint_url: str | None = None, region: str | None = None, *, interactive: bool = False
) -> Any:
    """One boto3 S3 client per process, endpoint and profile (`None` endpoint: AWS itself).

    Args:
        endpoint_url: An S3-compatible endpoint, or None for AWS.
        region: The region; `AWS_REGION` / `AWS_DEFAULT_REGION` when None.
        interactive: Tight timeouts and no retry (see `INTERACTIVE_CALL_BUDGET_MS`) for a
            caller with a deadline; otherwise the worker's patient retries.
    """
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        config=_INTERACTIVE_CONFIG if interactive else _WORKER_CONFIG,
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store:
    """An `ObjectStore` over one S3 bucket (or any S3-compatible endpoint)."""

    def __init__(
        self,
        bucket: str,
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        interactive: bool = False,
    ) -> None:
        """Use `bucket`; the client is built on first use unless one is given.

        Args:
            bucket: The bucket name.
            client: A ready boto3 S3 client (tests, moto).
            endpoint_url: An S3-compatible endpoint for the lazily built client.
            interactive: Build the client with `s3_client(..., interactive=True)`.
        """
        self.bucket = bucket
        self._client = client
        self._endpoint_url = endpoint_url
        self._interactive = interactive

    @property
    def client(self) -> Any:
        """The boto3 client, built lazily."""
        if self._client is None:
            self._client = s3_client(self._endpoint_url, interactive=self._interactive)
        return self._client

    def _fault(self, key: str, exc: Exception) -> Exception:
        if isinstance(exc, ClientError) and _code(exc) in _NOT_FOUND:
            return NotFound(f"no object {key!r} in bucket {self.bucket}")
        detail = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        return StorageFault(f"S3 {self.bucket}/{key}: {detail}")

    def get(
        self, key: str, *, max_bytes: int | None = None, version_id: str | None = None
    ) -> StoredObject:
        """Read a whole object (see `imgcore.storage.ObjectStore`)."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        try:
            response = self.client.get_object(**kwargs)
            size = int(response["ContentLength"])
            if max_bytes is not None and size > max_bytes:
                response["Body"].close()
                msg = f"object {key!r} is {size:,} bytes; allowed: at most {max_bytes:,}"
                raise InputTooLarge(msg)
            data = response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise self._fault(key, exc) from exc
        return StoredObject(self._info(key, size, response), data)

    def stream(
        self, key: str, *, version_id: str | None = None
    ) -> tuple[ObjectInfo, Iterator[bytes]]:
        """The object's info and an iterator over its bytes (`imgcore.storage.SupportsStream`).

        Raises:
            NotFound: No such object or version.
            StorageFault: S3 failed (also while iterating).
        """
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        try:
            response = self.client.get_object(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._fault(key, exc) from exc
        info = self._info(key, int(response["ContentLength"]), response)
        body = response["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(_STREAM_CHUNK)
            except (ClientError, BotoCoreError) as exc:
                raise self._fault(key, exc) from exc
            finally:
                body.close()

        return info, chunks()

    @staticmethod
    def _info(key: str, size: int, response: Mapping[str, Any]) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=size,
            content_type=response.get("ContentType"),
            cache_control=response.get("CacheControl"),
            metadata=dict(response.get("Metadata") or {}),
            version_id=response.get("VersionId"),
        )

    def head(self, key: str) -> ObjectInfo | None:
        """Describe an object, or None (see `imgcore.storage.ObjectStore`)."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise self._fault(key, exc) from exc
        except BotoCoreError as exc:
            raise self._fault(key, exc) from exc
        return self._info(key, int(response["ContentLength"]), response)

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        cache_control: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> bool:
        """Write an object; S3 PUTs are atomic (see `imgcore.storage.ObjectStore`).

        `if_absent` uses S3's conditional write (`If-None-Match: *`), so two writers racing on
        one key leave exactly one object.
        """
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data}
        if content_type:
            kwargs["ContentType"] = content_type
        if cache_control:
            kwargs["CacheControl"] = cache_control
        if metadata:
            kwargs["Metadata"] = dict(metadata)
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        try:
            self.client.put_object(**kwargs)
        except ClientError as exc:
            if if_absent and _code(exc) in _ALREADY_EXISTS:
                return False
            raise self._fault(key, exc) from exc
        except BotoCoreError as exc:
            raise self._fault(key, exc) from exc
        return True

    def delete(self, key: str, *, version_id: str | None = None) -> None:
        """Remove an object or one version; absent is not an error."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        try:
            self.client.delete_object(**kwargs)
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND:
                raise self._fault(key, exc) from exc
        except BotoCoreError as exc:
            raise self._fault(key, exc) from exc

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The current objects under `prefix`, in key order (S3 lists in UTF-8 binary order)."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", ()):
                    yield ObjectInfo(key=item["Key"], size=int(item["Size"]))
        except (ClientError, BotoCoreError) as exc:
            raise self._fault(prefix, exc) from exc

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        """Replace the current object's tags (`PutObjectTagging`; see `ObjectStore`).

        No tags at all is `DeleteObjectTagging`, S3's own way to clear a tag set.
        """
        tag_set = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
        try:
            if not tag_set:
                self.client.delete_object_tagging(Bucket=self.bucket, Key=key)
                return
            self.client.put_object_tagging(Bucket=self.bucket, Key=key, Tagging={"TagSet": tag_set})
        except (ClientError, BotoCoreError) as exc:
            raise self._fault(key, exc) from exc

    def get_tags(self, key: str) -> dict[str, str]:
        """The current object's tags (`GetObjectTagging`; see `ObjectStore`)."""
        try:
            response = self.client.get_object_tagging(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._fault(key, exc) from exc
        return {t["Key"]: t["Value"] for t in response.get("TagSet", ())}

    def versions(self, key: str) -> builtins.list[ObjectInfo]:
        """Every version of `key` (a versioned bucket), delete markers excluded."""
        paginator = self.client.get_paginator("list_object_versions")
        found: builtins.list[ObjectInfo] = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
                found.extend(
                    ObjectInfo(key=v["Key"], size=int(v["Size"]), version_id=v["VersionId"])
                    for v in page.get("Versions", ())
                    if v["Key"] == key
                )
        except (ClientError, BotoCoreError) as exc:
            raise self._fault(key, exc) from exc
        return found

    def list_versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version and delete marker under `prefix` (`ListObjectVersions`), key order.

        An unversioned bucket lists each current object once, with the version id `null`
        that S3 gives it; deleting that version id removes the object.
        """
        paginator = self.client.get_paginator("list_object_versions")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                found = [
                    ObjectVersion(
                        v["Key"],
                        v.get("VersionId"),
                        int(v.get("Size", 0)),
                        current=bool(v.get("IsLatest")),
                    )
                    for v in page.get("Versions", ())
                ] + [
                    ObjectVersion(
                        m["Key"],
                        m.get("VersionId"),
                        delete_marker=True,
                        current=bool(m.get("IsLatest")),
                    )
                    for m in page.get("DeleteMarkers", ())
                ]
                yield from sorted(found, key=lambda v: (v.key, v.version_id or ""))
        except (ClientError, BotoCoreError) as exc:
            raise self._fault(prefix, exc) from exc
