"""The takedown in the CDK app: queue + DLQ, the worker, its role, the audit bucket, the alarm."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import CfnOutput
from aws_cdk.assertions import Match, Template

from imgcdn_infra.config import (
    IAM_INLINE_POLICY_CHARS,
    ConfigError,
    _iam_policy_chars,
    load_config,
)
from imgcdn_infra.nag import flatten_reference
from imgcdn_infra.takedown import render_window_seconds, takedown_timeout_seconds

TENANTS = {"tenants": [{"name": "acme"}]}


@pytest.fixture(scope="module", params=["default", "full"])
def synth(request: pytest.FixtureRequest, synths: Any) -> Any:
    """Each test that takes `synth` runs on both configurations."""
    return getattr(synths, request.param)


@pytest.fixture(scope="module")
def template(synth: Any) -> Template:
    return Template.from_json(synth.main())


def _one(raw: dict[str, Any], kind: str, prefix: str) -> str:
    found = [k for k, v in raw["Resources"].items() if v["Type"] == kind and k.startswith(prefix)]
    assert len(found) == 1, f"expected one {kind} named {prefix}*, found {found}"
    return found[0]


def _role(raw: dict[str, Any]) -> dict[str, Any]:
    (role,) = [
        r["Properties"]
        for r in raw["Resources"].values()
        if r["Type"] == "AWS::IAM::Role"
        and r["Properties"].get("Description", "").startswith("imgcdn takedown")
    ]
    return role


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The takedown role's statements by Sid, references flattened the way cdk-nag names them."""
    (policy,) = _role(raw)["Policies"]
    return {
        s["Sid"]: {
            "effect": s["Effect"],
            "actions": sorted(_as_list(s["Action"])),
            "resources": sorted(flatten_reference(r) for r in _as_list(s["Resource"])),
            "condition": s.get("Condition"),
        }
        for s in policy["PolicyDocument"]["Statement"]
    }


# What conftest's synths configure: `full` sets the takedown section, `default` leaves it.
SETTINGS = {
    "default": {"reserved_concurrency": 2, "audit_retention_days": 2557},
    "full": {"reserved_concurrency": 3, "audit_retention_days": 3653},
}


# --- Config --------------------------------------------------------------------------------


def test_takedown_is_on_by_default_with_a_small_reservation() -> None:
    config = load_config({"imgcdn": TENANTS})
    assert config.takedown.enabled
    assert config.takedown.reserved_concurrency == 2
    assert config.takedown.audit_retention_days == 2557


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("takedown.reserved_concurrency", "1"),
        ("takedown.reserved_concurrency", "16"),
        ("takedown.audit_retention_days", "0"),
        ("takedown.audit_retention_days", "36501"),
        ("takedown.enabled", '"sometimes"'),
        ("takedown.queue_name", '"x"'),
    ],
)
def test_a_wrong_takedown_value_names_its_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"imgcdn": TENANTS, f"imgcdn:{key}": value})
    assert f"imgcdn.{key}" in str(caught.value)


def test_the_render_window_follows_the_fallbacks_timeout() -> None:
    config = load_config({"imgcdn": TENANTS, "imgcdn:fallback.timeout_seconds": "60"})
    assert render_window_seconds(config) == 65
    assert takedown_timeout_seconds(config) == 65 + 120


# --- Queue, DLQ, worker, event source ------------------------------------------------------


def test_requests_go_to_a_dlq_after_five_deliveries(template: Template, synth: Any) -> None:
    raw = synth.main()
    dlq = _one(raw, "AWS::SQS::Queue", "TakedownDeadLetters")
    timeout = raw["Resources"][_one(raw, "AWS::Lambda::Function", "TakedownWorker")]["Properties"][
        "Timeout"
    ]
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
                "maxReceiveCount": 5,
            },
            "VisibilityTimeout": 6 * timeout,
            "MessageRetentionPeriod": 4 * 86400,
            "SqsManagedSseEnabled": True,
        },
    )
    assert raw["Resources"][dlq]["Properties"] == {
        "MessageRetentionPeriod": 14 * 86400,
        "SqsManagedSseEnabled": True,
    }
    for queue in (dlq, _one(raw, "AWS::SQS::Queue", "TakedownRequests")):
        template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": queue}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                }
                            )
                        ]
                    )
                },
            },
        )


