"""Region loss, stale content and the alarms that say whether it works (issue 16, parts 3-4)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from imgcdn_infra.config import ConfigError, load_config

TENANTS = {"tenants": [{"name": "acme"}]}


def _stack(synth: Any, suffix: str) -> Template:
    name = next(n for n in synth.templates if n.endswith(suffix))
    return Template.from_json(synth.templates[name])


@pytest.fixture(scope="module")
def default(synths: Any) -> Template:
    return Template.from_json(synths.default.main())


@pytest.fixture(scope="module")
def full(synths: Any) -> Template:
    return Template.from_json(synths.full.main())


@pytest.fixture(scope="module")
def edge_alarms(synths: Any) -> Template:
    return _stack(synths.full, "-EdgeAlarms")


@pytest.fixture(scope="module")
def replica(synths: Any) -> Template:
    return _stack(synths.full, "-Replica")


def _alarm(template: Template, metric: dict[str, Any], topic: str, **extra: Any) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            **metric,
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": Match.string_like_regexp(topic)}],
            "OKActions": [{"Ref": Match.string_like_regexp(topic)}],
            **extra,
        },
    )


def _cloudfront_metric(name: str, distribution: Any) -> dict[str, Any]:
    return {
        "Namespace": "AWS/CloudFront",
        "MetricName": name,
        "Statistic": "Average",
        "Period": 300,
        "Dimensions": Match.array_with(
            [
                {"Name": "DistributionId", "Value": distribution},
                {"Name": "Region", "Value": "Global"},
            ]
        ),
    }


# --- Alarms ---------------------------------------------------------------------------------


def test_viewer_5xx_rate_alarm_lives_beside_the_distribution_in_us_east_1(
    default: Template,
) -> None:
    """The default synth targets us-east-1: the alarm is in the stack, on its one topic."""
    _alarm(
        default,
        _cloudfront_metric(
            "5xxErrorRate", {"Ref": Match.string_like_regexp("^DeliveryDistribution")}
        ),
        "^OperationsAlarms",
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
        EvaluationPeriods=1,
    )


def test_cache_hit_ratio_is_opt_in_because_it_is_priced(default: Template, full: Template) -> None:
    default.resource_count_is("AWS::CloudFront::MonitoringSubscription", 0)
    assert not default.find_resources(
        "AWS::CloudWatch::Alarm", {"Properties": {"MetricName": "CacheHitRate"}}
    )
    full.has_resource_properties(
        "AWS::CloudFront::MonitoringSubscription",
        {
            "DistributionId": {"Ref": Match.string_like_regexp("^DeliveryDistribution")},
            "MonitoringSubscription": {
                "RealtimeMetricsSubscriptionConfig": {
                    "RealtimeMetricsSubscriptionStatus": "Enabled"
                }
            },
        },
    )


def test_outside_us_east_1_the_cloudfront_alarms_get_their_own_stack_and_topic(
    synths: Any, full: Template, edge_alarms: Template
) -> None:
    """An alarm can only watch (and notify) in its own Region: CloudFront's is us-east-1."""
    name = next(n for n in synths.full.templates if n.endswith("-EdgeAlarms"))
    stack = next(s for s in synths.full.app.node.children if getattr(s, "stack_name", "") == name)
    assert stack.region == "us-east-1"
    assert not full.find_resources(
        "AWS::CloudWatch::Alarm", {"Properties": {"Namespace": "AWS/CloudFront"}}
    )
    # The distribution id crosses Regions as the distribution stack's output.
    distribution = {
        "Fn::GetStackOutput": Match.object_like({"StackName": "ImgcdnFull", "Region": "eu-west-1"})
    }
    _alarm(
        edge_alarms,
        _cloudfront_metric("5xxErrorRate", distribution),
        "^Alarms",
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    _alarm(
        edge_alarms,
        _cloudfront_metric("CacheHitRate", distribution),
        "^Alarms",
        Threshold=80,
        ComparisonOperator="LessThanThreshold",
        EvaluationPeriods=3,
        DatapointsToAlarm=3,
    )
    edge_alarms.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@acme.example"}
    )
    edge_alarms.has_output("AlarmTopic", {"Value": {"Ref": Match.string_like_regexp("^Alarms")}})


