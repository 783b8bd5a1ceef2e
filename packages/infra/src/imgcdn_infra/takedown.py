"""Takedown, deployed: a queue (+ DLQ), the worker that erases one image per message, the audit
bucket its records land in, and an alarm on the DLQ (R10).

Each message is one request, `{"target": "TENANT/IMAGE_ID", "class": "img"|"ugc"|null,
"reason": "...", "actor": "..."}`; the worker is imgcdn_ops' `takedown` handler, the same library
function `imgcdn takedown` runs from a laptop. It deletes every version of the original and of
its derivatives, issues the wildcard invalidations, and appends an audit record under
`takedowns/` in a bucket of its own.

The audit bucket is versioned with S3 Object Lock in **governance** mode, and its bucket policy
denies `s3:DeleteObject`, `s3:DeleteObjectVersion` and `s3:BypassGovernanceRetention` to every
principal, so no role of the account can remove or overwrite a record's version while that
policy stands. Governance rather than compliance mode because compliance cannot be undone by
anyone, for the whole retention period: a record that must itself be erased (a `reason` that
names a person), or a retention set by mistake, would then need years to go, and a trial stack
in a sandbox account would leave a bucket no one can delete. Here an administrator first has to
replace the bucket policy, a management event in CloudTrail, to remove a record. Neither the
policy nor the lock configuration is denied to CloudFormation, which updates both. Lifecycle
expiry (done by S3 itself, not subject to the bucket policy) removes records once their lock
has run out: the records name people (`actor`) and are kept no longer than that.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from imgcdn_infra.assets import FUNCTIONS, BuiltAssets
from imgcdn_infra.config import InfraConfig
from imgcdn_infra.permissions import lambda_role, queue_consumer_statements, takedown_statements
from imgcdn_infra.pipeline import (
    DLQ_RETENTION,
    LAMBDA_RUNTIME,
    QUEUE_RETENTION,
    function_log_group,
    lambda_architecture,
    lambda_code,
    lambda_environment,
    private_queue,
)
from imgcdn_infra.storage import Storage, _guarded

__all__ = [
    "AUDIT_PREFIX",
    "MAX_RECEIVE_COUNT",
    "Takedown",
    "render_window_seconds",
    "takedown_timeout_seconds",
]

AUDIT_PREFIX = "takedowns/"
"""Where the library writes its records (`takedowns/YYYY/MM/DD/{id}.json`); the only key prefix
the worker may write in the audit bucket."""
MAX_RECEIVE_COUNT = 5
"""Deliveries before a request moves to the DLQ; a takedown is idempotent, so each retry
resumes what the last one left (R10: never drop a path)."""
MEMORY_MB = 512
"""Deletes, CloudFront calls and a wait: no pixels, so the smallest size that imports quickly."""
RENDER_WINDOW_MARGIN_SECONDS = 5
WORK_SECONDS = 120
"""Beyond the render window: listing and deleting every version, the invalidation calls with
their backoff on throttling, and the audit write."""
VISIBILITY_TIMEOUT_FACTOR = 6
"""AWS's rule for Lambda SQS event sources (see pipeline.py)."""


def render_window_seconds(config: InfraConfig) -> int:
    """How long a fallback render that began before the deletes may still write a derivative.

    The worker waits this long after its first pass, then deletes again, so a render that read
    the original just before it went cannot leave a derivative behind.
    """
    return config.fallback.timeout_seconds + RENDER_WINDOW_MARGIN_SECONDS


def takedown_timeout_seconds(config: InfraConfig) -> int:
    """The worker's timeout: one whole takedown, the render window included."""
    return render_window_seconds(config) + WORK_SECONDS


