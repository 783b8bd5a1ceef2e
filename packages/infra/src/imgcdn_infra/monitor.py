"""The probe monitor: S3 access logs -> a Lambda -> EMF -> alarms on direct and probe-like requests.

The originals and derivatives buckets deliver their server access logs to the log bucket under
`s3/` (storage.py). Each new log object notifies the monitor Lambda (`imgcdn_ops.probes`, in the
`ops` bundle), which counts the requests that came neither through CloudFront nor from the
stack's own roles (`DirectRequests`, `DirectErrors`) and the probe-like keys (`FlaggedKeys`),
per bucket, as EMF. Alarms on those two and on the monitor's own DLQ (events it gave up on)
notify the operations topic.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from imgcdn_infra.assets import BuiltAssets
from imgcdn_infra.config import InfraConfig
from imgcdn_infra.nag import LATEST_RUNTIME, acknowledge, wildcard_findings
from imgcdn_infra.permissions import lambda_role
from imgcdn_infra.pipeline import (
    LAMBDA_RUNTIME,
    function_log_group,
    lambda_architecture,
    lambda_code,
    private_queue,
)
from imgcdn_infra.storage import Storage

__all__ = ["ACCESS_LOG_PREFIX", "HANDLER", "ProbeMonitor"]

ACCESS_LOG_PREFIX = "s3/"
"""Where the buckets' server access logs land in the log bucket (storage.py)."""
HANDLER = "imgcdn_ops.probes.handler"
"""The monitor's handler inside the `ops` bundle."""
ACCOUNTS_ENV = "IMGCDN_PROBES_ACCOUNTS"
"""The handler's setting of the accounts whose roles are the stack's own (imgcdn_ops.probes)."""
METRICS_NAMESPACE = "imgcdn"
"""The EMF namespace the Lambdas write (imgcdn_aws.emf.NAMESPACE; infra may not import it)."""
PERIOD = Duration.minutes(5)
DLQ_RETENTION = Duration.days(14)
"""SQS's maximum: two weeks to notice the alarm and re-run the events."""


def _total(name: str, label: str) -> cloudwatch.IMetric:
    """The 5-minute sum of one of the monitor's EMF counters over every bucket.

    The counters carry a `Bucket` dimension; a Metrics Insights query sums every bucket's
    series, so the alarm needs no bucket name and covers a bucket added later.
    """
    return cloudwatch.MathExpression(
        # S608: a CloudWatch Metrics Insights query built from constants, not SQL on a database.
        expression=f"SELECT SUM({name}) FROM {METRICS_NAMESPACE}",  # noqa: S608
        using_metrics={},
        label=label,
        period=PERIOD,
    )


def read_logs_statements(
    log_bucket: s3.IBucket, dead_letters: sqs.IQueue
) -> list[iam.PolicyStatement]:
    """The monitor's S3 and SQS rights: read the S3 access logs (not CloudFront's), fill its DLQ.

    Lambda sends an event it gave up on to the DLQ with the function's own role.
    """
    return [
        iam.PolicyStatement(
            sid="ReadS3AccessLogs",
            actions=["s3:GetObject"],
            resources=[log_bucket.arn_for_objects(f"{ACCESS_LOG_PREFIX}*")],
        ),
        iam.PolicyStatement(
            sid="SendUnscannedEvents",
            actions=["sqs:SendMessage"],
            resources=[dead_letters.queue_arn],
        ),
    ]


class ProbeMonitor(Construct):
    """The monitor Lambda, its notification on the log bucket, and its alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        storage: Storage,
        assets: BuiltAssets,
        topic: sns.ITopic,
        dashboard: cloudwatch.Dashboard | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = config.probes
        self.log_group = function_log_group(self, "Logs", config)
        # S3 invokes the function asynchronously: Lambda retries a failed event twice (a storage
        # fault), then hands it to this queue, so no log object goes unscanned unnoticed.
        self.dead_letters = private_queue(
            self,
            "DeadLetters",
            retention_period=DLQ_RETENTION,
        )
        self.statements = read_logs_statements(storage.log_bucket, self.dead_letters)
        role = lambda_role(
            self,
            "Role",
            log_group=self.log_group,
            statements=self.statements,
            description="imgcdn probe monitor: read the buckets' S3 access logs",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description="imgcdn probe monitor: direct-to-S3 requests and probe-like keys",
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_architecture(config),
            handler=HANDLER,
            code=lambda_code(assets, "ops"),
            memory_size=settings.memory_mb,
            timeout=Duration.seconds(settings.timeout_seconds),
            reserved_concurrent_executions=settings.reserved_concurrency,
            # An IAM principal of another account is never one of the stack's own roles.
            environment={ACCOUNTS_ENV: Stack.of(self).account},
            role=role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )
        # Set on the resource rather than with `dead_letter_queue=`, which would attach a
        # second, generated policy to the role; its one statement is written out above.
        function = self.function.node.default_child
        if isinstance(function, lambda_.CfnFunction):
            function.dead_letter_config = lambda_.CfnFunction.DeadLetterConfigProperty(
                target_arn=self.dead_letters.queue_arn
            )
        storage.log_bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.function),
            s3.NotificationKeyFilter(prefix=ACCESS_LOG_PREFIX),
        )

        direct = _total("DirectRequests", "direct requests")
        direct_errors = _total("DirectErrors", "direct requests answered 4xx/5xx")
        flagged = _total("FlaggedKeys", "probe-like keys")
        self.alarms = [
            self._alarm(
                "DirectRequests",
                direct,
                settings.direct_requests_threshold,
                topic,
                "Requests reached the buckets without CloudFront or the stack's roles (expired "
                "pre-signed URLs, scanners): run `imgcdn logs scan` on the s3/ access logs, or "
                "read the monitor's log_object_scanned lines, for keys and sources.",
            ),
            self._alarm(
                "FlaggedKeys",
                flagged,
                settings.flagged_threshold,
                topic,
                "Requests with probe-like keys (path traversal, encoded separators, control "
                "characters) reached the buckets: the monitor's probe_flagged log lines name "
                "each request, its source and the reasons.",
            ),
            self._alarm(
                "Unscanned",
                self.dead_letters.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
                0,
                topic,
                "The probe monitor gave up on access log objects (S3 faults after Lambda's "
                "retries); their events wait in its DLQ: re-invoke the function with each "
                "message body once S3 is healthy.",
            ),
        ]
        if dashboard is not None:
            dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="Direct-to-S3 requests and probe-like keys (S3 access logs)",
                    left=[direct, direct_errors, flagged],
                    width=24,
                )
            )

        stack = Stack.of(self)
        acknowledge(
            role,
            wildcard_findings(stack, iam.PolicyDocument(statements=self.statements)),
            "Access log object names are generated by S3 (date, time and a random suffix) "
            "below s3/; the monitor may read any of them and nothing outside that prefix.",
        )
        acknowledge(self.function, ["AwsSolutions-L1"], LATEST_RUNTIME)

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        topic: sns.ITopic,
        description: str,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(topic))
        alarm.add_ok_action(actions.SnsAction(topic))
        return alarm