def test_fallback_p99_duration_alarm_is_derived_from_its_timeout(
    default: Template, full: Template
) -> None:
    for template, timeout_s in ((default, 30), (full, 60)):
        _alarm(
            template,
            {
                "Namespace": "AWS/Lambda",
                "MetricName": "Duration",
                "ExtendedStatistic": "p99",
                "Dimensions": [
                    {
                        "Name": "FunctionName",
                        "Value": {"Ref": Match.string_like_regexp("^DeliveryFallback")},
                    }
                ],
            },
            "^OperationsAlarms",
            Threshold=timeout_s * 1000 * 0.8,
            ComparisonOperator="GreaterThanThreshold",
        )


def test_backlog_age_alarm_watches_the_oldest_upload(default: Template, full: Template) -> None:
    # One visibility timeout: 6 x the worker's timeout + the batching window.
    for template, threshold in ((default, 6 * 300), (full, 6 * 240 + 10)):
        _alarm(
            template,
            {
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Statistic": "Maximum",
                "Period": 60,
                "Dimensions": [
                    {
                        "Name": "QueueName",
                        "Value": {
                            "Fn::GetAtt": [
                                Match.string_like_regexp("^PipelineUploads"),
                                "QueueName",
                            ]
                        },
                    }
                ],
            },
            "^OperationsAlarms",
            Threshold=threshold,
            ComparisonOperator="GreaterThanThreshold",
            EvaluationPeriods=5,
        )


def test_dlq_depth_and_fallback_error_rate_alarms_notify_the_topic(default: Template) -> None:
    _alarm(
        default,
        {"MetricName": "ApproximateNumberOfMessagesVisible", "Namespace": "AWS/SQS"},
        "^OperationsAlarms",
        Threshold=0,
    )
    _alarm(
        default,
        {
            "Metrics": Match.array_with(
                [Match.object_like({"Expression": "IF(requests > 0, 100 * errors / requests, 0)"})]
            )
        },
        "^OperationsAlarms",
        Threshold=1,
    )


# --- Replication ------------------------------------------------------------------------------


def _originals(template: Template) -> dict[str, Any]:
    found = template.find_resources(
        "AWS::S3::Bucket", {"Properties": {"VersioningConfiguration": {"Status": "Enabled"}}}
    )
    originals = [v for k, v in found.items() if k.startswith("StorageOriginals")]
    assert len(originals) == 1
    return dict(originals[0]["Properties"])


def test_without_replication_nothing_is_replicated(synths: Any, default: Template) -> None:
    assert "ReplicationConfiguration" not in _originals(default)
    assert not any(n.endswith("-Replica") for n in synths.default.templates)
    assert "ReplicaBucket" not in default.find_outputs("*")


def test_the_replica_is_a_versioned_private_encrypted_bucket_in_the_other_region(
    synths: Any, replica: Template
) -> None:
    name = next(n for n in synths.full.templates if n.endswith("-Replica"))
    stack = next(s for s in synths.full.app.node.children if getattr(s, "stack_name", "") == name)
    assert stack.region == "eu-central-1"
    replica.has_resource(
        "AWS::S3::Bucket",
        {
            "Properties": Match.object_like(
                {
                    "BucketName": Match.any_value(),
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
                    "LoggingConfiguration": Match.any_value(),
                    # Lifecycle actions are not replicated: the replica has its own.
                    "LifecycleConfiguration": {
                        "Rules": Match.array_with(
                            [
                                Match.object_like(
                                    {
                                        "Id": "expire-noncurrent-originals",
                                        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                                    }
                                )
                            ]
                        )
                    },
                }
            ),
            "DeletionPolicy": "Retain",
        },
    )
    replica.has_output(
        "ReplicaBucket", {"Value": {"Ref": Match.string_like_regexp("^OriginalsReplica")}}
    )


