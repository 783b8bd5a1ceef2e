"""Event parsing over the real-shaped fixtures: encoded keys, poison, test events, envelopes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from imgcdn_precompute.events import (
    EventError,
    EventKind,
    decode_key,
    parse_invocation,
    parse_notification,
)


def test_keys_decode_the_way_s3_encodes_them(events: Any) -> None:
    keys = events.keys()
    assert keys["img/acme/summer+sale/red+shoe%2B1.jpg"] == "img/acme/summer sale/red shoe+1.jpg"
    for raw, decoded in keys.items():
        assert decode_key(raw) == decoded
        # moto (and some tools) also encode '/': it decodes the same.
        assert decode_key(raw.replace("/", "%2F")) == decoded


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("a+b", "a b"),
        ("a%2Bb", "a+b"),
        ("a%2B+b", "a+ b"),
        ("100%25", "100%"),
        ("%E2%82%AC", "\u20ac"),
        ("caf%C3%A9", "caf\u00e9"),
        ("%F0%9F%93%B7", "\U0001f4f7"),
    ],
)
def test_decode_key(raw: str, decoded: str) -> None:
    assert decode_key(raw) == decoded


@pytest.mark.parametrize("raw", ["caf%E9", "%FF%FE", ""])
def test_a_key_that_is_not_utf8_text_is_an_event_error(raw: str) -> None:
    with pytest.raises(EventError):
        decode_key(raw)


def test_an_sqs_batch_of_encoded_keys(events: Any) -> None:
    invocation = parse_invocation(events.load("sqs-batch-encoded-keys.json"))
    assert invocation.source == "sqs"
    assert [m.message_id[-1] for m in invocation.messages] == ["1", "2", "3"]
    assert [e.key for m in invocation.messages for e in m.events] == list(events.keys().values())[
        :3
    ]
    first = invocation.messages[0].events[0]
    assert (first.kind, first.name, first.bucket) == (
        EventKind.CREATED,
        "ObjectCreated:Put",
        "imgcdn-originals",
    )
    assert first.size == 48_213
    assert first.version_id is None
    assert first.sequencer == "0065AED6DCD9028001"
    assert invocation.messages[0].receive_count == 1


def test_a_bare_s3_notification_is_one_message(events: Any) -> None:
    invocation = parse_invocation(events.load("s3-put-encoded-key.json"))
    assert invocation.source == "s3"
    (message,) = invocation.messages
    assert [e.key for e in message.events] == ["img/acme/summer sale/red shoe+1.jpg"]


def test_a_poisoned_message_is_marked_and_does_not_stop_the_others(events: Any) -> None:
    invocation = parse_invocation(events.load("sqs-batch-poisoned.json"))
    good, poisoned, other = invocation.messages
    assert poisoned.message_id.endswith("dead")
    assert poisoned.error is not None
    assert "not JSON" in poisoned.error
    assert poisoned.events == ()
    assert poisoned.receive_count == 3
    assert good.error is None
    assert other.error is None
    assert [e.key for e in other.events] == ["ugc/acme/caf\u00e9/cr\u00e8me br\u00fbl\u00e9e.jpg"]


def test_the_s3_test_event_has_nothing_to_do(events: Any) -> None:
    (message,) = parse_invocation(events.load("sqs-test-event.json")).messages
    assert message.test_event
    assert message.events == ()
    assert message.error is None


def test_an_sns_envelope_is_unwrapped(events: Any) -> None:
    (message,) = parse_invocation(events.load("sqs-sns-envelope.json")).messages
    assert [e.key for e in message.events] == ["ugc/acme/caf\u00e9/cr\u00e8me br\u00fbl\u00e9e.jpg"]


def test_remove_before_create_keeps_delivery_order(events: Any) -> None:
    invocation = parse_invocation(events.load("sqs-remove-before-create.json"))
    removed, created = (m.events[0] for m in invocation.messages)
    assert (removed.kind, created.kind) == (EventKind.REMOVED, EventKind.CREATED)
    assert removed.key == created.key == "img/acme/gone.jpg"
    assert removed.size is None
    # S3's sequencer orders them the other way: the removal happened last.
    assert removed.sequencer is not None
    assert created.sequencer is not None
    assert int(removed.sequencer, 16) > int(created.sequencer, 16)


@pytest.mark.parametrize(
    ("name", "kind", "marker"),
    [
        ("ObjectCreated:CompleteMultipartUpload", EventKind.CREATED, False),
        ("ObjectCreated:Copy", EventKind.CREATED, False),
        ("ObjectRemoved:Delete", EventKind.REMOVED, False),
        ("ObjectRemoved:DeleteMarkerCreated", EventKind.REMOVED, True),
        ("LifecycleExpiration:Delete", EventKind.REMOVED, False),
        ("ObjectRestore:Completed", EventKind.OTHER, False),
        ("ObjectTagging:Put", EventKind.OTHER, False),
    ],
)
def test_event_kinds(events: Any, name: str, kind: EventKind, marker: bool) -> None:
    record = events.s3_record(
        "img/acme/x.jpg", name, version_id="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
    )
    ((event,), test) = parse_notification(json.dumps(events.notification(record)))
    assert not test
    assert event.kind is kind
    assert event.delete_marker is marker
    assert event.version_id == "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"


def test_a_null_version_id_means_unversioned(events: Any) -> None:
    record = events.s3_record("img/acme/x.jpg", version_id="null")
    ((event,), _) = parse_notification(events.notification(record))
    assert event.version_id is None


@pytest.mark.parametrize(
    "body",
    [
        "[1, 2]",
        "{}",
        '{"Records": []}',
        '{"Records": [{"eventName": "ObjectCreated:Put"}]}',
        '{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": ""},'
        ' "object": {"key": "k"}}}]}',
        '{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"},'
        ' "object": {"key": "caf%E9"}}}]}',
    ],
)
def test_bodies_that_are_not_notifications_poison_only_their_message(
    events: Any, body: str
) -> None:
    good = events.notification(events.s3_record("img/acme/x.jpg"))
    invocation = parse_invocation(events.sqs(good, body))
    assert invocation.messages[0].error is None
    assert invocation.messages[1].error


def test_a_backfill_batch_is_one_message_per_key_not_decoded() -> None:
    invocation = parse_invocation(
        {
            "source": "imgcdn.backfill",
            "bucket": "imgcdn-originals",
            "items": [{"Key": "img/acme/a+b%2B.jpg"}, {"Key": "img/acme/c.jpg"}],
        }
    )
    assert invocation.source == "backfill"
    assert [m.message_id for m in invocation.messages] == ["img/acme/a+b%2B.jpg", "img/acme/c.jpg"]
    (event,) = invocation.messages[0].events
    assert (event.kind, event.bucket, event.key) == (
        EventKind.CREATED,
        "imgcdn-originals",
        "img/acme/a+b%2B.jpg",
    )


@pytest.mark.parametrize(
    "event",
    [
        {"source": "imgcdn.backfill", "bucket": "b", "items": [{"Size": 3}]},
        {"source": "imgcdn.backfill", "items": []},
        {},
        {"Records": []},
        {"Records": [{"eventSource": "aws:sns"}]},
        {"Records": [{"eventSource": "aws:sqs", "body": "{}"}]},  # no messageId
    ],
)
def test_an_event_of_no_known_shape_is_an_error(event: dict[str, Any]) -> None:
    with pytest.raises(EventError):
        parse_invocation(event)
