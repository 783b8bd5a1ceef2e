"""R6: the cache-key composition of every behaviour, rendered from synthesized templates.

The rendering is plain data (query strings, headers, cookies, TTLs, compression flags, the
functions and key groups that shape the request) read from the CloudFormation JSON, so it can be
committed as a snapshot and diffed: any change to the edge's public API shows up in review.

The cache policy is only half of the key: the viewer-request Function writes the other half
into the URI (R1-R4). Each Function is rendered by the sha256 of its code and by what it
writes for a fixed set of probe requests, run in Node.js exactly as deployed (the code is read
from the template): a rewrite that drops `h`, reorders the variant or forgets a format changes
a probe's URI, so it fails `--check` like a changed allowlist does. Signed behaviours are
rendered by their trusted key groups (each group's public keys, by comment), not a flag.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from imgcdn_infra.node import bundled_node

__all__ = [
    "PROBES",
    "SNAPSHOT_NAME",
    "FunctionRunError",
    "diff",
    "render",
    "render_assembly",
    "to_text",
]

SNAPSHOT_NAME = "cache-keys.snapshot.json"
"""Committed beside the app: `packages/infra/cache-keys.snapshot.json`."""

_PROBE_PATH = "/img/probe/a%20b.jpg/0123456789abcdef"
PROBES: Final[tuple[tuple[str, str | None], ...]] = (
    # (query, Accept): every parameter, off-ladder values and junk; fmt=auto per Accept;
    # a lossless format (no q); no parameters at all.
    ("w=287&h=100&fmt=webp&q=61&utm_source=x", None),
    ("h=300&w=2000&q=100", "image/avif,image/webp,*/*"),
    ("w=640", "image/webp,*/*"),
    ("w=300&h=200&dpr=2&fit=pad&g=entropy", "image/avif"),
    ("w=300&h=200&g=attention&fmt=jpeg", None),
    ("width=300", None),
    ("w=99999&fmt=png&q=50", None),
    ("", None),
)
"""Requests the Function is run on; what it writes for each is part of the snapshot."""

# Runs a Function's code as CloudFront does (a fresh context, no require) on each probe and
# reports the URI it writes, the query it leaves, or the status it answers instead.
_RUNNER = r"""
const vm = require('vm');
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = {};
for (const [code, probes] of Object.entries(input)) {
  const context = vm.createContext({});
  vm.runInContext(code, context);
  out[code] = probes.map(([path, query, accept]) => {
    const querystring = {};
    for (const piece of query.split('&').filter(Boolean)) {
      const eq = piece.indexOf('=');
      querystring[eq < 0 ? piece : piece.slice(0, eq)] = {value: eq < 0 ? '' : piece.slice(eq + 1)};
    }
    const headers = accept === null ? {} : {accept: {value: accept}};
    const result = context.handler({
      version: '1.0', context: {eventType: 'viewer-request'}, viewer: {ip: '198.51.100.11'},
      request: {method: 'GET', uri: path, querystring, headers, cookies: {}},
    });
    return result.statusCode !== undefined ? {status: result.statusCode}
      : {uri: result.uri, query_left: Object.keys(result.querystring || {}).sort()};
  });
}
process.stdout.write(JSON.stringify(out));
"""


class FunctionRunError(RuntimeError):
    """The viewer-request Function could not be run on the probes (no Node.js, or it threw)."""


def _node() -> str:
    found = bundled_node()
    node = str(found) if found is not None else shutil.which("node")
    if node is None:
        msg = "no Node.js found to run the viewer-request Function (install the infra package)"
        raise FunctionRunError(msg)
    return node


def _probe_functions(codes: list[str]) -> dict[str, list[dict[str, Any]]]:
    """What each Function's code writes for every probe, by code."""
    if not codes:
        return {}
    probes = [[_PROBE_PATH, query, accept] for query, accept in PROBES]
    payload = json.dumps(dict.fromkeys(codes, probes))
    done = subprocess.run(  # noqa: S603 - a fixed script on the bundled node, no shell
        [_node(), "-e", _RUNNER], input=payload, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        msg = f"running the viewer-request Function on the probes failed: {done.stderr.strip()}"
        raise FunctionRunError(msg)
    result: dict[str, list[dict[str, Any]]] = json.loads(done.stdout)
    return result


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


def _key_group(resource: Mapping[str, Any], resources: Mapping[str, Any]) -> dict[str, Any]:
    config = resource["Properties"]["KeyGroupConfig"]
    keys = [resources.get(_ref(item) or "", {}) for item in config.get("Items", [])]
    return {
        "comment": config.get("Comment"),
        "public_keys": [
            key.get("Properties", {}).get("PublicKeyConfig", {}).get("Comment") for key in keys
        ],
    }


def _behavior(
    behavior: Mapping[str, Any],
    resources: Mapping[str, Any],
    probes: Mapping[str, list[dict[str, Any]]],
) -> dict[str, Any]:
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
        function = resources.get(target) if isinstance(target, str) else None
        properties = function["Properties"] if function else {}
        code = properties.get("FunctionCode")
        functions.append(
            {
                "event": association["EventType"],
                "runtime": properties.get("FunctionConfig", {}).get("Runtime"),
                "code_sha256": hashlib.sha256(code.encode("utf-8")).hexdigest()
                if isinstance(code, str)
                else None,
                "writes": [
                    {"query": query, "accept": accept, **wrote}
                    for (query, accept), wrote in zip(PROBES, probes.get(code, []), strict=True)
                ]
                if isinstance(code, str)
                else [],
            }
        )
    key_groups = [
        _key_group(resources[logical], resources)
        for logical in (_ref(group) or "" for group in behavior.get("TrustedKeyGroups", []))
        if logical in resources
    ]
    return {
        "cache_key": cache_key,
        "origin_request_policy": behavior.get("OriginRequestPolicyId") is not None,
        "functions": functions,
        "lambda_at_edge": [a["EventType"] for a in behavior.get("LambdaFunctionAssociations", [])],
        "signed_urls": bool(behavior.get("TrustedKeyGroups")),
        "trusted_key_groups": key_groups,
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
    codes = sorted(
        {
            resource["Properties"]["FunctionCode"]
            for template in templates.values()
            for resource in template.get("Resources", {}).values()
            if resource.get("Type") == "AWS::CloudFront::Function"
            and isinstance(resource.get("Properties", {}).get("FunctionCode"), str)
        }
    )
    probes = _probe_functions(codes)
    rendered: dict[str, Any] = {}
    for stack in sorted(templates):
        resources = templates[stack].get("Resources", {})
        for logical in sorted(resources):
            resource = resources[logical]
            if resource.get("Type") != "AWS::CloudFront::Distribution":
                continue
            config = resource["Properties"]["DistributionConfig"]
            behaviors = {
                item["PathPattern"]: _behavior(item, resources, probes)
                for item in config.get("CacheBehaviors", [])
            }
            behaviors["*"] = _behavior(config["DefaultCacheBehavior"], resources, probes)
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
