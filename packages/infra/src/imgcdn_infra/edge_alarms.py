"""The distribution's own alarms: viewer 5xx rate and cache hit ratio, in CloudFront's Region.

CloudFront publishes its metrics in us-east-1 only (dimension `Region=Global`), and a CloudWatch
alarm can only watch a metric of its own Region. A stack in us-east-1 holds these alarms itself,
on the alarm topic of `Operations`; a stack elsewhere gets a small `EdgeAlarmsStack` in
us-east-1, which reads the distribution id through CDK's cross-Region references and notifies
a topic of its own (an alarm cannot notify a topic in another Region either), with the same
optional e-mail subscription.

The cache hit ratio is one of the distribution's additional metrics: a CloudFront monitoring
subscription turns them on, priced per distribution and month, so it is opt-in
(`alarms.additional_metrics`).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from imgcdn_infra.config import InfraConfig
from imgcdn_infra.operations import CLOUDFRONT_METRICS_REGION

__all__ = [
    "EdgeAlarms",
    "EdgeAlarmsStack",
    "additional_metrics",
    "alarm_topic",
]

_PERIOD = Duration.minutes(5)
_HIT_RATIO_PERIODS = 3
"""A launch's cold misses dip the ratio for minutes; 15 minutes below it is a real change."""


def alarm_topic(scope: Construct, construct_id: str, config: InfraConfig) -> sns.Topic:
    """An SNS topic for imgcdn's alarms, TLS only, with the configured e-mail subscription."""
    topic = sns.Topic(scope, construct_id, display_name="imgcdn alarms", enforce_ssl=True)
    if config.alarms.email:
        topic.add_subscription(subscriptions.EmailSubscription(config.alarms.email))
    return topic


def additional_metrics(scope: Construct, distribution: cloudfront.IDistribution) -> None:
    """Turn on the distribution's additional metrics (cache hit ratio, origin latency, ...)."""
    cloudfront.CfnMonitoringSubscription(
        scope,
        "AdditionalMetrics",
        distribution_id=distribution.distribution_id,
        monitoring_subscription=cloudfront.CfnMonitoringSubscription.MonitoringSubscriptionProperty(
            realtime_metrics_subscription_config=cloudfront.CfnMonitoringSubscription.RealtimeMetricsSubscriptionConfigProperty(
                realtime_metrics_subscription_status="Enabled"
            )
        ),
    )


def _distribution_metric(distribution_id: str, name: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/CloudFront",
        metric_name=name,
        dimensions_map={"DistributionId": distribution_id, "Region": "Global"},
        statistic="Average",
        period=_PERIOD,
        region=CLOUDFRONT_METRICS_REGION,
    )


class EdgeAlarms(Construct):
    """The CloudFront alarms; their stack must be in us-east-1."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        distribution_id: str,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        thresholds = config.alarms
        self.alarms = [
            self._alarm(
                "Viewer5xxRate",
                _distribution_metric(distribution_id, "5xxErrorRate"),
                thresholds.cloudfront_5xx_percent,
                cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                description="Viewers get 5xx from CloudFront: both origins fail (see the "
                "fallback 5xx and duration alarms), or the distribution itself does.",
                topic=topic,
            )
        ]
        if thresholds.additional_metrics:
            self.alarms.append(
                self._alarm(
                    "CacheHitRatio",
                    _distribution_metric(distribution_id, "CacheHitRate"),
                    thresholds.cache_hit_ratio_percent,
                    cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                    description="The CDN cache hit ratio is low: a cache-key change (R1, the "
                    "cache-keys snapshot), cache-busting query strings, or a launch of new images.",
                    topic=topic,
                    evaluation_periods=_HIT_RATIO_PERIODS,
                )
            )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        comparison: cloudwatch.ComparisonOperator,
        *,
        description: str,
        topic: sns.ITopic,
        evaluation_periods: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods,
            # No requests, no data: an idle distribution is not failing.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(topic))
        alarm.add_ok_action(actions.SnsAction(topic))
        return alarm


class EdgeAlarmsStack(Stack):
    """The CloudFront alarms and their topic, in us-east-1, for a distribution stack elsewhere."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        distribution_id: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.topic = alarm_topic(self, "Alarms", config)
        self.edge_alarms = EdgeAlarms(
            self, "EdgeAlarms", config=config, distribution_id=distribution_id, topic=self.topic
        )
        CfnOutput(self, "AlarmTopic", value=self.topic.topic_arn)
