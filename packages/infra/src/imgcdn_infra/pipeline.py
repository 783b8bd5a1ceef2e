"""Upload to derivatives: S3 events -> SQS (with a DLQ) -> the precompute worker (R18)."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import AssetHashType, Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from imgcdn_infra.assets import FUNCTIONS, BuiltAssets
from imgcdn_infra.config import InfraConfig
from imgcdn_infra.permissions import lambda_role, precompute_statements, queue_consumer_statements
from imgcdn_infra.storage import Storage

__all__ = [
    "LAMBDA_RUNTIME",
    "Pipeline",
    "lambda_architecture",
    "lambda_code",
    "lambda_environment",
    "log_retention",
]

LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_12
"""Must match `assets.PYTHON_VERSION`: the wheels in the assets are chosen for it."""
DLQ_RETENTION = Duration.days(14)
"""SQS's maximum: two weeks to notice the alarm and redrive."""
QUEUE_RETENTION = Duration.days(4)
"""Shorter than the DLQ's, as AWS advises: a message's age carries over when it moves to the
DLQ, so a DLQ that kept messages no longer than the source could drop one on arrival."""
_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def log_retention(days: int) -> logs.RetentionDays:
    """The `RetentionDays` member for a validated number of days."""
    return _RETENTION[days]


def function_log_group(scope: Construct, construct_id: str, config: InfraConfig) -> logs.LogGroup:
    """A function's own log group: the configured retention, removed with the stack (logs are
    not user data, unlike the buckets)."""
    return logs.LogGroup(
        scope,
        construct_id,
        retention=log_retention(config.retention.log_days),
        removal_policy=RemovalPolicy.DESTROY,
    )


def private_queue(scope: Construct, construct_id: str, **props: Any) -> sqs.Queue:
    """A queue of the stack: encrypted at rest (SSE-SQS) and refusing requests without TLS."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        **props,
    )


def lambda_code(assets: BuiltAssets, name: str) -> lambda_.Code:
    """A function's built code; its fingerprint is the asset hash (no re-hashing of ~70 MB)."""
    return lambda_.Code.from_asset(
        str(assets.code[name]),
        asset_hash=assets.fingerprints[name],
        asset_hash_type=AssetHashType.CUSTOM,
    )


def lambda_environment(storage: Storage, assets: BuiltAssets) -> dict[str, str]:
    """The environment both handlers resolve their config from, once, at cold start."""
    return {
        "IMGCDN_ORIGINALS_BUCKET": storage.originals.bucket_name,
        "IMGCDN_DERIVATIVES_BUCKET": storage.derivatives.bucket_name,
        "IMGCDN_POLICY": json.dumps(assets.policy, sort_keys=True, separators=(",", ":")),
    }


class Pipeline(Construct):
    """The queue, its DLQ, the worker and the notifications that feed it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        storage: Storage,
        assets: BuiltAssets,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = config.precompute
        self.dead_letters = private_queue(
            self,
            "DeadLetters",
            retention_period=DLQ_RETENTION,
        )
        # Visibility timeout = 6 x the function timeout (+ the batching window): AWS's rule for
        # Lambda SQS event sources, so a batch being retried after a throttle is never handed to
        # a second worker while the first may still be running it.
        self.queue = private_queue(
            self,
            "Uploads",
            visibility_timeout=Duration.seconds(settings.visibility_timeout_seconds),
            retention_period=QUEUE_RETENTION,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=settings.max_receive_count
            ),
        )
        # Lifecycle expirations (e.g. retention.originals_noncurrent_days) are not ObjectRemoved
        # events; precompute treats `LifecycleExpiration:*` as a removal like any other.
        removals = (s3.EventType.OBJECT_REMOVED, s3.EventType.LIFECYCLE_EXPIRATION)
        for prefix in config.prefixes:
            for event in (s3.EventType.OBJECT_CREATED, *removals):
                storage.originals.add_event_notification(
                    event,
                    s3n.SqsDestination(self.queue),
                    s3.NotificationKeyFilter(prefix=prefix + "/"),
                )

        self.log_group = function_log_group(self, "Logs", config)
        self.s3_statements = precompute_statements(
            storage.originals, storage.derivatives, config.tenant_prefixes
        )
        role = lambda_role(
            self,
            "Role",
            log_group=self.log_group,
            statements=[*self.s3_statements, *queue_consumer_statements(self.queue)],
            description="imgcdn precompute: read originals, own derivatives (tenant prefixes)",
        )
        spec = next(f for f in FUNCTIONS if f.name == "precompute")
        self.function = lambda_.Function(
            self,
            "Worker",
            description="imgcdn precompute: renders the standard variants of each upload",
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_architecture(config),
            handler=spec.handler,
            code=lambda_code(assets, spec.name),
            memory_size=settings.memory_mb,
            timeout=Duration.seconds(settings.timeout_seconds),
            reserved_concurrent_executions=settings.reserved_concurrency,
            environment=lambda_environment(storage, assets),
            role=role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )
        # A mapping rather than SqsEventSource: that one adds grant_consume_messages' policy
        # to the role, and the role's statements are all written out in permissions.py.
        self.function.add_event_source_mapping(
            "UploadsSource",
            event_source_arn=self.queue.queue_arn,
            batch_size=settings.batch_size,
            max_batching_window=Duration.seconds(settings.max_batching_window_seconds)
            if settings.max_batching_window_seconds
            else None,
            report_batch_item_failures=True,
            max_concurrency=config.queue_concurrency,
        )


def lambda_architecture(config: InfraConfig) -> lambda_.Architecture:
    """The configured architecture (the assets were built for it)."""
    return (
        lambda_.Architecture.ARM_64
        if config.architecture == "arm64"
        else lambda_.Architecture.X86_64
    )
