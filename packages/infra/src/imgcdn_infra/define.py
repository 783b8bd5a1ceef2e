"""Which stacks an imgcdn app holds, and synthesizing it without the CDK CLI.

`synthesize` is what `imgcdn synth` and the tests call; `imgcdn_infra.app` is what cdk.json
runs. Both read the config from the context and the prebuilt assets from
`.cache/lambda-assets/`; neither imports another workspace package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, Validations, cx_api
from cdk_nag import AwsSolutionsChecks

from imgcdn_infra.assets import BuiltAssets, workspace_root
from imgcdn_infra.config import ConfigError, InfraConfig, load_config
from imgcdn_infra.edge_alarms import EdgeAlarmsStack
from imgcdn_infra.replication import ReplicaStack, replica_bucket_name
from imgcdn_infra.stack import CLOUDFRONT_REGION, ImgcdnStack
from imgcdn_infra.waf import WebAclStack

__all__ = ["FEATURE_FLAGS", "create_app", "define_app", "synthesize"]

FEATURE_FLAGS: Mapping[str, Any] = json.loads(
    files("imgcdn_infra").joinpath("feature_flags.json").read_text(encoding="utf-8")
)
"""The feature flags the pinned CDK CLI recommends for new apps, applied to every synth (they are
context, so `-c` can still override one)."""
WAF_REGION = "us-east-1"


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
