"""cdk-nag acknowledgements: every AwsSolutions finding that stays, with the reason it stays.

cdk-nag 3 reads acknowledgements from CDK's `Validations.of(construct).acknowledge(...)` and
matches finding ids exactly, e.g. `AwsSolutions-IAM5[Resource::<Bucket.Arn>/img/acme/*]`. The
wildcard findings are therefore derived from the very statements that produce them (flattened
the way cdk-nag flattens CloudFormation references), so a new wildcard is never acknowledged by
accident: it fails synth until someone writes its reason here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from imgcdn_infra.config import InfraConfig

__all__ = ["acknowledge", "flatten_reference", "suppress_stack_findings", "wildcard_findings"]

LATEST_RUNTIME = (
    "Python 3.12 on purpose: the asset build installs cp312/abi3 wheels for this exact runtime "
    "(assets.PYTHON_VERSION); moving to a newer runtime is one change to both, tested together."
)
TENANT_PREFIXES = (
    "Object ARNs end in {class}/{tenant}/* because derivative and original keys are unbounded "
    "below a tenant's prefix (image ids, versions, variants); the wildcard never crosses a "
    "tenant boundary (R17)."
)


def _join(arg: Any) -> str:
    delimiter, items = arg
    return str(delimiter).join(flatten_reference(item) for item in items)


def _get_att(arg: Any) -> str:
    resource, attribute = arg
    return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"


def flatten_reference(value: Any) -> str:
    """A resolved CloudFormation value as cdk-nag names it in finding ids."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        for name, flatten in _INTRINSICS.items():
            if name in value:
                return flatten(value[name])
    return json.dumps(value, separators=(",", ":"))


_INTRINSICS: dict[str, Callable[[Any], str]] = {
    "Fn::Join": _join,
    "Fn::Sub": flatten_reference,
    "Fn::GetAtt": _get_att,
    "Fn::ImportValue": flatten_reference,
    "Ref": lambda arg: f"<{flatten_reference(arg)}>",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard_findings(stack: Stack, document: Any) -> list[str]:
    """The `AwsSolutions-IAM5[...]` finding ids a resolved policy document produces."""
    findings: list[str] = []
    for statement in stack.resolve(document).get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        findings += [
            f"AwsSolutions-IAM5[Action::{a}]" for a in _as_list(statement["Action"]) if "*" in a
        ]
        for resource in _as_list(statement.get("Resource", [])):
            flat = flatten_reference(resource)
            if "*" in flat:
                findings.append(f"AwsSolutions-IAM5[Resource::{flat}]")
    return list(dict.fromkeys(findings))


def acknowledge(scope: IConstruct, rule_ids: Iterable[str], reason: str) -> None:
    """Acknowledge `rule_ids` on `scope` (and everything under it) for `reason`."""
    rules = [Acknowledgment(id=rule_id, reason=reason) for rule_id in rule_ids]
    if rules:
        Validations.of(scope).acknowledge(*rules)


def _statements_document(statements: Iterable[iam.PolicyStatement]) -> iam.PolicyDocument:
    return iam.PolicyDocument(statements=list(statements))


def _role_findings(stack: Stack, role: IConstruct, statements: list[iam.PolicyStatement]) -> None:
    acknowledge(
        role,
        wildcard_findings(stack, _statements_document(statements)),
        TENANT_PREFIXES,
    )


def suppress_stack_findings(stack: Any, config: InfraConfig) -> None:
    """Acknowledge the findings of the imgcdn stack that are deliberate, each with its reason.

    `stack` is an `ImgcdnStack` (typed loosely to avoid an import cycle with the app module).
    """
    pipeline, delivery, backfill = stack.pipeline, stack.delivery, stack.backfill

    for role, statements in (
        (pipeline.function.role, pipeline.s3_statements),
        (delivery.fallback.role, delivery.s3_statements),
    ):
        _role_findings(stack, role, statements)
    for function in (pipeline.function, delivery.fallback):
        acknowledge(function, ["AwsSolutions-L1"], LATEST_RUNTIME)

    # S3 -> SQS notifications are configured by CDK's own singleton custom resource.
    for child in stack.node.children:
        if child.node.id.startswith("BucketNotificationsHandler"):
            acknowledge(
                child,
                [
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                    "service-role/AWSLambdaBasicExecutionRole]"
                ],
                "CDK's BucketNotificationsHandler (it applies the S3 -> SQS notification "
                "configuration at deploy time) ships with the basic execution role; it only "
                "writes its own logs.",
            )

    machine = backfill.state_machine
    worker_arn = flatten_reference(stack.resolve(pipeline.function.function_arn))
    acknowledge(
        machine,
        [f"AwsSolutions-IAM5[Resource::{worker_arn}:*]"],
        "Step Functions' LambdaInvoke may call any published version of the worker "
        "(function ARN + ':*'); it is still the worker and nothing else.",
    )
    acknowledge(
        machine,
        ["AwsSolutions-IAM5[Resource::*]"],
        "X-Ray (PutTraceSegments, PutTelemetryRecords, GetSampling*) and CloudWatch Logs "
        "delivery (CreateLogDelivery, ...) have no resource-level permissions.",
    )
    map_policy = machine.node.try_find_child("DistributedMapPolicy")
    if map_policy is not None:
        acknowledge(
            map_policy,
            _execution_findings(stack, map_policy),
            "A Distributed Map starts, describes and stops its own child executions; their "
            "ARNs end in a wildcard only below this state machine's name.",
        )

    distribution = delivery.distribution
    acknowledge(
        distribution,
        ["AwsSolutions-CFR1"],
        "Images are served worldwide; geo restriction is a per-business choice (add it with "
        "a WAF geo rule), not a default.",
    )
    if not config.waf.enabled:
        acknowledge(
            distribution,
            ["AwsSolutions-CFR2"],
            "WAF is optional and switched by context (waf.enabled); this deployment did not "
            "enable it. Signed URLs (R17) and Origin Shield still protect the origin.",
        )
    if config.domain is None:
        acknowledge(
            distribution,
            ["AwsSolutions-CFR4"],
            "Without a custom domain CloudFront serves *.cloudfront.net with its default "
            "certificate, whose TLS policy cannot be changed; set domain to get TLSv1.2_2021.",
        )
    if getattr(stack, "takedown", None) is not None:
        _takedown_findings(stack, stack.takedown)


def _execution_findings(stack: Stack, map_policy: IConstruct) -> list[str]:
    policy = map_policy.node.default_child
    if not isinstance(policy, iam.CfnPolicy):
        return []
    return [
        finding
        for finding in wildcard_findings(stack, policy.policy_document)
        if ":execution:" in finding
    ]


def _takedown_findings(stack: Stack, takedown: Any) -> None:
    """The takedown worker's role: tenant prefixes on the data buckets, one audit prefix."""
    audit_sid = "WriteAuditRecords"
    statements = takedown.s3_statements
    role = takedown.function.role
    _role_findings(stack, role, [s for s in statements if s.sid != audit_sid])
    acknowledge(
        role,
        wildcard_findings(stack, _statements_document(s for s in statements if s.sid == audit_sid)),
        "The takedown worker writes one new audit record per takedown under takedowns/ (keys "
        "named by date and request id); it may only put objects there, never read or delete.",
    )
    acknowledge(takedown.function, ["AwsSolutions-L1"], LATEST_RUNTIME)
