"""The opt-in scheduled drift check: a Lambda on an EventBridge schedule, its metric, two alarms.

The Lambda is `imgcdn_ops.verify.handler` from the `ops` bundle: it reads this stack's processed
template (`cloudformation:GetTemplate`) and physical ids (`ListStackResources`,
`DescribeStacks`), reads the live distribution and everything its behaviours reference with
CloudFront's Get/Describe calls, logs every difference and writes the EMF metric `imgcdn` /
`DriftedFields` (no dimension).
One alarm fires when that metric is above 0, another when the check itself fails: a broken check
must never look like "no drift".
"""

from __future__ import annotations

from typing import NamedTuple

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from imgcdn_infra.assets import BuiltAssets
from imgcdn_infra.config import InfraConfig
from imgcdn_infra.nag import LATEST_RUNTIME, acknowledge, wildcard_findings
from imgcdn_infra.operations import METRICS_NAMESPACE
from imgcdn_infra.permissions import lambda_role
from imgcdn_infra.pipeline import (
    LAMBDA_RUNTIME,
    function_log_group,
    lambda_architecture,
    lambda_code,
)

__all__ = [
    "DRIFT_METRIC",
    "HANDLER",
    "STACK_NAME_ENV",
    "DriftCheck",
    "DriftCheckStatements",
    "drift_check_statements",
]

HANDLER = "imgcdn_ops.verify.handler"
"""The scheduled check's entry point inside the `ops` bundle."""
STACK_NAME_ENV = "IMGCDN_STACK_NAME"
"""The variable the handler reads its own stack's name from (imgcdn_ops.verify.STACK_NAME_ENV)."""
DRIFT_METRIC = "DriftedFields"
"""The EMF metric the handler writes, without dimensions: fields that differ, 0 when in sync."""
ALARM_PERIOD = Duration.minutes(5)
MEMORY_MB = 512
TIMEOUT = Duration.minutes(2)
"""Room for ~40 read calls: the largest distributions (policies, Function, keys per behaviour)."""
MAX_EVENT_AGE = Duration.hours(1)
"""A run EventBridge could not deliver within an hour is left to the next scheduled one."""

WILDCARD_ONLY = (
    "cloudfront:GetKeyGroup and cloudfront:GetPublicKey have no resource types in the IAM "
    "Service Authorization Reference, so IAM accepts only Resource '*' for them; both are "
    "read-only and return public keys only."
)
REFERENCED_RESOURCES = (
    "The drift check must read whatever policy or Function the LIVE distribution references: "
    "drift can point a behaviour at one that is not in this stack, and naming only the stack's "
    "own ARNs would turn exactly that drift into AccessDenied. The wildcard stays inside this "
    "account and one resource type per action, and every action is a read."
)


class DriftCheckStatements(NamedTuple):
    """The check's role, grouped by how far IAM lets each statement be scoped."""

    own: list[iam.PolicyStatement]
    """This stack and its distribution, by ARN."""
    referenced: list[iam.PolicyStatement]
    """Policies and Functions of this account that a behaviour may reference (type wildcards)."""
    unscoped: list[iam.PolicyStatement]
    """Actions without resource types: '*' is the only resource IAM accepts."""

    @property
    def all(self) -> list[iam.PolicyStatement]:
        """Every statement, in role order."""
        return [*self.own, *self.referenced, *self.unscoped]


