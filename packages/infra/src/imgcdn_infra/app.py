"""The CDK app: the imgcdn stack (and, with WAF outside us-east-1, the web ACL's stack).

`python -m imgcdn_infra.app` is what cdk.json runs for the CDK CLI; `synthesize` is what
`imgcdn synth` and the tests call. Both read the config from the context and the prebuilt
assets from `.cache/lambda-assets/`; neither imports another workspace package.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

from aws_cdk import Annotations, App, CfnOutput, Environment, Stack, Token, Validations, cx_api
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from imgcdn_infra.assets import AssetError, BuiltAssets, workspace_root
from imgcdn_infra.config import STANDARD_PREFIX, ConfigError, InfraConfig, load_config
from imgcdn_infra.delivery import FUNCTION_SIZE_LIMIT, Delivery
from imgcdn_infra.drift import DriftCheck
from imgcdn_infra.edge_alarms import EdgeAlarms, EdgeAlarmsStack, additional_metrics
from imgcdn_infra.monitor import ProbeMonitor
from imgcdn_infra.nag import suppress_stack_findings
from imgcdn_infra.operations import Backfill, Operations
from imgcdn_infra.pipeline import Pipeline
from imgcdn_infra.replication import OriginalsReplication, ReplicaStack, replica_bucket_name
from imgcdn_infra.storage import Storage
from imgcdn_infra.takedown import Takedown
from imgcdn_infra.waf import ImageWebAcl, WebAclStack

__all__ = [
    "FEATURE_FLAGS",
    "EdgeAlarmsStack",
    "ImgcdnStack",
    "ReplicaStack",
    "WebAclStack",
    "create_app",
    "define_app",
    "main",
    "synthesize",
]

FEATURE_FLAGS: Mapping[str, Any] = json.loads(
    files("imgcdn_infra").joinpath("feature_flags.json").read_text(encoding="utf-8")
)
"""The feature flags the pinned CDK CLI recommends for new apps, applied to every synth (they are
context, so `-c` can still override one)."""
WAF_REGION = "us-east-1"
CLOUDFRONT_REGION = "us-east-1"
"""Where CloudFront's metrics are, so where its alarms must be."""
TAKEDOWN_TTL_LIMIT = 60
"""R9: takedown-eligible content is cached for at most this many seconds, at the edge too."""


