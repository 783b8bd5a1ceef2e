"""End to end over real HTTP: moto's server on 127.0.0.1, S3 -> SQS (+ DLQ) -> the real handler.

moto's server does deliver bucket notifications to SQS (checked: `ObjectCreated:Put` and, for
unversioned buckets, `ObjectRemoved:Delete`, plus the `s3:TestEvent` when the configuration is
set). Its records encode `/` in keys as `%2F` and carry no `versionId` or `sequencer`; the
handler decodes both spellings the same. The poller below plays the Lambda event source mapping:
it receives batches, hands them to `handler` as SQS events, and deletes only what the handler
acknowledged; SQS (moto) moves a message received more than `maxReceiveCount` times to the DLQ.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image

from imgcdn_aws.s3 import s3_client
from imgcdn_precompute import handler as handler_module
from imgcdn_precompute.handler import handler
from imgcore.keys import content_version, parse_source_key
from imgcore.manifest import Manifest
from imgcore.policy import DEFAULT_POLICY, Policy
from imgcore.responses import cache_control

KEY = "img/acme/summer sale/cr\u00e8me+br\u00fbl\u00e9e 100%.jpg"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class Pipeline:
    s3: Any
    sqs: Any
    originals: str
    derivatives: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    answers: list[dict[str, Any]]

    def poll(self, until: Callable[[], bool], *, timeout: float = 120) -> None:
        """Feed SQS batches to the handler, as the event source mapping does, until `until()`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                if until():
                    return
                time.sleep(0.05)
                continue
            event = {"Records": [self._record(m) for m in messages]}
            answer = handler(event, _Context())
            self.answers.append(answer)
            failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
            done = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages)
                if m["MessageId"] not in failed
            ]
            if done:
                self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=done)
        pytest.fail("the pipeline did not settle in time")

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "us-east-1",
        }

    def derived(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.derivatives)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))

    def has(self, key: str) -> bool:
        return key in self.derived()


class _Context:
    aws_request_id = "e2e"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _pipeline(endpoint: str, monkeypatch: pytest.MonkeyPatch, policy: Policy) -> Pipeline:
    suffix = uuid.uuid4().hex[:8]
    originals, derivatives = f"orig-{suffix}", f"deriv-{suffix}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    for bucket in (originals, derivatives):
        s3.create_bucket(Bucket=bucket)
    dlq_url = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=f"events-{suffix}",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
            "VisibilityTimeout": "0",  # a failed message comes back at once (tests are quick)
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=originals,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "imgcdn-precompute",
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                }
            ]
        },
    )
    monkeypatch.setenv("IMGCDN_ORIGINALS_BUCKET", originals)
    monkeypatch.setenv("IMGCDN_DERIVATIVES_BUCKET", derivatives)
    monkeypatch.setenv("IMGCDN_S3_ENDPOINT", endpoint)
    monkeypatch.setenv("IMGCDN_POLICY", policy.to_json())
    s3_client.cache_clear()
    handler_module.processor.cache_clear()
    return Pipeline(s3, sqs, originals, derivatives, queue_url, queue_arn, dlq_url, [])


@pytest.fixture
def pipeline_factory(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Policy], Pipeline]]:
    yield lambda policy: _pipeline(endpoint, monkeypatch, policy)
    s3_client.cache_clear()
    handler_module.processor.cache_clear()


def _width(variant: str) -> int:
    return int(variant.split("-", maxsplit=1)[0].removeprefix("w"))


def _upload_render_and_delete(pipeline: Pipeline, photo: bytes, policy: Policy) -> None:
    pipeline.s3.put_object(Bucket=pipeline.originals, Key=KEY, Body=photo)
    manifest_key = parse_source_key(KEY).manifest_key(content_version(photo))
    pipeline.poll(lambda: pipeline.has(manifest_key))

    image = parse_source_key(KEY)
    version = content_version(photo)
    body = pipeline.s3.get_object(Bucket=pipeline.derivatives, Key=image.manifest_key(version))
    manifest = Manifest.model_validate_json(body["Body"].read())
    assert manifest.status == "complete"
    assert manifest.source_key == KEY
    assert (manifest.source_width, manifest.source_height) == (1600, 1200)
    assert len(manifest.variants) == len(policy.standard.widths) * len(policy.standard.formats)
    assert set(pipeline.derived()) == {v.key for v in manifest.variants} | {manifest_key}
    for record in manifest.variants:
        got = pipeline.s3.get_object(Bucket=pipeline.derivatives, Key=record.key)
        assert got["ContentType"] == record.fmt.media_type
        assert got["CacheControl"] == cache_control(image.content_class, policy)
        decoded = Image.open(io.BytesIO(got["Body"].read()))
        decoded.load()
        assert decoded.format is not None
        assert decoded.format.lower() == record.fmt.value
        assert decoded.size == (record.width, record.height)
        assert record.width == min(_width(record.variant), 1600)  # never upscaled
        assert record.height == record.width * 3 // 4
    assert all(a == {"batchItemFailures": []} for a in pipeline.answers)

    pipeline.s3.delete_object(Bucket=pipeline.originals, Key=KEY)
    pipeline.poll(lambda: pipeline.derived() == [])


def test_an_upload_becomes_its_variants_and_a_removal_removes_them(
    pipeline_factory: Callable[[Policy], Pipeline], policy: Policy, photo: bytes
) -> None:
    pipeline = pipeline_factory(policy)
    _upload_render_and_delete(pipeline, photo, policy)


@pytest.mark.slow
def test_the_full_standard_set_over_http(
    pipeline_factory: Callable[[Policy], Pipeline], photo: bytes
) -> None:
    pipeline = pipeline_factory(DEFAULT_POLICY)
    _upload_render_and_delete(pipeline, photo, DEFAULT_POLICY)


def test_a_poisoned_message_ends_in_the_dlq_and_the_rest_goes_on(
    pipeline_factory: Callable[[Policy], Pipeline], policy: Policy, photo: bytes
) -> None:
    pipeline = pipeline_factory(policy)
    pipeline.sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody='{"Records": [')
    pipeline.s3.put_object(Bucket=pipeline.originals, Key=KEY, Body=photo)
    manifest_key = parse_source_key(KEY).manifest_key(content_version(photo))

    pipeline.poll(lambda: pipeline.has(manifest_key))

    dead = pipeline.sqs.receive_message(QueueUrl=pipeline.dlq_url, MaxNumberOfMessages=10)
    assert [m["Body"] for m in dead.get("Messages", [])] == ['{"Records": [']
    reported = [f for a in pipeline.answers for f in a["batchItemFailures"]]
    assert len(reported) == 2  # received twice (maxReceiveCount), then moved to the DLQ
