"""The probe monitor on the synthesized templates: its Lambda, notification, permissions, alarms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from imgcdn_infra.assets import workspace_root
from imgcdn_infra.cli import load_context
from imgcdn_infra.config import ConfigError, load_config

HANDLER = "imgcdn_ops.probes.handler"


@pytest.fixture(scope="module", params=["default", "full"])
def synth(request: pytest.FixtureRequest, synths: Any) -> Any:
    """Each test that takes `synth` runs on both configurations."""
    return getattr(synths, request.param)


@pytest.fixture(scope="module")
def template(synth: Any) -> Template:
    return Template.from_json(synth.main())


def _function(template: Template) -> tuple[str, dict[str, Any]]:
    (found,) = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": HANDLER}}
    ).items()
    return found


def test_the_monitor_runs_the_ops_bundle_on_the_configured_architecture(
    synth: Any, template: Template
) -> None:
    architecture = "x86_64" if synth.name == "full" else "arm64"
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": HANDLER,
            "Runtime": "python3.12",
            "Architectures": [architecture],
            "LoggingConfig": Match.object_like(
                {"LogFormat": "JSON", "LogGroup": {"Ref": Match.string_like_regexp("^ProbesLogs")}}
            ),
            "Environment": {"Variables": {"IMGCDN_PROBES_ACCOUNTS": Match.any_value()}},
        },
    )
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"RetentionInDays": 90},
    )
    _, function = _function(template)
    reserved = function["Properties"].get("ReservedConcurrentExecutions")
    assert reserved == (2 if synth.name == "full" else None)


def test_the_full_config_names_the_stack_account(synths: Any) -> None:
    _, function = _function(Template.from_json(synths.full.main()))
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["IMGCDN_PROBES_ACCOUNTS"] == "123456789012"


def test_new_access_log_objects_under_s3_notify_the_monitor(template: Template) -> None:
    template.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "BucketName": {"Ref": Match.string_like_regexp("^StorageLogBucket")},
            "NotificationConfiguration": {
                "LambdaFunctionConfigurations": [
                    {
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "s3/"}]}},
                        "LambdaFunctionArn": {
                            "Fn::GetAtt": [Match.string_like_regexp("^ProbesFunction"), "Arn"]
                        },
                    }
                ]
            },
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "Principal": "s3.amazonaws.com",
            "FunctionName": {"Fn::GetAtt": [Match.string_like_regexp("^ProbesFunction"), "Arn"]},
            "SourceArn": {"Fn::GetAtt": [Match.string_like_regexp("^StorageLogBucket"), "Arn"]},
        },
    )


def test_the_monitor_may_read_the_s3_access_logs_and_nothing_else(template: Template) -> None:
    _, function = _function(template)
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    role = template.to_json()["Resources"][role_id]
    (policy,) = role["Properties"]["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in statements] == [
        "WriteOwnLogs",
        "ReadS3AccessLogs",
        "SendUnscannedEvents",
    ]
    (send,) = [s for s in statements if s["Sid"] == "SendUnscannedEvents"]
    assert send["Action"] == "sqs:SendMessage"
    assert send["Resource"]["Fn::GetAtt"][0].startswith("ProbesDeadLetters")
    (read,) = [s for s in statements if s["Sid"] == "ReadS3AccessLogs"]
    assert read["Action"] == "s3:GetObject"
    bucket, suffix = read["Resource"]["Fn::Join"][1]
    assert bucket["Fn::GetAtt"][0].startswith("StorageLogBucket")
    assert suffix == "/s3/*"
    assert not role["Properties"].get("ManagedPolicyArns")
    # No other policy is attached to the monitor's role (CDK's grant_* would add one).
    for resource in template.find_resources("AWS::IAM::Policy").values():
        assert {"Ref": role_id} not in resource["Properties"].get("Roles", [])


def test_alarms_fire_over_the_configured_thresholds_and_notify_the_topic(
    synth: Any, template: Template
) -> None:
    direct = 25 if synth.name == "full" else 10
    topic = {"Ref": Match.string_like_regexp("^OperationsAlarms")}
    for metric, threshold in (("DirectRequests", direct), ("FlaggedKeys", 0)):
        template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "Threshold": threshold,
                "ComparisonOperator": "GreaterThanThreshold",
                "EvaluationPeriods": 1,
                "TreatMissingData": "notBreaching",
                "AlarmActions": [topic],
                "OKActions": [topic],
                "Metrics": [
                    Match.object_like(
                        # S608: a Metrics Insights query, not SQL on a database.
                        {"Expression": f"SELECT SUM({metric}) FROM imgcdn", "Period": 300}  # noqa: S608
                    )
                ],
            },
        )


def test_events_the_monitor_gives_up_on_wait_in_its_dlq_and_page(template: Template) -> None:
    dlq = {"Fn::GetAtt": [Match.string_like_regexp("^ProbesDeadLetters"), "Arn"]}
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": HANDLER, "DeadLetterConfig": {"TargetArn": dlq}},
    )
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "MessageRetentionPeriod": 14 * 24 * 3600,
            "SqsManagedSseEnabled": True,
        },
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [
                {
                    "Name": "QueueName",
                    "Value": {
                        "Fn::GetAtt": [Match.string_like_regexp("^ProbesDeadLetters"), "QueueName"]
                    },
                }
            ],
            "Threshold": 0,
            "AlarmActions": [{"Ref": Match.string_like_regexp("^OperationsAlarms")}],
        },
    )


def test_the_log_bucket_is_an_output(template: Template) -> None:
    template.has_output(
        "AccessLogBucket", {"Value": {"Ref": Match.string_like_regexp("^StorageLogBucket")}}
    )


@pytest.mark.slow
def test_a_disabled_monitor_leaves_no_function_and_no_alarm(tmp_path: Path) -> None:
    from imgcdn_infra.app import create_app

    root = workspace_root(Path(__file__).parent)
    context = {**load_context(root), "imgcdn:probes.enabled": "false"}
    app = create_app(context, tmp_path, root=root, check_assets_current=False)
    (stack,) = [s for s in app.synth().stacks if "Distribution" in str(s.template)]
    template = Template.from_json(dict(stack.template))
    assert (
        template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": HANDLER}}) == {}
    )
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert not [a for a in alarms.values() if "DirectRequests" in str(a)]
    template.has_output("AccessLogBucket", {"Value": Match.any_value()})


def test_probes_config_names_the_bad_key() -> None:
    base: dict[str, Any] = {"tenants": [{"name": "acme"}]}
    assert load_config({"imgcdn": base}).probes.enabled
    assert load_config({"imgcdn": base, "imgcdn:probes.enabled": "false"}).probes.enabled is False
    with pytest.raises(ConfigError, match=r"imgcdn\.probes\.direct_requests_threshold: .*0"):
        load_config({"imgcdn": {**base, "probes": {"direct_requests_threshold": -1}}})
    with pytest.raises(ConfigError, match=r"imgcdn\.probes\.treshold: Extra inputs"):
        load_config({"imgcdn": {**base, "probes": {"treshold": 3}}})


def test_the_infra_wiring_names_what_the_handler_reads_and_writes() -> None:
    """infra may not import the ops package, so its copies of the names are held here."""
    from imgcdn_aws.emf import NAMESPACE
    from imgcdn_infra import monitor as infra
    from imgcdn_ops import probes

    module, _, name = infra.HANDLER.rpartition(".")
    assert module == probes.__name__
    assert callable(getattr(probes, name))
    assert infra.ACCOUNTS_ENV == probes.ACCOUNTS_ENV
    assert infra.METRICS_NAMESPACE == NAMESPACE
    assert infra.ACCESS_LOG_PREFIX == "s3/"