def _check_assets(config: InfraConfig, assets: BuiltAssets) -> None:
    layout = assets.layout
    if (
        layout.get("standard") != STANDARD_PREFIX
        or layout.get("takedown") != config.takedown_prefix
    ):
        msg = (
            f"imgcdn.takedown_prefix: {config.takedown_prefix!r} does not match imgcore's key "
            f"layout {layout} (the prefixes of the behaviours must be its content classes)"
        )
        raise ConfigError(msg)
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
        # `aws s3 sync s3://<AccessLogBucket>/s3/ logs/ && imgcdn logs scan logs/`
        CfnOutput(self, "AccessLogBucket", value=self.storage.log_bucket.bucket_name)
        outputs = {
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
        replica: s3.IBucket | None = None
        if replica_bucket_name is not None:
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


def _never() -> Any:  # pragma: no cover - a Function built here always has a timeout
    msg = "the precompute function has no timeout"
    raise AssertionError(msg)


def _environment(config: InfraConfig) -> Environment | None:
    """The target environment: the config's, else the CLI's, else the AWS SDK's variables."""
    account = config.account or os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = config.region or next(
        (
            os.environ[name]
            for name in ("CDK_DEFAULT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
            if os.environ.get(name)
        ),
        None,
    )
    if account is None and region is None:
        return None
    return Environment(account=account, region=region)


def _replica_stack(app: App, config: InfraConfig, env: Environment | None) -> ReplicaStack | None:
    """The originals' replica in `replication.region`, or None when replication is off.

    Raises:
        ConfigError: The deployment's Region is unknown or is the replica's.
    """
    replication = config.replication
    if replication is None:
        return None
    region = env.region if env else None
    if region is None:
        msg = (
            "imgcdn.region: required when replication is set (the originals' stack references "
            "the replica bucket in another Region); set region or CDK_DEFAULT_REGION"
        )
        raise ConfigError(msg)
    if region == replication.region:
        msg = (
            f"imgcdn.replication.region: {region} is the deployment's own Region; a replica "
            "must be in another Region to survive the loss of this one"
        )
        raise ConfigError(msg)
    return ReplicaStack(
        app,
        f"{config.stack_name}-Replica",
        config=config,
        env=Environment(account=env.account if env else None, region=replication.region),
        description="imgcdn: the originals' replica (versioned, in a second Region)",
    )


def define_app(app: App, config: InfraConfig, assets: BuiltAssets) -> ImgcdnStack:
    """Add imgcdn's stacks to `app` and the AwsSolutions checks to all of them.

    Raises:
        ConfigError: The config needs something the environment does not give.
        AssetError: The assets do not fit the config or CloudFront's limits.
    """
    env = _environment(config)
    region = env.region if env else None
    web_acl_arn: str | None = None
    cross_region = False
    if config.waf.enabled and region != WAF_REGION:
        if region is None:
            msg = (
                "imgcdn.region: required when waf.enabled (the web ACL must be in us-east-1 and "
                "the distribution's stack references it across Regions); set region or "
                "CDK_DEFAULT_REGION"
            )
            raise ConfigError(msg)
        waf_stack = WebAclStack(
            app,
            f"{config.stack_name}-Waf",
            config=config,
            env=Environment(account=env.account if env else None, region=WAF_REGION),
            cross_region_references=True,
            description="imgcdn: the distribution's web ACL (CloudFront WAF lives in us-east-1)",
        )
        web_acl_arn = waf_stack.web_acl.acl.attr_arn
        cross_region = True
    replica = _replica_stack(app, config, env)
    edge_alarms_elsewhere = region is not None and region != CLOUDFRONT_REGION
    stack = ImgcdnStack(
        app,
        config.stack_name,
        config=config,
        assets=assets,
        web_acl_arn=web_acl_arn,
        replica_bucket_name=replica_bucket_name(config) if replica else None,
        env=env,
        cross_region_references=cross_region or edge_alarms_elsewhere,
        description="imgcdn: pre-computed image delivery (buckets, queue, Lambdas, CloudFront)",
    )
    if replica is not None:
        # Replication needs its destination to exist (and be versioned) when it is configured.
        stack.add_dependency(replica, "the originals replicate into the replica bucket")
    if edge_alarms_elsewhere:
        EdgeAlarmsStack(
            app,
            f"{config.stack_name}-EdgeAlarms",
            config=config,
            distribution_id=stack.delivery.distribution.distribution_id,
            env=Environment(account=env.account if env else None, region=CLOUDFRONT_REGION),
            cross_region_references=True,
            description="imgcdn: the distribution's alarms (CloudFront metrics live in us-east-1)",
        )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


def create_app(
    context: Mapping[str, Any],
    outdir: Path,
    *,
    root: Path | None = None,
    check_assets_current: bool = True,
) -> App:
    """The app with imgcdn's stacks defined, ready to `synth()`, without the CDK CLI.

    Args:
        context: CDK context (the `imgcdn` config and any `imgcdn:<path>` overrides).
        outdir: Where the cloud assembly (templates, assets) is written.
        root: The workspace root (default: found from the working directory).
        check_assets_current: Refuse assets older than their sources (see `BuiltAssets`).

    Raises:
        ConfigError: The config is invalid; the message names the key.
        AssetError: The assets are missing, stale or unfit.
    """
    config = load_config(context)
    assets = BuiltAssets.locate(
        root or workspace_root(), config.architecture, check_current=check_assets_current
    )
    app = App(outdir=str(outdir), context={**FEATURE_FLAGS, **context})
    define_app(app, config, assets)
    return app


def synthesize(
    context: Mapping[str, Any],
    outdir: Path,
    *,
    root: Path | None = None,
    check_assets_current: bool = True,
) -> cx_api.CloudAssembly:
    """Synthesize the app into `outdir` without the CDK CLI (see `create_app`)."""
    app = create_app(context, outdir, root=root, check_assets_current=check_assets_current)
    return app.synth()


def main() -> int:
    """Entry point for the CDK CLI (cdk.json): the context comes from the CLI."""
    app = App(context=dict(FEATURE_FLAGS))
    try:
        config = load_config(app.node.get_all_context())
        assets = BuiltAssets.locate(workspace_root(), config.architecture)
        define_app(app, config, assets)
    except (ConfigError, AssetError) as exc:
        print(f"imgcdn: {exc}", file=sys.stderr)  # noqa: T201 - the CLI shows the app's stderr
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