def drift_check_statements(
    stack: Stack, distribution: cloudfront.IDistribution
) -> DriftCheckStatements:
    """What the check may do: read this stack's template and its distribution, nothing else.

    From IAM's Service Authorization Reference for CloudFormation and CloudFront: GetTemplate,
    ListStackResources and DescribeStacks take the `stack` resource type; GetDistribution(Config)
    takes `distribution`, GetCachePolicy `cache-policy`, GetOriginRequestPolicy
    `origin-request-policy`, GetResponseHeadersPolicy `response-headers-policy`,
    DescribeFunction and GetFunction `function`; GetKeyGroup and GetPublicKey take no resource
    type at all.
    """

    def of_type(resource_type: str) -> str:
        return stack.format_arn(
            service="cloudfront", region="", resource=resource_type, resource_name="*"
        )

    return DriftCheckStatements(
        own=[
            iam.PolicyStatement(
                sid="ReadOwnStack",
                actions=[
                    "cloudformation:DescribeStacks",
                    "cloudformation:GetTemplate",
                    "cloudformation:ListStackResources",
                ],
                resources=[stack.stack_id],
            ),
            iam.PolicyStatement(
                sid="ReadDistribution",
                actions=["cloudfront:GetDistribution", "cloudfront:GetDistributionConfig"],
                resources=[distribution.distribution_arn],
            ),
        ],
        referenced=[
            iam.PolicyStatement(
                sid="ReadReferencedPolicies",
                actions=[
                    "cloudfront:GetCachePolicy",
                    "cloudfront:GetOriginRequestPolicy",
                    "cloudfront:GetResponseHeadersPolicy",
                ],
                resources=[
                    of_type("cache-policy"),
                    of_type("origin-request-policy"),
                    of_type("response-headers-policy"),
                ],
            ),
            iam.PolicyStatement(
                sid="ReadReferencedFunctions",
                actions=["cloudfront:DescribeFunction", "cloudfront:GetFunction"],
                resources=[of_type("function")],
            ),
        ],
        unscoped=[
            iam.PolicyStatement(
                sid="ReadSigningKeys",
                actions=["cloudfront:GetKeyGroup", "cloudfront:GetPublicKey"],
                resources=["*"],
            )
        ],
    )


class DriftCheck(Construct):
    """The scheduled `imgcdn verify` of this stack's distribution, with its alarms.

    Attributes:
        function: The check's Lambda (output `DriftCheckFunction`).
        rule: The EventBridge rule that runs it on `schedule`.
        alarms: `DriftDetected` (DriftedFields > 0) and `DriftCheckFailed` (Lambda errors > 0).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        schedule: str,
        assets: BuiltAssets,
        distribution: cloudfront.IDistribution,
        topic: sns.ITopic,
        dashboard: cloudwatch.Dashboard | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.log_group = function_log_group(self, "Logs", config)
        statements = drift_check_statements(stack, distribution)
        role = lambda_role(
            self,
            "Role",
            log_group=self.log_group,
            statements=statements.all,
            description="imgcdn drift check: read this stack's template and its distribution",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description="imgcdn drift check: the live distribution against this stack's template",
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_architecture(config),
            handler=HANDLER,
            code=lambda_code(assets, "ops"),
            memory_size=MEMORY_MB,
            timeout=TIMEOUT,
            environment={STACK_NAME_ENV: stack.stack_name},
            role=role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )
        self.rule = events.Rule(
            self,
            "Schedule",
            description=f"imgcdn drift check of {stack.stack_name}: {schedule}",
            schedule=events.Schedule.expression(schedule),
            targets=[
                targets.LambdaFunction(self.function, retry_attempts=2, max_event_age=MAX_EVENT_AGE)
            ],
        )
        drifted = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=DRIFT_METRIC,
            statistic="Maximum",
            period=ALARM_PERIOD,
        )
        self.alarms = [
            self._alarm(
                "DriftDetected",
                drifted,
                topic,
                f"The live CloudFront distribution differs from the {stack.stack_name} stack's "
                "template (an edit outside CloudFormation): the drift check's log lists every "
                "field. Undo the edit, or bring it into the code and deploy (an unchanged "
                "template deploys nothing).",
            ),
            self._alarm(
                "DriftCheckFailed",
                self.function.metric_errors(period=ALARM_PERIOD, statistic="Sum"),
                topic,
                "The scheduled drift check failed (error or timeout), so whether the "
                "distribution drifted is unknown: its log says why.",
            ),
        ]
        if dashboard is not None:
            dashboard.add_widgets(
                cloudwatch.AlarmStatusWidget(
                    title=f"Drift check ({schedule})", alarms=self.alarms, width=24, height=3
                )
            )
        acknowledge(self.function, ["AwsSolutions-L1"], LATEST_RUNTIME)
        for group, reason in (
            (statements.referenced, REFERENCED_RESOURCES),
            (statements.unscoped, WILDCARD_ONLY),
        ):
            acknowledge(
                role, wildcard_findings(stack, iam.PolicyDocument(statements=group)), reason
            )

    def _alarm(
        self, construct_id: str, metric: cloudwatch.IMetric, topic: sns.ITopic, description: str
    ) -> cloudwatch.Alarm:
        # IGNORE: the metrics exist only when a run happens; between runs the alarm keeps the
        # last run's verdict instead of flipping to OK (NOT_BREACHING) or INSUFFICIENT_DATA.
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(topic))
        alarm.add_ok_action(actions.SnsAction(topic))
        return alarm
