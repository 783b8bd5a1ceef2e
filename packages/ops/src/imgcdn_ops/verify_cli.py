"""`imgcdn verify`: compare the live distribution with what the CDK app synthesizes, field by field.

Run it after every deploy. By default it synthesizes the app for the current context in a
subprocess (`imgcdn synth`, so this package never imports the CDK app), or it reads a stack
template from a cloud assembly (`--template cdk.out/Imgcdn.template.json`). Exit status: 0 in
sync, 1 on drift (every difference printed), 2 on a usage or AWS error (one line on stderr).
boto3 and the comparison load only when the command runs: `imgcdn` loads this module for every
subcommand.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgcdn_ops.verify import Difference

__all__ = ["cloudfront_client", "configure_verify", "render_table"]

Subparsers = Any  # argparse's _SubParsersAction is private; imgcore's host duck-types it.
_WIDTH = 60


class _UsageError(Exception):
    """A user mistake: reported on one line, exit status 2."""


def cloudfront_client(region: str | None) -> Any:
    """The boto3 CloudFront client the command reads with (tests replace this function)."""
    import boto3  # noqa: PLC0415 - only when the command runs

    return boto3.client("cloudfront", region_name=region)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)  # noqa: T201 - CLI progress and errors


def _synthesized_template(args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "imgcore.cli", "synth", "--json"]
    for pair in args.context or []:
        command += ["--context", pair]
    if args.config:
        command += ["--config", args.config]
    with tempfile.TemporaryDirectory(prefix="imgcdn-verify-") as out:
        _stderr("imgcdn verify: synthesizing the app for the current context (imgcdn synth) ...")
        done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
            [*command, "--out", out], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
            msg = f"imgcdn synth failed ({reason}); allowed: a context that synthesizes, --template"
            raise _UsageError(msg)
        templates = [Path(p) for p in json.loads(done.stdout)["templates"]]
        return _template_with_distribution(templates)


def _template_with_distribution(paths: list[Path]) -> dict[str, Any]:
    for path in paths:
        template = _read_template(path)
        resources = template.get("Resources", {})
        if any(r.get("Type") == "AWS::CloudFront::Distribution" for r in resources.values()):
            return template
    msg = "no synthesized stack holds a CloudFront distribution"
    raise _UsageError(msg)


def _read_template(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except ValueError:
        msg = f"{path}: not JSON; allowed: a CloudFormation template from cdk.out"
        raise _UsageError(msg) from None
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        msg = f"{path}: not a CloudFormation template (no Resources); allowed: a cdk.out stack file"
        raise _UsageError(msg)
    return data


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=repr)
    return text if len(text) <= _WIDTH else text[: _WIDTH - 3] + "..."


def render_table(differences: list[Difference]) -> str:
    """Differences as an aligned text table (path, deployed, expected)."""
    rows = [("PATH", "DEPLOYED", "EXPECTED")]
    rows += [
        (d.path, _shown(d.to_json()["deployed"]), _shown(d.to_json()["expected"]))
        for d in differences
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(
        f"{path:<{widths[0]}}  {deployed:<{widths[1]}}  {expected}".rstrip()
        for path, deployed, expected in rows
    )


def _run_verify(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from imgcdn_ops.verify import (  # noqa: PLC0415 - boto3 loads only for this command
        DriftError,
        compare,
        deployed,
        expected_from_template,
    )

    try:
        template = (
            _read_template(Path(args.template)) if args.template else _synthesized_template(args)
        )
        expected = expected_from_template(template)
        live = deployed(cloudfront_client(args.region), args.distribution_id)
    except (_UsageError, DriftError) as exc:
        _stderr(f"imgcdn verify: {exc}")
        return 2
    except ClientError as exc:
        error = exc.response.get("Error", {})
        _stderr(
            f"imgcdn verify: AWS refused to read distribution {args.distribution_id}: "
            f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
        )
        return 2
    except BotoCoreError as exc:
        _stderr(f"imgcdn verify: cannot reach AWS: {exc}")
        return 2
    differences = compare(expected, live)
    if args.json:
        print(json.dumps([d.to_json() for d in differences], indent=2, default=str))  # noqa: T201
    elif differences:
        print(render_table(differences))  # noqa: T201 - the table is the result
        _stderr(f"imgcdn verify: {len(differences)} field(s) drifted from the code")
    else:
        print(f"distribution {args.distribution_id}: in sync with the code")  # noqa: T201
    return 1 if differences else 0


def configure_verify(subparsers: Subparsers) -> None:
    """Add `imgcdn verify`: the live distribution against the synthesized app (after a deploy)."""
    parser = subparsers.add_parser(
        "verify",
        help="compare the deployed CloudFront distribution with the CDK app, field by field",
        description=(
            "Read the deployed distribution (config, cache/origin-request/response-headers "
            "policies, the Function's code and runtime, failover codes, Origin Shield, key "
            "groups, WAF) and compare it with what the CDK app synthesizes for the same "
            "context. Exit 0 in sync, 1 on drift, 2 on an error."
        ),
    )
    parser.add_argument(
        "--distribution-id", required=True, help="the stack's DistributionId output"
    )
    parser.add_argument("--region", help="AWS Region of the client (default: the AWS config's)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--template",
        metavar="PATH",
        help="a synthesized stack template (cdk.out/<stack>.template.json)",
    )
    source.add_argument(
        "--synth",
        action="store_true",
        help="synthesize the app for the current context (the default)",
    )
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        metavar="KEY=VALUE",
        help="context value for the synth, as with `imgcdn synth`; repeatable",
    )
    parser.add_argument("--config", metavar="FILE", help="JSON file of context keys for the synth")
    parser.add_argument("--json", action="store_true", help="print the differences as JSON")
    parser.set_defaults(run=_run_verify)