def test_originals_replicate_every_version_and_delete_markers(full: Template) -> None:
    config = _originals(full)["ReplicationConfiguration"]
    role, attribute = config["Role"]["Fn::GetAtt"]
    assert (role.startswith("ReplicationRole"), attribute) == (True, "Arn")
    [rule] = config["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["Filter"] == {"Prefix": ""}
    # On purpose: a plain delete hides the object in the replica too (see replication.py).
    assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
    destination = rule["Destination"]
    assert destination["StorageClass"] == "STANDARD_IA"
    # The name is built in both stacks from the config and each stack's own account id: no
    # lookup across Regions at deploy time.
    name = {
        "Fn::Join": [
            "-",
            [
                Match.string_like_regexp("^imgcdnfull-[0-9a-f]{6}$"),
                {"Ref": "AWS::AccountId"},
                "eu-central-1",
            ],
        ]
    }
    full.has_output("ReplicaBucket", {"Value": name})
    assert "Fn::GetStackOutput" not in json.dumps(destination["Bucket"])
    assert "eu-central-1" in json.dumps(destination["Bucket"])


def test_the_replication_role_may_only_replicate(full: Template) -> None:
    full.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    Match.object_like({"Principal": {"Service": "s3.amazonaws.com"}}),
                ],
                "Version": Match.any_value(),
            },
        },
    )
    full.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": Match.string_like_regexp("^ReplicationRole")}],
            "PolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {
                            "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
                            "Resource": {
                                "Fn::GetAtt": [
                                    Match.string_like_regexp("^StorageOriginals"),
                                    "Arn",
                                ]
                            },
                        }
                    ),
                    Match.object_like(
                        {
                            "Action": [
                                "s3:GetObjectVersionAcl",
                                "s3:GetObjectVersionForReplication",
                                "s3:GetObjectVersionTagging",
                            ]
                        }
                    ),
                    Match.object_like(
                        {
                            "Action": [
                                "s3:ReplicateDelete",
                                "s3:ReplicateObject",
                                "s3:ReplicateTags",
                            ]
                        }
                    ),
                ],
                "Version": Match.any_value(),
            },
        },
    )


# --- Config -----------------------------------------------------------------------------------


def test_alarm_thresholds_default_from_the_timeouts() -> None:
    config = load_config({"imgcdn": TENANTS})
    assert config.fallback_p99_threshold_ms == 24_000
    assert config.backlog_age_threshold_seconds == config.precompute.visibility_timeout_seconds
    set_ = load_config(
        {
            "imgcdn": TENANTS,
            "imgcdn:alarms.fallback_p99_ms": "5000",
            "imgcdn:alarms.backlog_age_seconds": "600",
        }
    )
    assert (set_.fallback_p99_threshold_ms, set_.backlog_age_threshold_seconds) == (5000, 600)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"imgcdn:alarms.fallback_p99_ms": "30000"},
            "alarms.fallback_p99_ms: 30000 ms can never be passed",
        ),
        ({"imgcdn:alarms.backlog_age_seconds": "10"}, "imgcdn.alarms.backlog_age_seconds"),
        ({"imgcdn:alarms.cache_hit_ratio_percent": "100"}, "alarms.cache_hit_ratio_percent"),
        (
            {"imgcdn:region": "eu-west-1", "imgcdn:replication": '{"region": "eu-west-1"}'},
            "replication.region: eu-west-1 is the deployment's own Region",
        ),
        ({"imgcdn:replication": '{"region": "mars"}'}, "imgcdn.replication.region"),
        (
            {"imgcdn:replication": '{"region": "eu-west-1", "storage_class": "GLACIER"}'},
            "imgcdn.replication.storage_class",
        ),
    ],
)
def test_bad_resilience_settings_name_the_key(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"imgcdn": TENANTS, **overrides})
    assert message in str(caught.value)
    assert "Traceback" not in str(caught.value)
