"""imgcdn_infra: the CDK app that wires imgcdn's buckets, queue, Lambdas and CloudFront.

Importing this package loads no AWS CDK module (the `imgcdn` command line imports it on every
run); `imgcdn_infra.app` does. Before any module here can import `aws_cdk`, jsii is pointed at a
supported Node.js (`imgcdn_infra.node`).
"""

from __future__ import annotations

from imgcdn_infra.assets import AssetError, BuiltAssets
from imgcdn_infra.config import ConfigError, InfraConfig, load_config
from imgcdn_infra.node import use_supported_node

use_supported_node()

__all__ = ["AssetError", "BuiltAssets", "ConfigError", "InfraConfig", "load_config"]
