"""Upload to derivatives: S3 events -> SQS (with a DLQ) -> the precompute worker (R18), and the
backfill state machine that feeds the same worker a catalogue prefix.

`service_function` is the one definition of the Lambdas that serve images (the precompute
worker here, the fallback in `imgcdn_infra.fallback`): same runtime, architecture, environment,
JSON logs in their own log group.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import AssetHashType, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from imgcdn_infra.assets import FUNCTIONS, BuiltAssets
from imgcdn_infra.config import FallbackConfig, InfraConfig, PrecomputeConfig
from imgcdn_infra.permissions import lambda_role, precompute_statements, queue_consumer_statements
from imgcdn_infra.storage import Storage

__all__ = [
    "BACKFILL_SOURCE",
    "LAMBDA_RUNTIME",
    "Backfill",
    "Pipeline",
    "lambda_architecture",
    "lambda_code",
    "lambda_environment",
    "log_retention",
    "service_function",
]

BACKFILL_SOURCE = "imgcdn.backfill"
"""The `source` of the event the precompute handler accepts from the backfill."""
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


def service_function(
    scope: Construct,
    construct_id: str,
    *,
    name: str,
    description: str,
    config: InfraConfig,
    settings: PrecomputeConfig | FallbackConfig,
    storage: Storage,
    assets: BuiltAssets,
    role: iam.IRole,
    log_group: logs.ILogGroup,
) -> lambda_.Function:
    """One of the Lambdas that serve images, built from its asset `name` (`assets.FUNCTIONS`),
    sized by its `settings`, configured from the same environment as the other."""
    spec = next(f for f in FUNCTIONS if f.name == name)
    return lambda_.Function(
        scope,
        construct_id,
        description=description,
        runtime=LAMBDA_RUNTIME,
        architecture=lambda_architecture(config),
        handler=spec.handler,
        code=lambda_code(assets, spec.name),
        memory_size=settings.memory_mb,
        timeout=Duration.seconds(settings.timeout_seconds),
        reserved_concurrent_executions=settings.reserved_concurrency,
        environment=lambda_environment(storage, assets),
        role=role,
        log_group=log_group,
        logging_format=lambda_.LoggingFormat.JSON,
    )


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
        self.function = service_function(
            self,
            "Worker",
            name="precompute",
            description="imgcdn precompute: renders the standard variants of each upload",
            config=config,
            settings=settings,
            storage=storage,
            assets=assets,
            role=role,
            log_group=self.log_group,
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


class Backfill(Construct):
    """A Distributed Map: list a prefix of originals, hand batches to the precompute worker.

    Start an execution with `{"prefix": "img/<tenant>/"}`. Each child workflow receives
    `{"Items": [{"Key": ...}], "BatchInput": {...}}` and invokes the worker with the event it
    understands: `{"source": "imgcdn.backfill", "bucket": ..., "items": [{"Key": raw key}]}`.
    A batch whose answer lists `batchItemFailures` fails its child workflow, which counts
    against `tolerated_failure_percent`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        originals: s3.IBucket,
        worker: lambda_.IFunction,
        worker_timeout: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = config.backfill
        render = tasks.LambdaInvoke(
            self,
            "Render batch",
            lambda_function=worker,
            payload=sfn.TaskInput.from_object(
                {
                    "source": sfn.JsonPath.string_at("$.BatchInput.source"),
                    "bucket": sfn.JsonPath.string_at("$.BatchInput.bucket"),
                    "items": sfn.JsonPath.list_at("$.Items"),
                }
            ),
            payload_response_only=True,
            retry_on_service_exceptions=True,
            task_timeout=sfn.Timeout.duration(worker_timeout.plus(Duration.seconds(30))),
        )
        # Reserved concurrency makes throttles expected during a backfill: wait, don't fail.
        render.add_retry(
            errors=["Lambda.TooManyRequestsException"],
            interval=Duration.seconds(5),
            backoff_rate=2,
            max_attempts=8,
            max_delay=Duration.minutes(5),
            jitter_strategy=sfn.JitterType.FULL,
        )
        verdict = (
            sfn.Choice(self, "Any failed items?")
            .when(
                sfn.Condition.is_present("$.batchItemFailures[0]"),
                sfn.Fail(
                    self,
                    "Items failed",
                    error="imgcdn.BackfillItemsFailed",
                    cause="the worker reported batchItemFailures for this batch",
                ),
            )
            .otherwise(sfn.Succeed(self, "Batch rendered"))
        )
        each_batch = sfn.DistributedMap(
            self,
            "Each batch of originals",
            item_reader=sfn.S3ObjectsItemReader(
                bucket=originals, prefix=sfn.JsonPath.string_at("$.prefix")
            ),
            item_selector={"Key": sfn.JsonPath.string_at("$$.Map.Item.Value.Key")},
            item_batcher=sfn.ItemBatcher(
                max_items_per_batch=settings.items_per_batch,
                batch_input={"source": BACKFILL_SOURCE, "bucket": originals.bucket_name},
            ),
            # With a reservation, the queue's event source keeps its share and the backfill gets
            # the rest: uploads are never throttled by a backfill (config.backfill_concurrency).
            max_concurrency=config.backfill_concurrency,
            tolerated_failure_percentage=settings.tolerated_failure_percent,
            map_execution_type=sfn.StateMachineType.STANDARD,
        )
        each_batch.item_processor(render.next(verdict))
        self.log_group = function_log_group(self, "Logs", config)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment="imgcdn backfill: render the standard variants of the originals under a prefix",
            definition_body=sfn.DefinitionBody.from_chainable(each_batch),
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL),
            tracing_enabled=True,
        )
