"""R6: the cache-key composition of every behaviour, rendered from synthesized templates.

The rendering is plain data (query strings, headers, cookies, TTLs, compression flags, the
functions and key groups that shape the request) read from the CloudFormation JSON, so it can be
committed as a snapshot and diffed: any change to the edge's public API shows up in review.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "SNAPSHOT_NAME",
    "diff",
    "render",
    "render_assembly",
    "to_text",
]

SNAPSHOT_NAME = "cache-keys.snapshot.json"
"""Committed beside the app: `packages/infra/cache-keys.snapshot.json`."""


def _names(config: Mapping[str, Any], key: str) -> list[str]:
    names = config.get(key, [])
    return sorted(names.get("Items", []) if isinstance(names, dict) else names)


def _cache_policy(resource: Mapping[str, Any]) -> dict[str, Any]:
    config = resource["Properties"]["CachePolicyConfig"]
    key = config["ParametersInCacheKeyAndForwardedToOrigin"]
    return {
        "query_strings": {
            "behavior": key["QueryStringsConfig"]["QueryStringBehavior"],
            "names": _names(key["QueryStringsConfig"], "QueryStrings"),
        },
        "headers": {
            "behavior": key["HeadersConfig"]["HeaderBehavior"],
            "names": _names(key["HeadersConfig"], "Headers"),
        },
        "cookies": {
            "behavior": key["CookiesConfig"]["CookieBehavior"],
            "names": _names(key["CookiesConfig"], "Cookies"),
        },
        "accept_encoding": {
            "gzip": bool(key.get("EnableAcceptEncodingGzip", False)),
            "brotli": bool(key.get("EnableAcceptEncodingBrotli", False)),
        },
        "ttl_seconds": {
            "min": config.get("MinTTL"),
            "default": config.get("DefaultTTL"),
            "max": config.get("MaxTTL"),
        },
    }


def _ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def _behavior(behavior: Mapping[str, Any], resources: Mapping[str, Any]) -> dict[str, Any]:
    policy_id = behavior.get("CachePolicyId")
    logical = _ref(policy_id)
    if logical is not None:
        cache_key: dict[str, Any] = _cache_policy(resources[logical])
    elif policy_id is not None:
        cache_key = {"managed_cache_policy_id": policy_id}
    else:
        cache_key = {"legacy_forwarded_values": behavior.get("ForwardedValues")}
    functions = []
    for association in behavior.get("FunctionAssociations", []):
        arn = association.get("FunctionARN", {})
        target = arn.get("Fn::GetAtt", [None])[0] if isinstance(arn, dict) else None
        runtime = (
            resources[target]["Properties"]["FunctionConfig"]["Runtime"]
            if isinstance(target, str) and target in resources
            else None
        )
        functions.append({"event": association["EventType"], "runtime": runtime})
    return {
        "cache_key": cache_key,
        "origin_request_policy": behavior.get("OriginRequestPolicyId") is not None,
        "functions": functions,
        "lambda_at_edge": [a["EventType"] for a in behavior.get("LambdaFunctionAssociations", [])],
        "signed_urls": bool(behavior.get("TrustedKeyGroups")),
        "allowed_methods": behavior.get("AllowedMethods", ["GET", "HEAD"]),
        "cached_methods": behavior.get("CachedMethods", ["GET", "HEAD"]),
        "compress": bool(behavior.get("Compress", False)),
        "viewer_protocol": behavior.get("ViewerProtocolPolicy"),
    }


def render(templates: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The cache-key composition of every behaviour of every distribution.

    Args:
        templates: CloudFormation templates by stack name.

    Returns:
        `{stack: {distribution logical id: {path pattern: composition}}}`; the default
        behaviour is keyed `*`, the others by pattern in CloudFront's evaluation order.
    """
    rendered: dict[str, Any] = {}
    for stack in sorted(templates):
        resources = templates[stack].get("Resources", {})
        for logical in sorted(resources):
            resource = resources[logical]
            if resource.get("Type") != "AWS::CloudFront::Distribution":
                continue
            config = resource["Properties"]["DistributionConfig"]
            behaviors = {
                item["PathPattern"]: _behavior(item, resources)
                for item in config.get("CacheBehaviors", [])
            }
            behaviors["*"] = _behavior(config["DefaultCacheBehavior"], resources)
            rendered.setdefault(stack, {})[logical] = behaviors
    return rendered


def render_assembly(folder: Path) -> dict[str, Any]:
    """`render` over every `*.template.json` of a cloud assembly folder."""
    templates = {
        path.name.removesuffix(".template.json"): json.loads(path.read_text("utf-8"))
        for path in sorted(folder.glob("*.template.json"))
    }
    return render(templates)


def to_text(rendered: Mapping[str, Any]) -> str:
    """The snapshot file's exact text: sorted-key JSON, two-space indent, final newline."""
    return json.dumps(rendered, indent=2) + "\n"


def diff(
    expected: str, actual: str, *, names: tuple[str, str] = ("snapshot", "synthesized")
) -> str:
    """A unified diff between the committed snapshot and a fresh rendering ('' if equal)."""
    before, after = names
    lines = difflib.unified_diff(
        expected.splitlines(keepends=True),
        actual.splitlines(keepends=True),
        fromfile=before,
        tofile=after,
    )
    return "".join(lines)
