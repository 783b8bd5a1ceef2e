"""Parse Lambda invocations (SQS batches of S3 notifications, or bare S3 notifications) into models.

What arrives, and what each becomes:

- An SQS batch (`Records[*].eventSource == "aws:sqs"`): one `Message` per record. Its body is an
  S3 notification (JSON with `Records`), an `s3:TestEvent` (sent once when the notification is
  configured: it holds no object, so the message has no events and is acknowledged), or an SNS
  envelope around either (S3 -> SNS -> SQS fan-out). A body that is none of these is kept as a
  `Message` with `error` set: a poisoned message, which the handler reports failed so that SQS
  moves it to the DLQ after the redrive limit, where a person can read it (R18: never nowhere).
- A bare S3 notification (`Records[*].eventSource == "aws:s3"`, S3 invoking Lambda directly):
  one `Message` holding every record.
- A backfill batch from the Step Functions Distributed Map of the CDK app:
  `{"source": "imgcdn.backfill", "bucket": ..., "items": [{"Key": ...}, ...]}` with keys as S3
  lists them (not encoded): one `Message` per item, identified by its key, each an
  `ObjectCreated` event.

Object keys in S3 notifications are URL-encoded the way HTML forms are: `+` is a space and `%2B`
a plus (`urllib.parse.unquote_plus`); real S3 leaves `/` as is and moto encodes it as `%2F`, and
both decode the same. The decoded bytes must be UTF-8, as every S3 key is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import unquote_plus

__all__ = [
    "EventError",
    "EventKind",
    "Invocation",
    "Message",
    "ObjectEvent",
    "decode_key",
    "parse_invocation",
    "parse_notification",
]

TEST_EVENT = "s3:TestEvent"
BACKFILL_SOURCE = "imgcdn.backfill"
"""The `source` of the events the backfill's Distributed Map sends."""
BACKFILL_EVENT_NAME = "ObjectCreated:Backfill"


class EventError(ValueError):
    """An event, or one message's body, is not a notification this worker understands."""


class EventKind(StrEnum):
    """What happened to an original."""

    CREATED = "created"
    """`ObjectCreated:*`: Put, Post, Copy, CompleteMultipartUpload."""
    REMOVED = "removed"
    """`ObjectRemoved:*` and `LifecycleExpiration:*`: the object (or one version) is gone."""
    OTHER = "other"
    """Restore, tagging, ACL, replication, ...: nothing for this worker to do."""


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """One S3 notification record about one object.

    Attributes:
        name: The event name without the `s3:` prefix, e.g. `ObjectCreated:Put`.
        kind: What the event means for the worker.
        bucket: The bucket the object is in.
        key: The object key, decoded.
        version_id: The S3 version the event is about (versioned buckets only). For
            `ObjectRemoved:DeleteMarkerCreated` it names the delete marker, not an object.
        size: The object's size in bytes, when the event says.
        sequencer: S3's per-key ordering token, kept for logs.
    """

    name: str
    kind: EventKind
    bucket: str
    key: str
    version_id: str | None = None
    size: int | None = None
    sequencer: str | None = None

    @property
    def delete_marker(self) -> bool:
        """Whether the event created a delete marker rather than removing bytes."""
        return self.name.endswith(":DeleteMarkerCreated")


@dataclass(frozen=True, slots=True)
class Message:
    """One unit of acknowledgement: an SQS message, or the whole bare S3 event.

    Attributes:
        message_id: The SQS message id (the `itemIdentifier` of a batch failure); for a bare S3
            event, `s3-event`.
        events: The object events it carries (none for an `s3:TestEvent`).
        test_event: Whether it was an `s3:TestEvent`.
        error: Why the body could not be parsed (a poisoned message), or None.
        receive_count: SQS's `ApproximateReceiveCount`, for logs.
    """

    message_id: str
    events: tuple[ObjectEvent, ...] = ()
    test_event: bool = False
    error: str | None = None
    receive_count: int | None = None


@dataclass(frozen=True, slots=True)
class Invocation:
    """A parsed Lambda event."""

    source: Literal["sqs", "s3", "backfill"]
    messages: tuple[Message, ...] = field(default_factory=tuple)


