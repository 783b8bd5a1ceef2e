"""Running it: the alarm topic, the alarms that page someone, and the dashboard."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from imgcdn_infra.config import InfraConfig

__all__ = ["CLOUDFRONT_METRICS_REGION", "METRICS_NAMESPACE", "Operations"]

CLOUDFRONT_METRICS_REGION = "us-east-1"
"""CloudFront publishes its metrics in us-east-1, whatever the distribution's stack Region."""
FIVE_MINUTES = Duration.minutes(5)
METRICS_NAMESPACE = "imgcdn"
"""The EMF namespace the Lambdas write (imgcdn_aws.emf.NAMESPACE; infra may not import it)."""


def _worker_metric(name: str, label: str) -> cloudwatch.IMetric:
    """The 5-minute sum of one of precompute's EMF counters, over every dimension set.

    EMF emits `PoisonedMessages` and `TransientErrors` with no dimension, but `RenderFailures`
    per tenant (or with none when the key names no tenant). A CloudWatch metric matches one
    exact dimension set, so each counter is read with a Metrics Insights query over the whole
    namespace, which sums all of them and stays right as tenants come and go.
    """
    return cloudwatch.MathExpression(
        # S608: a CloudWatch Metrics Insights query built from constants, not SQL on a database.
        expression=f"SELECT SUM({name}) FROM {METRICS_NAMESPACE}",  # noqa: S608
        using_metrics={},
        label=label,
        period=FIVE_MINUTES,
    )