def test_the_worker_runs_the_ops_takedown_handler_with_its_environment(
    template: Template, synth: Any
) -> None:
    raw = synth.main()
    fallback_timeout = raw["Resources"][_one(raw, "AWS::Lambda::Function", "DeliveryFallback")][
        "Properties"
    ]["Timeout"]
    precompute = raw["Resources"][_one(raw, "AWS::Lambda::Function", "PipelineWorker")][
        "Properties"
    ]
    window = fallback_timeout + 5
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "imgcdn_ops.handler.takedown",
            "Runtime": "python3.12",
            "Architectures": precompute["Architectures"],
            "Timeout": window + 120,
            "MemorySize": 512,
            "ReservedConcurrentExecutions": SETTINGS[synth.name]["reserved_concurrency"],
            "LoggingConfig": {
                "LogFormat": "JSON",
                "LogGroup": {"Ref": _one(raw, "AWS::Logs::LogGroup", "TakedownLogs")},
            },
            "Environment": {
                "Variables": {
                    "IMGCDN_ORIGINALS_BUCKET": {
                        "Ref": _one(raw, "AWS::S3::Bucket", "StorageOriginals")
                    },
                    "IMGCDN_DERIVATIVES_BUCKET": {
                        "Ref": _one(raw, "AWS::S3::Bucket", "StorageDerivatives")
                    },
                    "IMGCDN_AUDIT_BUCKET": {"Ref": _one(raw, "AWS::S3::Bucket", "TakedownAudit")},
                    "IMGCDN_DISTRIBUTION_ID": {
                        "Ref": _one(raw, "AWS::CloudFront::Distribution", "DeliveryDistribution")
                    },
                    "IMGCDN_TENANTS": ",".join(synth.tenants),
                    "IMGCDN_RENDER_WINDOW_SECONDS": str(window),
                    # The same policy the other Lambdas resolve their config from.
                    "IMGCDN_POLICY": precompute["Environment"]["Variables"]["IMGCDN_POLICY"],
                }
            },
        },
    )
    # The log group keeps the configured retention, like the other Lambdas'.
    logs = raw["Resources"][_one(raw, "AWS::Logs::LogGroup", "TakedownLogs")]["Properties"]
    assert logs == raw["Resources"][_one(raw, "AWS::Logs::LogGroup", "PipelineLogs")]["Properties"]


def test_one_request_per_invocation_with_partial_failures_and_capped_concurrency(
    template: Template, synth: Any
) -> None:
    raw = synth.main()
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {
                "Fn::GetAtt": [_one(raw, "AWS::SQS::Queue", "TakedownRequests"), "Arn"]
            },
            "FunctionName": {"Ref": _one(raw, "AWS::Lambda::Function", "TakedownWorker")},
            "BatchSize": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            # Equal to the reservation: the poller never starts an invocation it would throttle.
            "ScalingConfig": {"MaximumConcurrency": SETTINGS[synth.name]["reserved_concurrency"]},
        },
    )


# --- The role: least privilege --------------------------------------------------------------


def test_the_role_erases_tenant_prefixes_invalidates_this_distribution_writes_audit(
    synth: Any,
) -> None:
    raw = synth.main()
    prefixes = [f"{cls}/{tenant}/" for tenant in synth.tenants for cls in ("img", "ugc")]

    def arn(kind: str, name: str) -> str:
        return f"<{_one(raw, kind, name)}.Arn>"

    originals = arn("AWS::S3::Bucket", "StorageOriginals")
    derivatives = arn("AWS::S3::Bucket", "StorageDerivatives")
    audit = arn("AWS::S3::Bucket", "TakedownAudit")
    distribution = _one(raw, "AWS::CloudFront::Distribution", "DeliveryDistribution")
    erase = ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject", "s3:GetObjectVersion"]
    listing = {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}}
    # This distribution's ARN only (partition and account are literals when the stack has an
    # account, references when it is environment-agnostic).
    statements = _statements(raw)
    (distribution_arn,) = statements["InvalidateDistribution"]["resources"]
    assert re.fullmatch(
        rf"arn:(aws|<AWS::Partition>):cloudfront::(\d{{12}}|<AWS::AccountId>):"
        rf"distribution/<{distribution}>",
        distribution_arn,
    ), distribution_arn

    assert statements == {
        "WriteOwnLogs": {
            "effect": "Allow",
            "actions": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "resources": [arn("AWS::Logs::LogGroup", "TakedownLogs")],
            "condition": None,
        },
        "EraseImages": {
            "effect": "Allow",
            "actions": erase,
            "resources": sorted(f"{b}/{p}*" for b in (originals, derivatives) for p in prefixes),
            "condition": None,
        },
        "ListImageVersions": {
            "effect": "Allow",
            "actions": ["s3:ListBucket", "s3:ListBucketVersions"],
            "resources": sorted([originals, derivatives]),
            "condition": listing,
        },
        "WriteAuditRecords": {
            "effect": "Allow",
            "actions": ["s3:PutObject"],
            "resources": [f"{audit}/takedowns/*"],
            "condition": None,
        },
        "InvalidateDistribution": {
            "effect": "Allow",
            "actions": ["cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"],
            "resources": [distribution_arn],
            "condition": None,
        },
        "ConsumeTakedowns": {
            "effect": "Allow",
            "actions": [
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:ReceiveMessage",
            ],
            "resources": [arn("AWS::SQS::Queue", "TakedownRequests")],
            "condition": None,
        },
    }


