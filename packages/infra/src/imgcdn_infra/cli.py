"""`imgcdn synth` and `imgcdn cache-keys`: the CDK app without the CDK CLI.

Both read the same context the CDK CLI would (packages/infra/cdk.json, then `--config FILE`,
then `-c KEY=VALUE`), so what they check is what `cdk deploy` would deploy. The AWS CDK is
imported only when a command runs: `imgcdn` loads these modules for every subcommand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from imgcdn_infra import cache_keys
from imgcdn_infra.assets import AssetError, workspace_root
from imgcdn_infra.config import CONTEXT_KEY, ConfigError, load_config

__all__ = ["configure_cache_keys", "configure_synth", "load_context"]

Subparsers = Any  # argparse's _SubParsersAction is private; imgcore's host duck-types it.
CDK_JSON = Path("packages") / "infra" / "cdk.json"


def load_context(
    root: Path, config_file: str | None = None, pairs: list[str] | None = None
) -> dict[str, Any]:
    """The context a synth uses: cdk.json's, then a JSON file's, then `KEY=VALUE` pairs.

    Raises:
        ConfigError: A file is not a JSON object or a pair has no `=`.
    """
    context: dict[str, Any] = {}
    cdk_json = root / CDK_JSON
    if cdk_json.is_file():
        context.update(json.loads(cdk_json.read_text("utf-8")).get("context", {}))
    if config_file:
        data = json.loads(Path(config_file).read_text("utf-8"))
        if not isinstance(data, dict):
            msg = f"{config_file}: must hold a JSON object of context keys"
            raise ConfigError(msg)
        context.update(data)
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            msg = f"--context {pair!r}: expected KEY=VALUE"
            raise ConfigError(msg)
        context[key] = value
    return context


def _fail(command: str, exc: Exception) -> int:
    print(f"imgcdn {command}: {exc}", file=sys.stderr)  # noqa: T201 - CLI output
    return 2


def _emit(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))  # noqa: T201 - CLI output
    else:
        print(text)  # noqa: T201 - CLI output


def _synthesize(
    args: argparse.Namespace, root: Path, out: Path, *, any_region: bool = False
) -> tuple[list[str], float]:
    from imgcdn_infra.app import synthesize  # noqa: PLC0415 - boots jsii: only when needed

    context = load_context(root, args.config, args.context)
    if any_region and not _region_known(context):
        # Cache keys do not depend on the Region; a check must not need AWS settings.
        context[f"{CONTEXT_KEY}:region"] = "us-east-1"
    started = time.perf_counter()
    assembly = synthesize(context, out, root=root)
    return [stack.stack_name for stack in assembly.stacks], time.perf_counter() - started


def _region_known(context: dict[str, Any]) -> bool:
    try:
        config = load_config(context)
    except ConfigError:
        return True  # let the synth report the real error
    names = ("CDK_DEFAULT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
    return bool(
        config.region or config.origin_shield_region or any(os.environ.get(n) for n in names)
    )


def _run_synth(args: argparse.Namespace) -> int:
    try:
        root = workspace_root()
        out = Path(args.out).resolve()
        stacks, seconds = _synthesize(args, root, out)
    except (ConfigError, AssetError) as exc:
        return _fail("synth", exc)
    templates = [str(out / f"{name}.template.json") for name in stacks]
    result = {"out": str(out), "stacks": stacks, "templates": templates, "seconds": seconds}
    lines = [f"synthesized {len(stacks)} stack(s) into {out} in {seconds:.1f} s"]
    lines += [f"  {path}" for path in templates]
    _emit(args, result, "\n".join(lines))
    return 0


def _add_context_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        metavar="KEY=VALUE",
        help="context value, as with the CDK CLI (e.g. imgcdn:architecture=x86_64); repeatable",
    )
    parser.add_argument("--config", metavar="FILE", help="JSON file of context keys")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def configure_synth(subparsers: Subparsers) -> None:
    """Add `imgcdn synth`: write the CloudFormation templates with aws-cdk-lib, no CDK CLI."""
    parser = subparsers.add_parser(
        "synth",
        help="synthesize the CDK app's CloudFormation templates (no CDK CLI needed)",
        description=(
            "Synthesize the imgcdn CDK app into DIR using the context of packages/infra/cdk.json "
            "and the prebuilt assets (packages/infra/scripts/build-assets.sh)."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="cloud assembly folder")
    _add_context_options(parser)
    parser.set_defaults(run=_run_synth)


def _run_cache_keys(args: argparse.Namespace) -> int:
    try:
        root = workspace_root()
        snapshot = (
            Path(args.snapshot)
            if args.snapshot
            else root / "packages/infra" / (cache_keys.SNAPSHOT_NAME)
        )
        if args.assembly:
            rendered = cache_keys.render_assembly(Path(args.assembly))
        else:
            with tempfile.TemporaryDirectory(prefix="imgcdn-cache-keys-") as tmp:
                _synthesize(args, root, Path(tmp), any_region=True)
                rendered = cache_keys.render_assembly(Path(tmp))
    except (ConfigError, AssetError, cache_keys.FunctionRunError) as exc:
        return _fail("cache-keys", exc)
    text = cache_keys.to_text(rendered)
    if args.update:
        snapshot.write_text(text, encoding="utf-8")
        _emit(args, {"snapshot": str(snapshot), "updated": True}, f"updated {snapshot}")
        return 0
    if args.check:
        current = snapshot.read_text("utf-8") if snapshot.is_file() else ""
        delta = cache_keys.diff(current, text, names=(str(snapshot), "synthesized"))
        if delta:
            print(delta, end="")  # noqa: T201 - the diff is the result
            print(  # noqa: T201 - what to do about the drift
                f"imgcdn cache-keys: the cache keys drifted from {snapshot} (R6): if the change "
                "is on purpose, run `imgcdn cache-keys --update` and commit the snapshot",
                file=sys.stderr,
            )
            return 1
        _emit(args, {"snapshot": str(snapshot), "matches": True}, f"{snapshot}: up to date")
        return 0
    print(text, end="")  # noqa: T201 - the rendering is the result
    return 0


def configure_cache_keys(subparsers: Subparsers) -> None:
    """Add `imgcdn cache-keys`: render, check or update the cache-key snapshot (R6)."""
    parser = subparsers.add_parser(
        "cache-keys",
        help="render every behaviour's cache key; --check/--update the committed snapshot",
        description=(
            "Render the cache-key composition (query strings, headers, cookies, TTLs, "
            "compression) of every CloudFront behaviour from a synth. --check exits 1 with a "
            "diff when it differs from packages/infra/cache-keys.snapshot.json; --update "
            "rewrites that file."
        ),
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail with a diff on drift")
    mode.add_argument("--update", action="store_true", help="rewrite the snapshot")
    parser.add_argument("--snapshot", metavar="FILE", help="snapshot path (default: committed)")
    parser.add_argument(
        "--assembly", metavar="DIR", help="render an existing cloud assembly instead of synth"
    )
    _add_context_options(parser)
    parser.set_defaults(run=_run_cache_keys)
