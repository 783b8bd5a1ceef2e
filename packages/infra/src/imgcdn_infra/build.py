"""`python -m imgcdn_infra.build`: build the Lambda assets and the generated Function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from imgcdn_infra.assets import ARCHITECTURES, AssetError, build_all, workspace_root
from imgcdn_infra.cli import load_context
from imgcdn_infra.config import ConfigError, load_config

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m imgcdn_infra.build [--arch ARCH ...] [--force]`: build what is out of date."""
    parser = argparse.ArgumentParser(prog="build-assets", description=main.__doc__)
    parser.add_argument(
        "--arch",
        action="append",
        choices=ARCHITECTURES,
        help="Lambda architecture to build for (repeatable; default: cdk.json's architecture)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    try:
        root = workspace_root()
        arches = args.arch or [load_config(load_context(root)).architecture]
        build_all(root, arches, force=args.force, log=_log)
    except (AssetError, ConfigError) as exc:
        _log(f"error: {exc}")
        return 1
    return 0


def _log(message: str) -> None:
    print(f"build-assets: {message}", file=sys.stderr)  # noqa: T201 - progress of a build step


if __name__ == "__main__":
    sys.exit(main())
