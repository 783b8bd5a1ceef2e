"""The Lambda handler over moto's in-process S3, fed the real-shaped event fixtures."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import structlog
from moto import mock_aws
from PIL import Image

from imgcdn_aws.config import ConfigError
from imgcdn_aws.s3 import s3_client
from imgcdn_precompute import handler as handler_module
from imgcdn_precompute.handler import BatchFailed, handler
from imgcore.keys import content_version, parse_source_key
from imgcore.manifest import Manifest
from imgcore.policy import Policy

ORIGINALS, DERIVATIVES = "imgcdn-originals", "imgcdn-derivatives"


@dataclass
class LambdaContext:
    aws_request_id: str = "8f5c2a8e-6c55-4d2e-9b0c-2f4d0c6f1e11"
    remaining_ms: int = 600_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Aws:
    s3: Any
    renderer: Any

    def upload(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=ORIGINALS, Key=key, Body=data)

    def derived(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=DERIVATIVES)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))

    def manifest(self, key: str, data: bytes) -> Manifest:
        body = self.s3.get_object(
            Bucket=DERIVATIVES, Key=parse_source_key(key).manifest_key(content_version(data))
        )["Body"].read()
        return Manifest.model_validate_json(body)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, policy: Policy, renderer: Any) -> Iterator[Aws]:
    monkeypatch.setenv("IMGCDN_ORIGINALS_BUCKET", ORIGINALS)
    monkeypatch.setenv("IMGCDN_DERIVATIVES_BUCKET", DERIVATIVES)
    monkeypatch.setenv("IMGCDN_POLICY", policy.to_json())
    monkeypatch.delenv("IMGCDN_S3_ENDPOINT", raising=False)
    with mock_aws():
        s3_client.cache_clear()
        handler_module.processor.cache_clear()
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in (ORIGINALS, DERIVATIVES):
            s3.create_bucket(Bucket=bucket)
        handler_module.processor().service.renderer = renderer
        yield Aws(s3, renderer)
    s3_client.cache_clear()
    handler_module.processor.cache_clear()
    structlog.reset_defaults()


def stdout_json(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_encoded_keys_render_under_their_decoded_keys(
    aws: Aws, events: Any, photo_factory: Any
) -> None:
    decoded = list(events.keys().values())[:3]
    for seed, key in enumerate(decoded):
        aws.upload(key, photo_factory(seed))

    answer = handler(events.load("sqs-batch-encoded-keys.json"), LambdaContext())

    assert answer == {"batchItemFailures": []}
    for seed, key in enumerate(decoded):
        manifest = aws.manifest(key, photo_factory(seed))
        assert manifest.status == "complete"
        assert manifest.source_key == key
        for record in manifest.variants:
            body = aws.s3.get_object(Bucket=DERIVATIVES, Key=record.key)
            image = Image.open(io.BytesIO(body["Body"].read()))
            assert image.size == (record.width, record.height)
            assert body["ContentType"] == f"image/{record.fmt.value}"
            expected = "public, max-age=60" if key.startswith("ugc/") else "immutable"
            assert expected in body["CacheControl"]
    assert aws.renderer.renders == 3


def test_a_bare_s3_notification(aws: Aws, events: Any, photo: bytes) -> None:
    aws.upload("img/acme/summer sale/red shoe+1.jpg", photo)
    assert handler(events.load("s3-put-encoded-key.json"), LambdaContext()) == {
        "batchItemFailures": []
    }
    assert aws.manifest("img/acme/summer sale/red shoe+1.jpg", photo).status == "complete"


def test_a_bare_s3_notification_that_fails_raises_for_lambda_to_retry(
    aws: Aws, events: Any, photo: bytes
) -> None:
    aws.upload("img/acme/summer sale/red shoe+1.jpg", photo)
    aws.s3.delete_bucket(Bucket=DERIVATIVES)
    with pytest.raises(BatchFailed, match="red shoe"):
        handler(events.load("s3-put-encoded-key.json"), LambdaContext())


def test_only_the_poisoned_message_is_reported(aws: Aws, events: Any, photo_factory: Any) -> None:
    batch = events.load("sqs-batch-poisoned.json")
    keys = list(events.keys().values())
    aws.upload(keys[0], photo_factory(1))
    aws.upload(keys[2], photo_factory(3))

    answer = handler(batch, LambdaContext())

    assert answer == {"batchItemFailures": [{"itemIdentifier": batch["Records"][1]["messageId"]}]}
    assert aws.manifest(keys[0], photo_factory(1)).status == "complete"
    assert aws.manifest(keys[2], photo_factory(3)).status == "complete"


def test_a_bad_original_among_good_ones_is_recorded_and_acknowledged(
    aws: Aws, events: Any, photo: bytes
) -> None:
    aws.upload("img/acme/good.jpg", photo)
    aws.upload("img/acme/bad.jpg", b"GIF89a but not really a gif")
    aws.upload("stray/file.jpg", photo)  # outside the layout: nowhere to record it
    batch = events.sqs(
        *(
            events.notification(events.s3_record(k))
            for k in ("img/acme/good.jpg", "img/acme/bad.jpg", "stray/file.jpg")
        )
    )
    assert handler(batch, LambdaContext()) == {"batchItemFailures": []}
    assert aws.manifest("img/acme/good.jpg", photo).status == "complete"
    failed = aws.manifest("img/acme/bad.jpg", b"GIF89a but not really a gif")
    assert failed.status == "failed"
    assert failed.failure
    assert not [k for k in aws.derived() if k.startswith("stray")]


def test_a_duplicate_delivery_renders_once(aws: Aws, events: Any, photo: bytes) -> None:
    aws.upload("img/acme/summer sale/red shoe+1.jpg", photo)
    batch = events.load("sqs-batch-duplicate.json")
    assert handler(batch, LambdaContext()) == {"batchItemFailures": []}
    assert handler(batch, LambdaContext()) == {"batchItemFailures": []}  # SQS redelivers it
    assert aws.renderer.renders == 1
    assert len(aws.derived()) == 7


def test_remove_before_create_leaves_nothing(aws: Aws, events: Any, photo: bytes) -> None:
    key = "img/acme/gone.jpg"
    aws.upload(key, photo)
    assert handler(events.put(key), LambdaContext()) == {"batchItemFailures": []}
    assert len(aws.derived()) == 7
    aws.s3.delete_object(Bucket=ORIGINALS, Key=key)
    aws.upload("img/acme/kept.jpg", photo)  # a neighbour

    # The removal is delivered before a (re)delivery of the create.
    answer = handler(events.load("sqs-remove-before-create.json"), LambdaContext())

    assert answer == {"batchItemFailures": []}
    assert aws.derived() == []
    assert aws.renderer.renders == 1


def test_the_s3_test_event_is_acknowledged_and_ignored(
    aws: Aws, events: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert handler(events.load("sqs-test-event.json"), LambdaContext()) == {"batchItemFailures": []}
    assert aws.derived() == []
    lines = stdout_json(capsys)
    assert any(line.get("event") == "test_event_ignored" for line in lines)


def test_logs_and_metrics_are_json_lines_with_the_request_id(
    aws: Aws, events: Any, photo: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "img/acme/summer sale/red shoe+1.jpg"
    aws.upload(key, photo)
    capsys.readouterr()
    handler(events.load("s3-put-encoded-key.json"), LambdaContext(aws_request_id="req-42"))

    lines = stdout_json(capsys)
    logs = [line for line in lines if "_aws" not in line]
    metrics = [line for line in lines if "_aws" in line]
    variants = [line for line in logs if line["event"] == "variant_stored"]
    assert len(variants) == 6
    for line in variants:
        assert line["request_id"] == "req-42"
        assert line["key"] == key
        assert line["version"] == content_version(photo)
        assert line["store_ms"] >= 0
        assert line["render_ms"] > 0  # this variant's own resize and encode
        assert line["bytes"] > 0
    rendered = next(line for line in logs if line["event"] == "rendered")
    assert rendered["render_ms"] > 0
    (emf,) = metrics
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "imgcdn"
    assert directive["Dimensions"] == [[]]  # the tenant is a property: see batch._record
    names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert names["Renders"] == "Count"
    assert names["BytesWritten"] == "Bytes"
    assert names["RenderMs"] == "Milliseconds"
    assert emf["tenant"] == "acme"
    assert emf["Renders"] == 1
    assert emf["BytesWritten"] == sum(
        o["Size"] for o in aws.s3.list_objects_v2(Bucket=DERIVATIVES)["Contents"]
    )
    assert isinstance(emf["_aws"]["Timestamp"], int)


def test_failures_are_counted_in_metrics(
    aws: Aws, events: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.upload("img/acme/bad.jpg", b"\xff\xd8\xff broken jpeg")
    handler(events.put("img/acme/bad.jpg"), LambdaContext())
    (emf,) = [line for line in stdout_json(capsys) if "_aws" in line]
    assert emf["RenderFailures"] == 1
    assert emf["tenant"] == "acme"


def test_near_the_deadline_messages_are_deferred_not_started(
    aws: Aws, events: Any, photo: bytes
) -> None:
    aws.upload("img/acme/summer sale/red shoe+1.jpg", photo)
    batch = events.load("sqs-batch-duplicate.json")
    answer = handler(batch, LambdaContext(remaining_ms=5_000))
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in batch["Records"]]
    }
    assert aws.renderer.renders == 0


def test_an_event_about_another_bucket_is_retried_not_read(
    aws: Aws, events: Any, photo: bytes
) -> None:
    aws.upload("img/acme/x.jpg", photo)
    record = events.s3_record("img/acme/x.jpg")
    record["s3"]["bucket"]["name"] = "someone-elses-bucket"
    answer = handler(events.sqs(events.notification(record), ids=["m1"]), LambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert aws.derived() == []


def test_a_bad_configuration_fails_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMGCDN_ORIGINALS_BUCKET", "imgcdn-originals")
    monkeypatch.setenv("IMGCDN_DERIVATIVES_BUCKET", "imgcdn-derivatives")
    monkeypatch.setenv("IMGCDN_POLICY", '{"qualities": []}')
    handler_module.processor.cache_clear()
    try:
        with pytest.raises(ConfigError, match="IMGCDN_POLICY"):
            handler_module.processor()
    finally:
        handler_module.processor.cache_clear()


def test_a_backfill_batch_from_the_distributed_map_runs_the_same_service(
    aws: Aws, photo: bytes
) -> None:
    aws.upload("img/acme/a b+c%.jpg", photo)
    aws.upload("notes.txt", b"x")
    batch = {
        "source": "imgcdn.backfill",
        "bucket": ORIGINALS,
        "items": [{"Key": "img/acme/a b+c%.jpg"}, {"Key": "notes.txt"}],  # as S3 lists them
    }

    assert handler(batch, LambdaContext()) == {"batchItemFailures": []}
    assert aws.manifest("img/acme/a b+c%.jpg", photo).status == "complete"
    assert handler(batch, LambdaContext()) == {"batchItemFailures": []}  # a redriven batch
    assert aws.renderer.renders == 1


def test_a_backfill_item_that_fails_is_reported_by_its_key(aws: Aws, photo: bytes) -> None:
    aws.upload("img/acme/x.jpg", photo)
    aws.s3.delete_bucket(Bucket=DERIVATIVES)
    batch = {"source": "imgcdn.backfill", "bucket": ORIGINALS, "items": [{"Key": "img/acme/x.jpg"}]}
    assert handler(batch, LambdaContext()) == {
        "batchItemFailures": [{"itemIdentifier": "img/acme/x.jpg"}]
    }