class Takedown(Construct):
    """The takedown queue and DLQ, the worker, its least-privilege role, the audit bucket, the
    DLQ alarm (on the stack's alarm topic)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        storage: Storage,
        assets: BuiltAssets,
        distribution: cloudfront.IDistribution,
        topic: sns.ITopic,
        replica: s3.IBucket | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = config.takedown
        self.audit = self._audit_bucket(storage, settings.audit_retention_days)

        timeout = takedown_timeout_seconds(config)
        self.dead_letters = private_queue(
            self,
            "DeadLetters",
            retention_period=DLQ_RETENTION,
        )
        self.queue = private_queue(
            self,
            "Requests",
            visibility_timeout=Duration.seconds(VISIBILITY_TIMEOUT_FACTOR * timeout),
            retention_period=QUEUE_RETENTION,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=MAX_RECEIVE_COUNT
            ),
        )

        self.log_group = function_log_group(self, "Logs", config)
        self.s3_statements = takedown_statements(
            originals=storage.originals,
            derivatives=storage.derivatives,
            prefixes=config.tenant_prefixes,
            audit=self.audit,
            audit_prefix=AUDIT_PREFIX,
            distribution_arn=distribution.distribution_arn,
            replica=replica,
        )
        role = lambda_role(
            self,
            "Role",
            log_group=self.log_group,
            statements=[
                *self.s3_statements,
                *queue_consumer_statements(self.queue, sid="ConsumeTakedowns"),
            ],
            description="imgcdn takedown: erase tenant prefixes, invalidate, write audit records",
        )
        spec = next(f for f in FUNCTIONS if f.name == "ops")
        self.function = lambda_.Function(
            self,
            "Worker",
            description="imgcdn takedown: erases one image per queued request (R10)",
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_architecture(config),
            handler=spec.handler,
            code=lambda_code(assets, spec.name),
            memory_size=MEMORY_MB,
            timeout=Duration.seconds(timeout),
            reserved_concurrent_executions=settings.reserved_concurrency,
            environment={
                **lambda_environment(storage, assets),
                "IMGCDN_AUDIT_BUCKET": self.audit.bucket_name,
                "IMGCDN_DISTRIBUTION_ID": distribution.distribution_id,
                "IMGCDN_TENANTS": ",".join(t.name for t in config.tenants),
                "IMGCDN_RENDER_WINDOW_SECONDS": str(render_window_seconds(config)),
                # S3 never replicates the deletion of a version: the replica is erased too.
                **({"IMGCDN_REPLICA_BUCKET": replica.bucket_name} if replica is not None else {}),
            },
            role=role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )
        # One request per invocation: a failed takedown is retried alone. The event source's
        # maximum concurrency equals the reservation, so the poller never starts an invocation
        # the reservation would throttle (a throttle counts as a receive, towards the DLQ).
        self.function.add_event_source_mapping(
            "RequestsSource",
            event_source_arn=self.queue.queue_arn,
            batch_size=1,
            report_batch_item_failures=True,
            max_concurrency=settings.reserved_concurrency,
        )

        self.alarm = cloudwatch.Alarm(
            self,
            "DeadLettersAlarm",
            metric=self.dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                "A takedown request failed every attempt and waits in the takedown DLQ: the "
                "image may still be stored or cached. Read the worker's logs, fix the cause, "
                "redrive the DLQ."
            ),
        )
        self.alarm.add_alarm_action(actions.SnsAction(topic))
        self.alarm.add_ok_action(actions.SnsAction(topic))

    def _audit_bucket(self, storage: Storage, retention_days: int) -> s3.Bucket:
        retention = Duration.days(retention_days)
        bucket = _guarded(
            self,
            "Audit",
            versioned=True,
            object_lock_enabled=True,
            object_lock_default_retention=s3.ObjectLockRetention.governance(retention),
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=storage.log_bucket,
            server_access_logs_prefix="s3/audit/",
            lifecycle_rules=[
                # After the lock: the current record gets a delete marker, the locked version
                # goes a day later (S3 skips a version whose lock has not run out), and then
                # the bare marker.
                s3.LifecycleRule(
                    id="expire-audit-records",
                    expiration=retention,
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="remove-expired-delete-markers", expired_object_delete_marker=True
                ),
            ],
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyRemovingAuditRecords",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=[
                    "s3:BypassGovernanceRetention",
                    "s3:DeleteObject",
                    "s3:DeleteObjectVersion",
                ],
                resources=[bucket.arn_for_objects("*")],
            )
        )
        return bucket