def test_the_role_has_no_wildcard_action_no_managed_policy_and_nothing_attached(
    synth: Any,
) -> None:
    raw = synth.main()
    role = _role(raw)
    assert "ManagedPolicyArns" not in role
    for sid, statement in _statements(raw).items():
        assert not any("*" in action for action in statement["actions"]), sid
        for resource in statement["resources"]:
            assert resource != "*", sid
            assert not resource.endswith(">/*"), (sid, resource)  # a whole bucket
    role_id = _one(raw, "AWS::IAM::Role", "TakedownRole")
    for resource in raw["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy":
            assert role_id not in json.dumps(resource["Properties"].get("Roles", []))


def _worst_case(raw: dict[str, Any], value: Any) -> Any:
    """`value` with every reference replaced by the longest text it can resolve to."""
    if isinstance(value, list):
        return [_worst_case(raw, v) for v in value]
    if not isinstance(value, dict):
        return value
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return delimiter.join(_worst_case(raw, p) for p in parts)
    if "Ref" in value:
        names = {
            "AWS::Partition": "aws-us-gov",
            "AWS::Region": "ap-southeast-2",
            "AWS::AccountId": "123456789012",
        }
        # Physical ids: a bucket name (63) is the longest a role's ARNs use by Ref; a
        # distribution id is 14 characters.
        return names.get(value["Ref"], "n" * 63)
    if "Fn::GetAtt" in value:
        kind = raw["Resources"][value["Fn::GetAtt"][0]]["Type"]
        account = "ap-southeast-2:123456789012"
        return {
            "AWS::S3::Bucket": "arn:aws-us-gov:s3:::" + "b" * 63,
            "AWS::Logs::LogGroup": f"arn:aws-us-gov:logs:{account}:log-group:{'l' * 160}:*",
            "AWS::SQS::Queue": f"arn:aws-us-gov:sqs:{account}:{'q' * 80}",
        }[kind]
    return {k: _worst_case(raw, v) for k, v in value.items()}


def test_the_tenant_quota_check_bounds_the_takedown_role(synths: Any) -> None:
    """The config's IAM budget covers this role too, for every tenant count it admits.

    The bound grows per prefix by three object ARNs and two conditions; this role holds two of
    each. The role fits the bound for one tenant (`default`) and for three (`full`), and grows
    from one to the other by no more than the bound does, so it fits for any count the config
    admits (and the config refuses every count whose bound passes IAM's limit).
    """
    sizes, bounds = [], []
    for synth in (synths.default, synths.full):
        raw = synth.main()
        policies = _worst_case(raw, _role(raw)["Policies"])
        sizes.append(len(json.dumps(policies, separators=(",", ":"))))
        bounds.append(_iam_policy_chars(synth.tenants, ("img", "ugc")))
    assert len(synths.full.tenants) > len(synths.default.tenants)
    assert sizes[0] <= bounds[0]
    assert sizes[1] <= bounds[1] <= IAM_INLINE_POLICY_CHARS
    assert sizes[1] - sizes[0] <= bounds[1] - bounds[0]


# --- The audit bucket ------------------------------------------------------------------------


def test_the_audit_bucket_is_versioned_locked_logged_and_retained(synth: Any) -> None:
    raw = synth.main()
    audit = _one(raw, "AWS::S3::Bucket", "TakedownAudit")
    resource = raw["Resources"][audit]
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"
    days = SETTINGS[synth.name]["audit_retention_days"]
    Template.from_json(raw).has_resource_properties(
        "AWS::S3::Bucket",
        {
            "ObjectLockEnabled": True,
            "ObjectLockConfiguration": {
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": days}},
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LoggingConfiguration": {
                "DestinationBucketName": {"Ref": _one(raw, "AWS::S3::Bucket", "StorageLogBucket")},
                "LogFilePrefix": "s3/audit/",
            },
            # Records leave only after their lock has run out.
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [Match.object_like({"ExpirationInDays": days, "Status": "Enabled"})]
                )
            },
        },
    )