class Operations(Construct):
    """The alarm topic, the alarms that page someone, and the dashboard that explains them."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        dead_letters: sqs.IQueue,
        queue: sqs.IQueue,
        precompute: lambda_.IFunction,
        fallback: lambda_.IFunction,
        distribution: cloudfront.Distribution,
        backfill: sfn.StateMachine,
    ) -> None:
        super().__init__(scope, construct_id)
        thresholds = config.alarms
        self.topic = sns.Topic(self, "Alarms", display_name="imgcdn alarms", enforce_ssl=True)
        if thresholds.email:
            self.topic.add_subscription(subscriptions.EmailSubscription(thresholds.email))

        fallback_requests = cloudwatch.Metric(
            namespace="AWS/Lambda",
            metric_name="UrlRequestCount",
            dimensions_map={"FunctionName": fallback.function_name},
            statistic="Sum",
            period=FIVE_MINUTES,
        )
        fallback_5xx = cloudwatch.Metric(
            namespace="AWS/Lambda",
            metric_name="Url5xxCount",
            dimensions_map={"FunctionName": fallback.function_name},
            statistic="Sum",
            period=FIVE_MINUTES,
        )
        fallback_5xx_rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={"requests": fallback_requests, "errors": fallback_5xx},
            label="fallback 5xx %",
            period=FIVE_MINUTES,
        )
        self.alarms = [
            self._alarm(
                "DeadLetters",
                dead_letters.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
                thresholds.dlq_depth,
                "Uploads that precompute gave up on are waiting in the DLQ (redrive them).",
            ),
            self._alarm(
                "PrecomputeErrors",
                precompute.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                thresholds.precompute_errors,
                "The precompute worker failed invocations (not only items).",
            ),
            self._alarm(
                "PrecomputeTransientErrors",
                _worker_metric("TransientErrors", "precompute transient errors"),
                thresholds.precompute_transient_errors,
                "Precompute events failed and are being retried (storage faults, throttles); "
                "each retry brings the message closer to the DLQ.",
            ),
            self._alarm(
                "PrecomputeRenderFailures",
                _worker_metric("RenderFailures", "precompute render failures"),
                thresholds.precompute_render_failures,
                "Uploaded originals could not be rendered (undecodable or out of policy); they "
                "are recorded, not retried: check the worker's logs for the keys.",
            ),
            self._alarm(
                "PrecomputePoisonedMessages",
                _worker_metric("PoisonedMessages", "precompute poisoned messages"),
                thresholds.precompute_poisoned_messages,
                "The upload queue received messages that are not S3 notifications; they go to "
                "the DLQ after the redrive limit.",
            ),
            self._alarm(
                "Fallback5xxRate",
                fallback_5xx_rate,
                thresholds.fallback_5xx_percent,
                "The fallback transformer answers 5xx to CloudFront.",
            ),
            self._alarm(
                "FallbackInvocationRate",
                fallback.metric_invocations(period=Duration.minutes(1), statistic="Sum"),
                thresholds.fallback_invocations_per_minute,
                "Misses reach the fallback often: pre-compute does not cover the traffic "
                "(new variants in use, or precompute lagging).",
                evaluation_periods=5,
            ),
            self._alarm(
                "FallbackDuration",
                fallback.metric_duration(period=FIVE_MINUTES, statistic="p99"),
                config.fallback_p99_threshold_ms,
                "The fallback's slowest renders near its timeout, where CloudFront gives up and "
                "viewers get 504s: originals too large for its memory, or a cold-start storm.",
            ),
            self._alarm(
                "BacklogAge",
                queue.metric_approximate_age_of_oldest_message(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
                config.backlog_age_threshold_seconds,
                "Uploads wait in the queue: precompute is throttled, failing and retrying, or "
                "too slow for the upload rate (new images are rendered by the fallback meanwhile).",
                evaluation_periods=5,
            ),
            self._alarm(
                "BackfillFailed",
                backfill.metric_failed(period=FIVE_MINUTES, statistic="Sum"),
                0,
                "A backfill execution failed (more items failed than tolerated).",
            ),
        ]
        self.dashboard = self._dashboard(
            config=config,
            distribution=distribution,
            precompute=precompute,
            fallback=fallback,
            fallback_5xx_rate=fallback_5xx_rate,
            queue=queue,
            dead_letters=dead_letters,
            backfill=backfill,
        )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
        *,
        evaluation_periods: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
        return alarm

    def _dashboard(
        self,
        *,
        config: InfraConfig,
        distribution: cloudfront.Distribution,
        precompute: lambda_.IFunction,
        fallback: lambda_.IFunction,
        fallback_5xx_rate: cloudwatch.IMetric,
        queue: sqs.IQueue,
        dead_letters: sqs.IQueue,
        backfill: sfn.StateMachine,
    ) -> cloudwatch.Dashboard:
        edge: dict[str, Any] = {"region": CLOUDFRONT_METRICS_REGION, "period": FIVE_MINUTES}
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{config.stack_name}-imgcdn"
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=3)
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Viewer requests vs fallback renders (pre-compute coverage)",
                left=[
                    distribution.metric_requests(statistic="Sum", **edge),
                    fallback.metric_invocations(period=FIVE_MINUTES, statistic="Sum"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Edge error rates (%)",
                left=[
                    distribution.metric4xx_error_rate(**edge),
                    distribution.metric5xx_error_rate(**edge),
                    fallback_5xx_rate,
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Fallback duration (p50, p99) and throttles",
                left=[
                    fallback.metric_duration(period=FIVE_MINUTES, statistic="p50"),
                    fallback.metric_duration(period=FIVE_MINUTES, statistic="p99"),
                ],
                right=[fallback.metric_throttles(period=FIVE_MINUTES, statistic="Sum")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Precompute invocations, errors, throttles",
                left=[
                    precompute.metric_invocations(period=FIVE_MINUTES, statistic="Sum"),
                    precompute.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                    precompute.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                ],
                right=[precompute.metric_duration(period=FIVE_MINUTES, statistic="p99")],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Precompute per-item outcomes (EMF; not Lambda errors)",
                left=[
                    _worker_metric("TransientErrors", "transient errors (retried)"),
                    _worker_metric("RenderFailures", "render failures (recorded)"),
                    _worker_metric("PoisonedMessages", "poisoned messages"),
                ],
                width=24,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Upload queue: waiting, oldest age (s); DLQ depth",
                left=[
                    queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES),
                    dead_letters.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES),
                ],
                right=[queue.metric_approximate_age_of_oldest_message(period=FIVE_MINUTES)],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Backfill executions",
                left=[
                    backfill.metric_started(period=FIVE_MINUTES),
                    backfill.metric_succeeded(period=FIVE_MINUTES),
                    backfill.metric_failed(period=FIVE_MINUTES),
                ],
                width=12,
            ),
        )
        return dashboard
