"""The CDK app's entry point: `python -m imgcdn_infra.app` is what cdk.json runs.

The stacks are defined in `imgcdn_infra.define` (the imgcdn stack itself in
`imgcdn_infra.stack`); the names below are re-exported for the callers of this module.
"""

from __future__ import annotations

import sys

from aws_cdk import App

from imgcdn_infra.assets import AssetError, BuiltAssets, workspace_root
from imgcdn_infra.config import ConfigError, load_config
from imgcdn_infra.define import FEATURE_FLAGS, create_app, define_app, synthesize
from imgcdn_infra.edge_alarms import EdgeAlarmsStack
from imgcdn_infra.replication import ReplicaStack
from imgcdn_infra.stack import ImgcdnStack
from imgcdn_infra.waf import WebAclStack

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