def test_the_audit_bucket_policy_denies_removing_records_and_nothing_else(synth: Any) -> None:
    raw = synth.main()
    audit = _one(raw, "AWS::S3::Bucket", "TakedownAudit")
    (policy,) = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for r in raw["Resources"].values()
        if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": audit}
    ]
    assert all(s["Effect"] == "Deny" for s in policy)
    (removal,) = [s for s in policy if s.get("Sid") == "DenyRemovingAuditRecords"]
    assert removal["Principal"] == {"AWS": "*"}
    assert "Condition" not in removal
    assert sorted(_as_list(removal["Action"])) == [
        "s3:BypassGovernanceRetention",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
    ]
    assert flatten_reference(removal["Resource"]) == f"<{audit}.Arn>/*"
    # The other statements refuse plain HTTP and old TLS; none denies a write, or a change
    # of the policy or the lock configuration that CloudFormation itself makes.
    for statement in policy:
        if statement is removal:
            continue
        assert statement["Action"] == "s3:*"
        assert set(statement["Condition"]) <= {"Bool", "NumericLessThan"}
    denied = {a for s in policy for a in _as_list(s["Action"]) if "Condition" not in s}
    assert not denied & {
        "s3:PutObject",
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
        "s3:PutBucketObjectLockConfiguration",
    }


# --- Alarm and outputs -----------------------------------------------------------------------


def test_a_request_in_the_dlq_notifies_the_alarm_topic(template: Template, synth: Any) -> None:
    raw = synth.main()
    topic = {"Ref": _one(raw, "AWS::SNS::Topic", "OperationsAlarms")}
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [
                {
                    "Name": "QueueName",
                    "Value": {
                        "Fn::GetAtt": [
                            _one(raw, "AWS::SQS::Queue", "TakedownDeadLetters"),
                            "QueueName",
                        ]
                    },
                }
            ],
            "Statistic": "Maximum",
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0,
            "TreatMissingData": "notBreaching",
            "AlarmActions": [topic],
            "OKActions": [topic],
        },
    )


def test_outputs_name_the_takedown_queue_its_dlq_and_the_audit_bucket(
    template: Template, synth: Any
) -> None:
    raw = synth.main()
    queue = _one(raw, "AWS::SQS::Queue", "TakedownRequests")
    template.has_output("TakedownQueue", {"Value": {"Ref": queue}})
    template.has_output("TakedownQueueArn", {"Value": {"Fn::GetAtt": [queue, "Arn"]}})
    template.has_output(
        "TakedownDeadLetterQueue",
        {"Value": {"Ref": _one(raw, "AWS::SQS::Queue", "TakedownDeadLetters")}},
    )
    template.has_output(
        "AuditBucket", {"Value": {"Ref": _one(raw, "AWS::S3::Bucket", "TakedownAudit")}}
    )


# --- Switched off ------------------------------------------------------------------------------


def test_takedown_disabled_adds_nothing(tmp_path: Path, workspace: Path) -> None:
    """`takedown.enabled=false` leaves no queue, worker, audit bucket, alarm or output.

    The stack is only constructed, not synthesized: its construct tree already says it all.
    """
    from imgcdn_infra.app import ImgcdnStack, create_app
    from imgcdn_infra.cli import load_context

    context = {**load_context(workspace), "imgcdn:takedown.enabled": "false"}
    app = create_app(context, tmp_path, root=workspace, check_assets_current=False)
    (stack,) = [s for s in app.node.children if isinstance(s, ImgcdnStack)]
    assert stack.takedown is None
    assert stack.node.try_find_child("Takedown") is None
    outputs = {c.node.id for c in stack.node.children if isinstance(c, CfnOutput)}
    assert "AlarmTopic" in outputs
    assert not {o for o in outputs if o.startswith("Takedown") or o == "AuditBucket"}
