"""The imgcdn stack: storage, the upload pipeline, delivery and operations of one deployment."""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, CfnOutput, Stack, Token
from aws_cdk import aws_s3 as s3
from constructs import Construct

from imgcdn_infra.assets import AssetError, BuiltAssets
from imgcdn_infra.config import STANDARD_PREFIX, TAKEDOWN_PREFIX, InfraConfig
from imgcdn_infra.delivery import FUNCTION_SIZE_LIMIT, Delivery
from imgcdn_infra.drift import DriftCheck
from imgcdn_infra.edge_alarms import EdgeAlarms, additional_metrics
from imgcdn_infra.monitor import ProbeMonitor
from imgcdn_infra.nag import suppress_stack_findings
from imgcdn_infra.operations import Operations
from imgcdn_infra.pipeline import Backfill, Pipeline
from imgcdn_infra.replication import OriginalsReplication
from imgcdn_infra.storage import Storage
from imgcdn_infra.takedown import Takedown
from imgcdn_infra.waf import ImageWebAcl

__all__ = ["CLOUDFRONT_REGION", "TAKEDOWN_TTL_LIMIT", "ImgcdnStack"]

CLOUDFRONT_REGION = "us-east-1"
"""Where CloudFront's metrics are, so where its alarms must be."""
TAKEDOWN_TTL_LIMIT = 60
"""R9: takedown-eligible content is cached for at most this many seconds, at the edge too."""


def _check_assets(config: InfraConfig, assets: BuiltAssets) -> None:
    layout = assets.layout
    if layout.get("standard") != STANDARD_PREFIX or layout.get("takedown") != TAKEDOWN_PREFIX:
        msg = (
            f"the content-class prefixes {STANDARD_PREFIX!r} and {TAKEDOWN_PREFIX!r} of "
            f"imgcdn_infra.config do not match imgcore's key layout {layout} in the built assets "
            "(rebuild them with packages/infra/scripts/build-assets.sh)"
        )
        raise AssetError(msg)
    ttl = assets.policy.get("ttl")
    if not isinstance(ttl, dict) or not 0 < int(ttl.get("takedown", 0)) <= TAKEDOWN_TTL_LIMIT:
        msg = f"the policy's ttl.takedown must be 1-60 seconds (R9); policy.json has {ttl}"
        raise AssetError(msg)
    if int(ttl["takedown"]) + int(ttl.get("takedown_stale_if_error", 0)) > TAKEDOWN_TTL_LIMIT:
        msg = (
            "the policy's ttl.takedown + ttl.takedown_stale_if_error must be at most 60 seconds "
            f"(R9: a stale copy is served too); policy.json has {ttl}"
        )
        raise AssetError(msg)
    size = assets.viewer_request_js.stat().st_size
    if size > FUNCTION_SIZE_LIMIT:
        msg = (
            f"the viewer-request Function is {size} bytes; CloudFront Functions allow "
            f"{FUNCTION_SIZE_LIMIT}"
        )
        raise AssetError(msg)


