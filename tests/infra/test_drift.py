"""The opt-in scheduled drift check: off in the default synth, on (rate(1 hour)) in the full one.

cdk-nag and cfn-lint run over both synths in test_checks.py, so the check's resources are held
to them too; here: the config option, the Lambda, its schedule, its role, its alarms.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from imgcdn_infra import drift
from imgcdn_infra.config import ConfigError, load_config
from imgcdn_infra.nag import flatten_reference

TENANTS = {"tenants": [{"name": "acme"}]}
CLOUDFRONT_ARN = "arn:aws:cloudfront::123456789012"  # conftest's full synth: eu-west-1, account
SCHEDULE = "rate(1 hour)"  # conftest's full synth


def _resources(raw: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in raw["Resources"].items() if v["Type"] == kind}


def _one(raw: dict[str, Any], kind: str, prefix: str) -> str:
    found = [k for k in _resources(raw, kind) if k.startswith(prefix)]
    assert len(found) == 1, f"expected one {kind} named {prefix}*, found {found}"
    return found[0]


def _flat(value: Any) -> list[str]:
    return sorted(flatten_reference(v) for v in (value if isinstance(value, list) else [value]))


@pytest.fixture(scope="module")
def full(synths: Any) -> Template:
    return Template.from_json(synths.full.main())


# --- the option -------------------------------------------------------------------------------


def test_the_check_is_off_by_default() -> None:
    assert load_config({"imgcdn": TENANTS}).verify.schedule is None


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 minute)",
        "rate(1 hour)",
        "rate(6 hours)",
        "rate(1 day)",
        "rate(30 minutes)",
        "cron(0 6 * * ? *)",
        "cron(0/15 8-18 ? * MON-FRI *)",
        "cron(30 2 L * ? 2026-2030)",
        "cron(0 9 ? * 2#1 *)",
    ],
)
def test_schedule_takes_eventbridge_rate_and_cron_expressions(expression: str) -> None:
    config = load_config({"imgcdn": TENANTS, "imgcdn:verify.schedule": expression})
    assert config.verify.schedule == expression


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("rate(1 hours)", "singular for 1"),
        ("rate(2 hour)", "plural above 1"),
        ("rate(0 minutes)", "not a rate"),
        ("rate(1 week)", "not a rate"),
        ("rate(01 hour)", "not a rate"),
        ("every hour", "not a rate"),
        ("1h", "not a rate"),
        ("cron(0 6 * * *)", "6 fields"),
        ("cron(0  6 * * ? *)", "6 fields"),
        ("cron(0 6 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 6 ? * ? *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 6 * * ? $)", "year field"),
        ("cron(0 x * * ? *)", "hours field"),
    ],
)
def test_a_bad_schedule_names_the_key_and_what_is_allowed(expression: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"imgcdn": TENANTS, "imgcdn:verify.schedule": expression})
    (line,) = [x.strip() for x in str(caught.value).splitlines()[1:]]
    assert line.startswith("imgcdn.verify.schedule: ")
    assert problem in line
    assert "allowed: an EventBridge schedule expression, rate(" in line
    assert "cron(" in line
    assert "null to turn the check off" in line
    assert line.endswith(f"(got {expression!r})")


def test_unknown_keys_under_verify_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"imgcdn\.verify\.interval"):
        load_config({"imgcdn": {**TENANTS, "verify": {"interval": "1h"}}})


# --- off: nothing of it is synthesized --------------------------------------------------------


def test_the_default_synth_has_no_drift_check(synths: Any) -> None:
    raw = synths.default.main()
    assert not [
        k
        for k, v in _resources(raw, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == drift.HANDLER
    ]
    assert not [
        k
        for k, v in _resources(raw, "AWS::Events::Rule").items()
        if "drift" in v["Properties"].get("Description", "")
    ]
    assert not [k for k in raw["Resources"] if k.startswith("DriftCheck")]
    assert "DriftCheckFunction" not in raw.get("Outputs", {})


# --- on: the Lambda, the schedule, the role, the alarms ---------------------------------------


def test_the_check_runs_the_verify_handler_from_the_ops_bundle(
    synths: Any, full: Template, assets_dir: Path
) -> None:
    raw = synths.full.main()
    logs = _one(raw, "AWS::Logs::LogGroup", "DriftCheckLogs")
    full.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "imgcdn_ops.verify.handler",
            # Exactly as the precompute worker: runtime, the configured architecture, JSON logs
            # to its own log group (no X-Ray tracing, like every other Lambda here).
            "Runtime": "python3.12",
            "Architectures": ["x86_64"],
            "LoggingConfig": {"LogFormat": "JSON", "LogGroup": {"Ref": logs}},
            "TracingConfig": Match.absent(),
            "Environment": {"Variables": {"IMGCDN_STACK_NAME": "ImgcdnFull"}},
            "Timeout": 120,
            "Role": {"Fn::GetAtt": [Match.string_like_regexp("^DriftCheckRole"), "Arn"]},
        },
    )
    full.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 90})
    assert raw["Resources"][logs]["Properties"]["RetentionInDays"] == 90
    # The code is the `ops` bundle, and the handler is there, by that name.
    (function,) = [
        v
        for v in _resources(raw, "AWS::Lambda::Function").values()
        if v["Properties"]["Handler"] == drift.HANDLER
    ]
    key = function["Properties"]["Code"]["S3Key"]
    manifest = json.loads((synths.full.outdir / "ImgcdnFull.assets.json").read_text("utf-8"))
    (path,) = [
        asset["source"]["path"]
        for asset in manifest["files"].values()
        if any(d["objectKey"] == key for d in asset["destinations"].values())
    ]
    staged = synths.full.outdir / path
    source = (staged / "imgcdn_ops" / "verify.py").read_text("utf-8")
    assert "\ndef handler(" in source
    assert source == (assets_dir / "x86_64" / "ops" / "imgcdn_ops" / "verify.py").read_text("utf-8")


def test_infra_names_what_the_handler_reads_and_writes() -> None:
    """infra may not import imgcdn_ops; the two sides of the contract are held equal here."""
    from imgcdn_aws.emf import NAMESPACE
    from imgcdn_infra.operations import METRICS_NAMESPACE
    from imgcdn_ops import verify

    assert f"{verify.__name__}.{verify.handler.__name__}" == drift.HANDLER
    assert drift.STACK_NAME_ENV == verify.STACK_NAME_ENV
    assert drift.DRIFT_METRIC == verify.METRIC
    assert METRICS_NAMESPACE == NAMESPACE


def test_an_eventbridge_rule_runs_the_check_on_the_schedule(synths: Any, full: Template) -> None:
    raw = synths.full.main()
    function = _one(raw, "AWS::Lambda::Function", "DriftCheckFunction")
    rule = _one(raw, "AWS::Events::Rule", "DriftCheckSchedule")
    full.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": SCHEDULE,
            "State": "ENABLED",
            "Targets": [
                {
                    "Arn": {"Fn::GetAtt": [function, "Arn"]},
                    "Id": Match.any_value(),
                    "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
                }
            ],
        },
    )
    full.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [function, "Arn"]},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [rule, "Arn"]},
        },
    )
    assert raw["Outputs"]["DriftCheckFunction"]["Value"] == {"Ref": function}


def _statements(raw: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    (role,) = [
        r["Properties"]
        for r in _resources(raw, "AWS::IAM::Role").values()
        if r["Properties"].get("Description", "").startswith("imgcdn drift check")
    ]
    assert role.get("ManagedPolicyArns") is None
    (policy,) = role["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    assert all(s["Effect"] == "Allow" and "Condition" not in s for s in statements)
    return {
        s["Sid"]: {"actions": _flat(s["Action"]), "resources": _flat(s["Resource"])}
        for s in statements
    }


def test_the_role_reads_this_stack_and_its_distribution_and_nothing_else(
    synths: Any, full: Template
) -> None:
    raw = synths.full.main()
    logs = _one(raw, "AWS::Logs::LogGroup", "DriftCheckLogs")
    distribution = _one(raw, "AWS::CloudFront::Distribution", "DeliveryDistribution")
    cloudfront = CLOUDFRONT_ARN
    assert _statements(raw) == {
        "WriteOwnLogs": {
            "actions": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "resources": [f"<{logs}.Arn>"],
        },
        "ReadOwnStack": {
            "actions": [
                "cloudformation:DescribeStacks",
                "cloudformation:GetTemplate",
                "cloudformation:ListStackResources",
            ],
            "resources": ["<AWS::StackId>"],
        },
        "ReadDistribution": {
            "actions": ["cloudfront:GetDistribution", "cloudfront:GetDistributionConfig"],
            "resources": [f"{cloudfront}:distribution/<{distribution}>"],
        },
        # Resource-level permissions exist for these: the ARN pins the resource type and this
        # account (the wildcard is the id, since drift may reference a policy not in the stack).
        "ReadReferencedPolicies": {
            "actions": [
                "cloudfront:GetCachePolicy",
                "cloudfront:GetOriginRequestPolicy",
                "cloudfront:GetResponseHeadersPolicy",
            ],
            "resources": [
                f"{cloudfront}:cache-policy/*",
                f"{cloudfront}:origin-request-policy/*",
                f"{cloudfront}:response-headers-policy/*",
            ],
        },
        "ReadReferencedFunctions": {
            "actions": ["cloudfront:DescribeFunction", "cloudfront:GetFunction"],
            "resources": [f"{cloudfront}:function/*"],
        },
        # No resource types exist for these two in IAM: '*' is the only choice.
        "ReadSigningKeys": {
            "actions": ["cloudfront:GetKeyGroup", "cloudfront:GetPublicKey"],
            "resources": ["*"],
        },
    }


def test_only_the_roles_own_wildcards_are_acknowledged_each_with_its_reason(synths: Any) -> None:
    from aws_cdk import Validations

    app = synths.full.app
    (role,) = [
        c
        for c in app.node.find_all()
        if c.node.path.endswith("/DriftCheck/Role") and c.node.default_child is not None
    ]
    acknowledged: dict[str, str] = {}
    for entry in role.node.metadata:
        if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
            # CDK keeps ids without a known prefix as annotation ids; cdk-nag strips it too.
            acknowledged.update(
                {re.sub(r"(?i)^annotation::", "", k): v for k, v in entry.data.items()}
            )
    cloudfront = CLOUDFRONT_ARN
    referenced = [
        f"AwsSolutions-IAM5[Resource::{cloudfront}:{kind}/*]"
        for kind in ("cache-policy", "origin-request-policy", "response-headers-policy", "function")
    ]
    assert sorted(acknowledged) == sorted([*referenced, "AwsSolutions-IAM5[Resource::*]"])
    assert all(acknowledged[r] == drift.REFERENCED_RESOURCES for r in referenced)
    assert acknowledged["AwsSolutions-IAM5[Resource::*]"] == drift.WILDCARD_ONLY


def _check_alarm(full: Template, metric: dict[str, Any]) -> None:
    topic = {"Ref": Match.string_like_regexp("^OperationsAlarms")}
    full.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            **metric,
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            # An hourly metric is missing between runs: keep the last verdict, never flip to OK.
            "TreatMissingData": "ignore",
            "AlarmActions": [topic],
            "OKActions": [topic],
        },
    )


def test_an_alarm_fires_when_any_field_drifted(full: Template) -> None:
    _check_alarm(
        full,
        {
            "Namespace": "imgcdn",
            "MetricName": "DriftedFields",
            "Dimensions": Match.absent(),  # the handler writes it without dimensions
            "Statistic": "Maximum",
        },
    )


def test_an_alarm_fires_when_the_check_itself_fails(synths: Any, full: Template) -> None:
    function = _one(synths.full.main(), "AWS::Lambda::Function", "DriftCheckFunction")
    _check_alarm(
        full,
        {
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function}}],
            "Statistic": "Sum",
        },
    )


def test_the_dashboard_shows_both_alarms(synths: Any) -> None:
    raw = synths.full.main()
    (dashboard,) = _resources(raw, "AWS::CloudWatch::Dashboard").values()
    body = str(dashboard["Properties"]["DashboardBody"])
    for alarm in ("DriftCheckDriftDetected", "DriftCheckDriftCheckFailed"):
        assert _one(raw, "AWS::CloudWatch::Alarm", alarm) in body
    assert f"Drift check ({SCHEDULE})" in body
