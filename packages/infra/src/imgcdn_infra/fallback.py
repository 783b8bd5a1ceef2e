"""The fallback Lambda: renders a derivative on a cache and S3 miss, behind a Function URL.

It is built into the `Delivery` construct's own scope (ids `FallbackLogs`, `FallbackRole`,
`Fallback`), not under a construct of its own: a new level in the construct tree would rename
every logical id beneath it, and CloudFormation would replace the deployed function and its URL.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from imgcdn_infra.assets import BuiltAssets
from imgcdn_infra.config import InfraConfig
from imgcdn_infra.permissions import fallback_statements, lambda_role
from imgcdn_infra.pipeline import function_log_group, service_function
from imgcdn_infra.storage import Storage

__all__ = ["FallbackFunction", "fallback_function"]


@dataclass(frozen=True)
class FallbackFunction:
    """The fallback's function, its Function URL, its log group and its S3 statements."""

    function: lambda_.Function
    url: lambda_.FunctionUrl
    log_group: logs.LogGroup
    s3_statements: list[iam.PolicyStatement]


def fallback_function(
    scope: Construct, *, config: InfraConfig, storage: Storage, assets: BuiltAssets
) -> FallbackFunction:
    """Build the fallback in `scope` (the delivery construct; see the module docstring)."""
    log_group = function_log_group(scope, "FallbackLogs", config)
    s3_statements = fallback_statements(
        storage.originals, storage.derivatives, config.tenant_prefixes
    )
    role = lambda_role(
        scope,
        "FallbackRole",
        log_group=log_group,
        statements=s3_statements,
        description="imgcdn fallback: read originals and manifests, write derivatives",
    )
    function = service_function(
        scope,
        "Fallback",
        name="edge",
        description="imgcdn fallback: renders a derivative on a cache and S3 miss",
        config=config,
        settings=config.fallback,
        storage=storage,
        assets=assets,
        role=role,
        log_group=log_group,
    )
    # IAM auth: only CloudFront, signing with OAC, can invoke the URL.
    url = function.add_function_url(
        auth_type=lambda_.FunctionUrlAuthType.AWS_IAM,
        invoke_mode=lambda_.InvokeMode.BUFFERED,
    )
    return FallbackFunction(function, url, log_group, s3_statements)