class ImgcdnStack(Stack):
    """Storage, the upload pipeline, delivery, and operations of one imgcdn deployment."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        assets: BuiltAssets,
        web_acl_arn: str | None = None,
        replica_bucket_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        _check_assets(config, assets)
        region = None if Token.is_unresolved(self.region) else self.region
        self.storage = Storage(self, "Storage", config=config)
        self.pipeline = Pipeline(
            self, "Pipeline", config=config, storage=self.storage, assets=assets
        )
        if config.waf.enabled and web_acl_arn is None:
            web_acl_arn = ImageWebAcl(self, "Waf", config=config).acl.attr_arn
        self.delivery = Delivery(
            self,
            "Delivery",
            config=config,
            storage=self.storage,
            assets=assets,
            origin_shield_region=config.resolved_origin_shield_region(region),
            web_acl_arn=web_acl_arn,
        )
        self.backfill = Backfill(
            self,
            "Backfill",
            config=config,
            originals=self.storage.originals,
            worker=self.pipeline.function,
            worker_timeout=self.pipeline.function.timeout or _never(),
        )
        self.operations = Operations(
            self,
            "Operations",
            config=config,
            dead_letters=self.pipeline.dead_letters,
            queue=self.pipeline.queue,
            precompute=self.pipeline.function,
            fallback=self.delivery.fallback,
            distribution=self.delivery.distribution,
            backfill=self.backfill.state_machine,
        )
        self.probes: ProbeMonitor | None = None
        if config.probes.enabled:
            self.probes = ProbeMonitor(
                self,
                "Probes",
                config=config,
                storage=self.storage,
                assets=assets,
                topic=self.operations.topic,
                dashboard=self.operations.dashboard,
            )
        self._edge_alarms(config, region)
        outputs = self._outputs()
        replica = self._replication(config, replica_bucket_name, outputs)
        self.takedown: Takedown | None = None
        if config.takedown.enabled:
            self.takedown = Takedown(
                self,
                "Takedown",
                config=config,
                storage=self.storage,
                assets=assets,
                distribution=self.delivery.distribution,
                topic=self.operations.topic,
                replica=replica,
            )
            outputs |= {
                # `aws sqs send-message --queue-url` takes the URL; IAM policies take the ARN.
                "TakedownQueue": self.takedown.queue.queue_url,
                "TakedownQueueArn": self.takedown.queue.queue_arn,
                "TakedownDeadLetterQueue": self.takedown.dead_letters.queue_url,
                "AuditBucket": self.takedown.audit.bucket_name,
            }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
        self.drift_check: DriftCheck | None = None
        if config.verify.schedule is not None:
            self.drift_check = DriftCheck(
                self,
                "DriftCheck",
                config=config,
                schedule=config.verify.schedule,
                assets=assets,
                distribution=self.delivery.distribution,
                topic=self.operations.topic,
                dashboard=self.operations.dashboard,
            )
            CfnOutput(self, "DriftCheckFunction", value=self.drift_check.function.function_name)
        suppress_stack_findings(self, config)

    def _outputs(self) -> dict[str, str]:
        """Where everything is, for an operator (the stack outputs every deployment has)."""
        # `aws s3 sync s3://<AccessLogBucket>/s3/ logs/ && imgcdn logs scan logs/`
        CfnOutput(self, "AccessLogBucket", value=self.storage.log_bucket.bucket_name)
        return {
            "DistributionDomainName": self.delivery.distribution.distribution_domain_name,
            "DistributionId": self.delivery.distribution.distribution_id,
            "OriginalsBucket": self.storage.originals.bucket_name,
            "DerivativesBucket": self.storage.derivatives.bucket_name,
            "UploadQueue": self.pipeline.queue.queue_url,
            "DeadLetterQueue": self.pipeline.dead_letters.queue_url,
            # `aws sqs start-message-move-task --source-arn` (the redrive) takes the ARN.
            "DeadLetterQueueArn": self.pipeline.dead_letters.queue_arn,
            "BackfillStateMachine": self.backfill.state_machine.state_machine_arn,
            "AlarmTopic": self.operations.topic.topic_arn,
        }

    def _edge_alarms(self, config: InfraConfig, region: str | None) -> None:
        """CloudFront's alarms here when this stack is in us-east-1 (else their own stack)."""
        if config.alarms.additional_metrics:
            additional_metrics(self, self.delivery.distribution)
        if region == CLOUDFRONT_REGION:
            EdgeAlarms(
                self,
                "EdgeAlarms",
                config=config,
                distribution_id=self.delivery.distribution.distribution_id,
                topic=self.operations.topic,
            )
        elif region is None:
            Annotations.of(self).add_warning_v2(
                "imgcdn:edge-alarms",
                "No CloudFront alarms (viewer 5xx rate, cache hit ratio): their metrics live in "
                "us-east-1 and the target Region is unknown; set imgcdn.region (or "
                "CDK_DEFAULT_REGION) to get them",
            )

    def _replication(
        self, config: InfraConfig, replica_bucket_name: str | None, outputs: dict[str, str]
    ) -> s3.IBucket | None:
        """The originals' replication into the replica bucket, when there is one."""
        if replica_bucket_name is None:
            return None
        replica = s3.Bucket.from_bucket_name(self, "Replica", replica_bucket_name)
        self.replication = OriginalsReplication(
            self,
            "Replication",
            config=config,
            originals=self.storage.originals,
            replica=replica,
        )
        # `imgcdn takedown --replica-bucket` (IMGCDN_REPLICA_BUCKET) takes this name.
        outputs["ReplicaBucket"] = replica_bucket_name
        return replica


def _never() -> Any:  # pragma: no cover - a Function built here always has a timeout
    msg = "the precompute function has no timeout"
    raise AssertionError(msg)
