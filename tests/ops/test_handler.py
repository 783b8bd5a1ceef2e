"""The takedown Lambda and `--submit`, against moto's S3, SQS and CloudFront."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from imgcdn_ops import handler as handler_module
from imgcore.cli import main
from imgcore.keys import ImageRef, content_version

BUCKETS = {"originals": "t-originals", "derivatives": "t-derivatives", "audit": "t-audit"}


def _distribution(client: Any) -> str:
    origin = {
        "Id": "o",
        "DomainName": "b.s3.amazonaws.com",
        "S3OriginConfig": {"OriginAccessIdentity": ""},
    }
    created = client.create_distribution(
        DistributionConfig={
            "CallerReference": "imgcdn-test",
            "Comment": "",
            "Enabled": True,
            "Origins": {"Quantity": 1, "Items": [origin]},
            "DefaultCacheBehavior": {
                "TargetOriginId": "o",
                "ViewerProtocolPolicy": "https-only",
                "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                "TrustedSigners": {"Enabled": False, "Quantity": 0},
            },
        }
    )
    return str(created["Distribution"]["Id"])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in BUCKETS.values():
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        distribution = _distribution(boto3.client("cloudfront", region_name="us-east-1"))
        for name, value in {
            "IMGCDN_ORIGINALS_BUCKET": BUCKETS["originals"],
            "IMGCDN_DERIVATIVES_BUCKET": BUCKETS["derivatives"],
            "IMGCDN_AUDIT_BUCKET": BUCKETS["audit"],
            "IMGCDN_DISTRIBUTION_ID": distribution,
            "IMGCDN_TENANTS": "acme,beta",
            "IMGCDN_RENDER_WINDOW_SECONDS": "0",
        }.items():
            monkeypatch.setenv(name, value)
        handler_module.deployment.cache_clear()
        yield {"s3": s3, "distribution": distribution}
        handler_module.deployment.cache_clear()


def _record(body: str, message_id: str = "m-1") -> dict[str, Any]:
    return {"messageId": message_id, "body": body, "eventSource": "aws:sqs"}


def test_one_message_one_takedown(aws: dict[str, Any]) -> None:
    s3 = aws["s3"]
    image = ImageRef("acme", "shoe")
    s3.put_object(Bucket=BUCKETS["originals"], Key=image.source_key, Body=b"v1")
    key = image.version_prefix(content_version(b"v1")) + "w160-q80.jpeg"
    s3.put_object(Bucket=BUCKETS["derivatives"], Key=key, Body=b"d")
    body = json.dumps({"target": "acme/shoe", "class": "img", "reason": "DMCA 1", "actor": "bot"})
    answer = handler_module.takedown({"Records": [_record(body)]}, None)
    assert answer == {"batchItemFailures": []}
    for bucket in ("originals", "derivatives"):
        listed = s3.list_object_versions(Bucket=BUCKETS[bucket])
        assert listed.get("Versions", []) == []
        assert listed.get("DeleteMarkers", []) == []
    audits = s3.list_objects_v2(Bucket=BUCKETS["audit"])["Contents"]
    record = json.loads(s3.get_object(Bucket=BUCKETS["audit"], Key=audits[0]["Key"])["Body"].read())
    assert record["actor"] == "bot"
    invalidations = boto3.client("cloudfront", region_name="us-east-1").list_invalidations(
        DistributionId=aws["distribution"]
    )["InvalidationList"]
    assert invalidations["Quantity"] == 2  # at once, and after the render window (img)
    assert {i["id"] for i in record["invalidations"]} == {i["Id"] for i in invalidations["Items"]}


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps(["acme/shoe"]),
        json.dumps({"target": "acme/shoe", "reason": "r"}),
        json.dumps({"target": "zeta/shoe", "reason": "r", "actor": "a"}),
        json.dumps({"target": "acme/shoe", "class": "gif", "reason": "r", "actor": "a"}),
    ],
)
def test_a_message_that_can_never_succeed_is_dropped_not_retried(
    aws: dict[str, Any], body: str
) -> None:
    aws["s3"].put_object(Bucket=BUCKETS["originals"], Key="img/acme/shoe", Body=b"keep")
    answer = handler_module.takedown({"Records": [_record(body)]}, None)
    assert answer == {"batchItemFailures": []}
    assert aws["s3"].head_object(Bucket=BUCKETS["originals"], Key="img/acme/shoe")


def test_a_fault_is_retried_by_sqs(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGCDN_DISTRIBUTION_ID", "E-NOT-THERE")
    handler_module.deployment.cache_clear()
    body = json.dumps({"target": "acme/shoe", "reason": "r", "actor": "a"})
    answer = handler_module.takedown({"Records": [_record(body, "m-9")]}, None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-9"}]}


def test_submit_puts_the_lambdas_message_on_the_queue(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="takedowns")["QueueUrl"]
    status = main(
        [
            "takedown",
            "acme/shoes/red",
            "--class",
            "ugc",
            "--reason",
            "DMCA 7",
            "--actor",
            "legal",
            "--submit",
            "--queue-url",
            url,
            "--json",
        ]
    )
    assert status == 0
    assert json.loads(capsys.readouterr().out)["submitted"][0]["target"] == "acme/shoes/red"
    message = sqs.receive_message(QueueUrl=url)["Messages"][0]
    assert handler_module.parse_message(message["Body"]) == {
        "target": "acme/shoes/red",
        "class": "ugc",
        "reason": "DMCA 7",
        "actor": "legal",
    }


def _stack(aws: dict[str, Any]) -> None:
    """A stack with the outputs of an imgcdn stack (its takedown queue made by the stack)."""
    outputs: dict[str, Any] = {
        "OriginalsBucket": BUCKETS["originals"],
        "DerivativesBucket": BUCKETS["derivatives"],
        "AuditBucket": BUCKETS["audit"],
        "DistributionId": aws["distribution"],
        "TakedownQueue": {"Ref": "Takedowns"},
    }
    template = {
        "Resources": {"Takedowns": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName="imgcdn", TemplateBody=json.dumps(template)
    )


def test_the_command_finds_a_deployed_stack_by_its_outputs(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("IMGCDN_ORIGINALS_BUCKET", "IMGCDN_DERIVATIVES_BUCKET", "IMGCDN_AUDIT_BUCKET"):
        monkeypatch.delenv(name)
    _stack(aws)
    aws["s3"].put_object(Bucket=BUCKETS["originals"], Key="ugc/acme/cat", Body=b"c")
    common = ["--reason", "GDPR erasure 5", "--actor", "privacy", "--stack", "imgcdn", "--json"]
    assert main(["takedown", "acme/cat", "--class", "ugc", "--render-window", "0", *common]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["complete"]
    assert [d["key"] for c in record["deleted"] for d in c["originals"]] == ["ugc/acme/cat"]
    assert aws["s3"].list_object_versions(Bucket=BUCKETS["originals"]).get("Versions", []) == []
    assert main(["takedown", "acme/dog", "--submit", *common]) == 0
    assert json.loads(capsys.readouterr().out)["submitted"][0]["target"] == "acme/dog"
    assert main(["takedown", "acme/cat", "--stack", "nope", "--reason", "r", "--actor", "a"]) == 2
    assert "cannot read stack 'nope'" in capsys.readouterr().err