def decode_key(raw: str) -> str:
    """Decode an S3 notification key: `+` is a space, `%XX` a UTF-8 byte.

    Raises:
        EventError: The key is not a string or does not decode to UTF-8 text.
    """
    if not isinstance(raw, str) or not raw:
        msg = f"object key {raw!r} is not a non-empty string"
        raise EventError(msg)
    try:
        return unquote_plus(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        msg = f"object key {raw!r} does not decode to UTF-8 text"
        raise EventError(msg) from None


def _kind(name: str) -> EventKind:
    if name.startswith("ObjectCreated:"):
        return EventKind.CREATED
    if name.startswith(("ObjectRemoved:", "LifecycleExpiration:")):
        return EventKind.REMOVED
    return EventKind.OTHER


def _record(record: Any) -> ObjectEvent:
    try:
        name = str(record["eventName"]).removeprefix("s3:")
        s3 = record["s3"]
        bucket = s3["bucket"]["name"]
        obj = s3["object"]
        raw_key = obj["key"]
    except (KeyError, TypeError) as exc:
        msg = f"S3 record lacks {exc}; expected eventName, s3.bucket.name and s3.object.key"
        raise EventError(msg) from None
    if not isinstance(bucket, str) or not bucket:
        msg = f"S3 record has bucket name {bucket!r}; expected a non-empty string"
        raise EventError(msg)
    size = obj.get("size")
    version_id = obj.get("versionId")
    sequencer = obj.get("sequencer")
    return ObjectEvent(
        name=name,
        kind=_kind(name),
        bucket=bucket,
        key=decode_key(raw_key),
        # S3 omits versionId for unversioned buckets; some tools send "null" or "".
        version_id=str(version_id) if version_id not in (None, "", "null") else None,
        size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        sequencer=str(sequencer) if sequencer else None,
    )


def parse_notification(body: str | Mapping[str, Any]) -> tuple[tuple[ObjectEvent, ...], bool]:
    """Parse one S3 notification (possibly inside an SNS envelope).

    Args:
        body: The JSON text of an SQS message body, or the decoded object.

    Returns:
        The object events, and whether the body was an `s3:TestEvent` (then there are none).

    Raises:
        EventError: The body is not JSON, or not an S3 notification.
    """
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError as exc:
            msg = f"message body is not JSON ({exc})"
            raise EventError(msg) from None
    if not isinstance(body, Mapping):
        msg = f"message body is a JSON {type(body).__name__}; expected an object"
        raise EventError(msg)
    if body.get("Type") == "Notification" and isinstance(body.get("Message"), str):
        return parse_notification(body["Message"])
    if body.get("Event") == TEST_EVENT:
        return (), True
    records = body.get("Records")
    if not isinstance(records, list) or not records:
        msg = "message body has no Records; expected an S3 notification or an s3:TestEvent"
        raise EventError(msg)
    return tuple(_record(r) for r in records), False


def _receive_count(record: Mapping[str, Any]) -> int | None:
    attributes = record.get("attributes")
    value = attributes.get("ApproximateReceiveCount") if isinstance(attributes, Mapping) else None
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _sqs_message(record: Mapping[str, Any]) -> Message:
    message_id = record.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        # Without an id the message cannot be reported alone: the whole invocation must fail.
        msg = "SQS record has no messageId"
        raise EventError(msg)
    count = _receive_count(record)
    try:
        events, test = parse_notification(record.get("body", ""))
    except EventError as exc:
        return Message(message_id, error=str(exc), receive_count=count)
    return Message(message_id, events, test, receive_count=count)


def _backfill(event: Mapping[str, Any]) -> Invocation:
    bucket, items = event.get("bucket"), event.get("items")
    if not isinstance(bucket, str) or not bucket or not isinstance(items, list):
        msg = 'a backfill event needs "bucket" (a name) and "items" (a list of {"Key": ...})'
        raise EventError(msg)
    messages = []
    for item in items:
        key = item.get("Key") if isinstance(item, Mapping) else None
        if not isinstance(key, str) or not key:
            # Without a key the item cannot be reported alone: the whole batch must fail.
            msg = f"backfill item {item!r} has no Key"
            raise EventError(msg)
        event_ = ObjectEvent(BACKFILL_EVENT_NAME, EventKind.CREATED, bucket, key)
        messages.append(Message(key, (event_,)))
    return Invocation("backfill", tuple(messages))


def parse_invocation(event: Mapping[str, Any]) -> Invocation:
    """Parse what Lambda passes to the handler.

    Args:
        event: An SQS batch event, a bare S3 notification event, or a backfill batch.

    Returns:
        The messages to process. A poisoned SQS message is a `Message` with `error` set; it
        does not stop the others.

    Raises:
        EventError: The event is neither shape (nothing in it can be acknowledged alone).
    """
    if isinstance(event, Mapping) and event.get("source") == BACKFILL_SOURCE:
        return _backfill(event)
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, Sequence) or isinstance(records, str) or not records:
        msg = "event has no Records; expected an SQS batch or an S3 notification"
        raise EventError(msg)
    sources = {r.get("eventSource") if isinstance(r, Mapping) else None for r in records}
    if sources == {"aws:sqs"}:
        return Invocation("sqs", tuple(_sqs_message(r) for r in records))
    if sources == {"aws:s3"}:
        events, _ = parse_notification(event)
        return Invocation("s3", (Message("s3-event", events),))
    msg = f"event records come from {sorted(map(str, sources))}; expected aws:sqs or aws:s3"
    raise EventError(msg)
