"""`imgcdn edge-function`: print or write the viewer-request Function generated from a policy."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from imgcdn_edge.function import MAX_FUNCTION_BYTES, render_function
from imgcore import DEFAULT_POLICY, ImgcoreError, Policy
from imgcore.cli import Subparsers, emit

__all__ = ["configure_edge_function"]


def _policy(path: str | None) -> Policy:
    if path is None:
        return DEFAULT_POLICY
    try:
        return Policy.model_validate_json(Path(path).read_bytes())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(policy)'}: {e['msg']}" for e in exc.errors()
        )
        msg = f"{path} is not a valid policy JSON (see `imgcdn policy`): {problems}"
        raise ImgcoreError(msg) from None


def _run(args: argparse.Namespace) -> int:
    source = render_function(_policy(args.policy))
    data = source.encode("utf-8")
    result: dict[str, Any] = {
        "bytes": len(data),
        "limit": MAX_FUNCTION_BYTES,
        "sha256": hashlib.sha256(data).hexdigest(),
        "runtime": "cloudfront-js-2.0",
    }
    if args.out is None and not args.json:
        sys.stdout.write(source)
        return 0
    if args.out is None:
        result["code"] = source
        emit(args, result, source)
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    result["out"] = str(out)
    text = (
        f"{out}: {len(data):,} bytes of {MAX_FUNCTION_BYTES:,} allowed "
        f"(cloudfront-js-2.0, sha256 {result['sha256'][:12]})"
    )
    emit(args, result, text)
    return 0


def configure_edge_function(subparsers: Subparsers) -> None:
    """Add `imgcdn edge-function`: exactly the JavaScript that will be deployed."""
    parser = subparsers.add_parser(
        "edge-function",
        help="print or write the viewer-request CloudFront Function",
        description=(
            "Generate the viewer-request CloudFront Function (cloudfront-js-2.0) from the "
            "policy: it canonicalizes the query, resolves fmt=auto from Accept, rewrites the "
            "URI to the derivative key and answers out-of-policy requests with a 400."
        ),
    )
    parser.add_argument(
        "--out", metavar="FILE", help="write the Function to FILE (default: stdout)"
    )
    parser.add_argument(
        "--policy", metavar="FILE", help="a policy JSON (as `imgcdn policy` prints); default policy"
    )
    parser.add_argument("--json", action="store_true", help="print size and hash as JSON")
    parser.set_defaults(run=_run)
