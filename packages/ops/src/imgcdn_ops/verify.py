"""Drift: the live CloudFront distribution against what the same CDK app synthesizes.

Both sides are brought to one canonical shape (a `View`) and compared field by field:

* `expected_from_template` reads a synthesized (or deployed, `GetTemplate`) CloudFormation
  template: the `AWS::CloudFront::Distribution` and the cache, origin request and response
  headers policies, Function, key groups and public keys it references, each inlined by logical
  id, so policies are compared by their CONTENTS, never by their ids. A value the template
  cannot give without the deployed stack (a bucket's domain name, the Function URL's host) is
  resolved through the `resources` map (logical id -> physical id, plus pseudo parameters such
  as `AWS::Region`) when one is given, and otherwise matches any deployed value.
* `deployed` reads the same things with boto3 (GetDistributionConfig, GetCachePolicy,
  GetOriginRequestPolicy, GetResponseHeadersPolicy, DescribeFunction and GetFunction at the LIVE
  stage, GetKeyGroup, GetPublicKey).
* `compare` lists every `Difference(path, deployed, expected)`, with paths a person can read,
  e.g. `CacheBehaviors[/ugc/*].CachePolicy.MinTTL`.

CloudFormation writes lists as plain arrays where the API writes `{Quantity, Items}`, names a
few fields differently (`IPV6Enabled` / `IsIPV6Enabled`) and leaves unset what the API returns
filled with CloudFront's defaults: the canonical shape follows the API's names with plain lists,
and the expected side carries CloudFront's documented defaults for what the template leaves
unset. A field absent on one side and empty (`""`, `false`, `0`, `[]`) on the other is the same
field; any other value the code never set is drift (the console's "TTLs nobody set").
Lists are order-insensitive where CloudFront is (query strings, headers, methods, status codes)
and ordered where order is behaviour (cache behaviours, origin group members).

`handler` is the scheduled check's Lambda entry point (the `ops` bundle): it reads its own stack's
processed template and physical ids, compares, logs every difference and writes the EMF metric
`DriftedFields`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import boto3
import structlog

from imgcdn_aws.emf import Metrics, Unit
from imgcdn_aws.logs import configure_logging

__all__ = [
    "ANY",
    "Difference",
    "DriftError",
    "NotFound",
    "View",
    "check_stack",
    "compare",
    "deployed",
    "expected_from_template",
    "handler",
]

DISTRIBUTION = "AWS::CloudFront::Distribution"
METRIC = "DriftedFields"
"""The EMF metric (namespace `imgcdn`) the scheduled check writes: differing fields, 0 in sync."""
STACK_NAME_ENV = "IMGCDN_STACK_NAME"
"""The scheduled check's own stack, whose template and resources it reads."""


class _AnyValue:
    """What a template cannot know before deploy (a generated domain name): matches anything."""

    _instance: _AnyValue | None = None

    def __new__(cls) -> _AnyValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "(any value)"

    def __deepcopy__(self, memo: dict[int, Any]) -> _AnyValue:
        return self


ANY: Final = _AnyValue()
"""The expected value of a field the template leaves to deploy time."""
NOT_SET: Final = "(not set)"
"""How a difference shows a field that one side does not have."""


class DriftError(RuntimeError):
    """The comparison cannot be made; the message says what was wrong and what is allowed."""


class NotFound(DriftError):
    """The distribution (or something it references) does not exist in the account."""


@dataclass(frozen=True, slots=True)
class View:
    """One distribution's configuration with every policy, Function and key group inlined."""

    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Difference:
    """One field whose deployed value is not the expected one."""

    path: str
    deployed: Any
    expected: Any

    def to_json(self) -> dict[str, Any]:
        """The difference as JSON-ready values (`(any value)` and `(not set)` as text)."""
        return {
            "path": self.path,
            "deployed": _plain(self.deployed),
            "expected": _plain(self.expected),
        }


def _plain(value: Any) -> Any:
    if value is ANY:
        return repr(ANY)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --- the canonical shape -------------------------------------------------------------------

_RENAMES: Final[Mapping[str, str]] = {
    # CloudFormation's name -> the API's name
    "IPV6Enabled": "IsIPV6Enabled",
    "OriginSSLProtocols": "OriginSslProtocols",
    "AcmCertificateArn": "ACMCertificateArn",
    "SslSupportMethod": "SSLSupportMethod",
    "IamCertificateId": "IAMCertificateId",
}
_DROPPED: Final = frozenset(
    {
        "CallerReference",  # chosen by whoever created the resource, not configuration
        "Certificate",  # deprecated mirrors of the ViewerCertificate fields
        "CertificateSource",
    }
)
_UNORDERED: Final = frozenset(
    {
        "AccessControlAllowHeaders",
        "AccessControlAllowMethods",
        "AccessControlAllowOrigins",
        "AccessControlExposeHeaders",
        "Aliases",
        "AllowedMethods",
        "CachedMethods",
        "Cookies",
        "Headers",
        "OriginSslProtocols",
        "QueryStrings",
        "StatusCodes",
        "Locations",
    }
)
"""Lists whose order CloudFront ignores: compared as sets (sorted)."""
_KEYS: Final[tuple[str, ...]] = ("PathPattern", "Id", "EventType", "ErrorCode", "Header", "Name")
"""Fields that name an item of a list of objects; the path shows the item by it."""
_ORDERED_KEYED: Final = frozenset({"CacheBehaviors"})
"""Keyed lists whose order is behaviour: CloudFront tries cache behaviours in order."""

# CloudFront's values for fields a template may leave out (the API always returns them).
_DISTRIBUTION_DEFAULTS: Final[Mapping[str, Any]] = {
    "Aliases": [],
    "CacheBehaviors": [],
    "Comment": "",
    "CustomErrorResponses": [],
    "DefaultRootObject": "",
    "HttpVersion": "http1.1",
    "IsIPV6Enabled": False,
    "Logging": {"Enabled": False, "IncludeCookies": False, "Bucket": "", "Prefix": ""},
    "OriginGroups": [],
    "PriceClass": "PriceClass_All",
    "Restrictions": {"GeoRestriction": {"RestrictionType": "none", "Items": []}},
    "ViewerCertificate": {"CloudFrontDefaultCertificate": True},
    "WebACLId": "",
}
_ORIGIN_DEFAULTS: Final[Mapping[str, Any]] = {
    "ConnectionAttempts": 3,
    "ConnectionTimeout": 10,
    "CustomHeaders": [],
    "OriginPath": "",
    "OriginShield": {"Enabled": False},
}
_CUSTOM_ORIGIN_DEFAULTS: Final[Mapping[str, Any]] = {
    "HTTPPort": 80,
    "HTTPSPort": 443,
    "OriginKeepaliveTimeout": 5,
    "OriginReadTimeout": 30,
}
_ERROR_RESPONSE_DEFAULTS: Final[Mapping[str, Any]] = {"ErrorCachingMinTTL": 300}


def _is_list_object(value: Mapping[str, Any]) -> bool:
    keys = set(value)
    return (
        bool(keys)
        and keys <= {"Quantity", "Items", "Enabled"}
        and bool(keys & {"Quantity", "Items"})
    )


def _canonical(value: Any) -> Any:
    """API or CloudFormation shape -> plain lists, API names, no bookkeeping fields."""
    if isinstance(value, Mapping):
        if _is_list_object(value):
            return [_canonical(v) for v in value.get("Items") or []]
        return {
            _RENAMES.get(k, k): _canonical(v)
            for k, v in value.items()
            if k not in _DROPPED and k != "ResponseMetadata"
        }
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _with_defaults(defaults: Mapping[str, Any], value: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(defaults))
    for key, item in value.items():
        if isinstance(item, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _with_defaults(merged[key], item)
        else:
            merged[key] = item
    return merged


def _shape_distribution(config: Mapping[str, Any], *, from_template: bool) -> dict[str, Any]:
    """Bring a canonical DistributionConfig to the comparison shape (both sides)."""
    shaped = dict(config)
    for behavior in _behaviors(shaped):
        methods = behavior.get("AllowedMethods")
        # The API nests CachedMethods inside AllowedMethods; CloudFormation puts them side by side.
        if isinstance(methods, Mapping):
            behavior["AllowedMethods"] = methods.get("Items", [])
            behavior["CachedMethods"] = methods.get("CachedMethods", [])
    certificate = shaped.get("ViewerCertificate")
    if isinstance(certificate, Mapping) and certificate.get("CloudFrontDefaultCertificate"):
        # With CloudFront's certificate, the protocol and SNI fields do not apply.
        shaped["ViewerCertificate"] = {"CloudFrontDefaultCertificate": True}
    if from_template:
        shaped = _with_defaults(_DISTRIBUTION_DEFAULTS, shaped)
        logging = shaped["Logging"]
        if logging.get("Bucket") not in ("", None):
            logging["Enabled"] = True
        shaped["Origins"] = [_origin_defaults(o) for o in shaped.get("Origins", [])]
        shaped["CustomErrorResponses"] = [
            _with_defaults(_ERROR_RESPONSE_DEFAULTS, r) for r in shaped["CustomErrorResponses"]
        ]
    return shaped


def _origin_defaults(origin: Mapping[str, Any]) -> dict[str, Any]:
    shaped = _with_defaults(_ORIGIN_DEFAULTS, origin)
    if isinstance(shaped.get("CustomOriginConfig"), Mapping):
        shaped["CustomOriginConfig"] = _with_defaults(
            _CUSTOM_ORIGIN_DEFAULTS, shaped["CustomOriginConfig"]
        )
    return shaped


def _behaviors(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = [config["DefaultCacheBehavior"]] if "DefaultCacheBehavior" in config else []
    found += list(config.get("CacheBehaviors") or [])
    return [b for b in found if isinstance(b, dict)]


def _code_digest(code: bytes) -> str:
    # The whole Function is ~10 KB of JavaScript: its digest says "changed" readably.
    return f"sha256:{hashlib.sha256(code).hexdigest()[:16]} ({len(code)} bytes)"


# --- the expected side: a CloudFormation template ---------------------------------------------


class _Template:
    """Resolves a template's intrinsic functions as far as the template (and `resources`) allow."""

    def __init__(self, template: Mapping[str, Any], resources: Mapping[str, str]) -> None:
        self.resources: Mapping[str, Any] = template.get("Resources", {})
        self.physical = resources

    def resource(self, logical_id: str, kind: str) -> Mapping[str, Any]:
        found = self.resources.get(logical_id)
        if not isinstance(found, Mapping) or found.get("Type") != kind:
            msg = f"the template's {logical_id!r} is not an {kind}"
            raise DriftError(msg)
        properties: Mapping[str, Any] = found.get("Properties", {})
        return properties

    def referenced(self, value: Any, kind: str) -> str | None:
        """The logical id a `Ref`/`Fn::GetAtt` names, if it is a resource of `kind`."""
        if isinstance(value, Mapping):
            target: Any = None
            if "Ref" in value:
                target = value["Ref"]
            elif "Fn::GetAtt" in value:
                att = value["Fn::GetAtt"]
                target = att[0] if isinstance(att, list) else str(att).split(".", 1)[0]
            found = self.resources.get(target) if isinstance(target, str) else None
            if isinstance(found, Mapping) and found.get("Type") == kind:
                return str(target)
        return None

    def resolve(self, value: Any) -> Any:
        """Literal values stay; intrinsics are evaluated, or `ANY` when they cannot be."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            ((name, arg),) = value.items()
            intrinsic = _INTRINSICS.get(name)
            if intrinsic is not None:
                return intrinsic(self, arg)
        return {k: self.resolve(v) for k, v in value.items()}

    def ref(self, name: Any) -> Any:
        return self.physical.get(str(name), ANY)

    def get_att(self, arg: Any) -> Any:
        logical, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
        physical = self.physical.get(logical)
        kind = self.resources.get(logical, {}).get("Type")
        if physical is None:
            return ANY
        if kind == "AWS::CloudFront::OriginAccessControl" and attribute == "Id":
            return physical
        if kind == "AWS::S3::Bucket" and attribute == "RegionalDomainName":
            region, suffix = self.physical.get("AWS::Region"), self.physical.get("AWS::URLSuffix")
            if region and suffix:
                return f"{physical}.s3.{region}.{suffix}"
        if kind == "AWS::WAFv2::WebACL" and attribute == "Arn":
            return ANY  # the physical id is `name|id|scope`, not the ARN the distribution holds
        return ANY

    def join(self, arg: Any) -> Any:
        delimiter, items = arg
        parts = [self.resolve(item) for item in items]
        if any(p is ANY for p in parts):
            return ANY
        return str(delimiter).join(str(p) for p in parts)

    def select(self, arg: Any) -> Any:
        index, items = arg
        resolved = self.resolve(items)
        if resolved is ANY or not isinstance(resolved, list) or ANY in resolved:
            return ANY
        return resolved[int(index)]

    def split(self, arg: Any) -> Any:
        delimiter, text = arg
        resolved = self.resolve(text)
        return ANY if resolved is ANY else str(resolved).split(str(delimiter))


_INTRINSICS: Final[Mapping[str, Callable[[_Template, Any], Any]]] = {
    "Ref": _Template.ref,
    "Fn::GetAtt": _Template.get_att,
    "Fn::Join": _Template.join,
    "Fn::Select": _Template.select,
    "Fn::Split": _Template.split,
    # Cross-stack and cross-Region values (WAF in us-east-1) are known only once deployed.
    "Fn::ImportValue": lambda _t, _a: ANY,
    "Fn::Sub": lambda _t, _a: ANY,
}


def expected_from_template(
    template: Mapping[str, Any], resources: Mapping[str, str] | None = None
) -> View:
    """What the distribution should be, from a CloudFormation template of the imgcdn stack.

    Args:
        template: The stack's template (`cdk.out/<stack>.template.json`, or `GetTemplate`).
        resources: Logical id -> physical id of the deployed stack, and pseudo parameters
            (`AWS::Region`, `AWS::URLSuffix`, ...); values they settle are compared exactly,
            others match any deployed value.

    Returns:
        The expected view.

    Raises:
        DriftError: The template has no CloudFront distribution, or more than one.
    """
    source = _Template(template, resources or {})
    found = [k for k, r in source.resources.items() if r.get("Type") == DISTRIBUTION]
    if len(found) != 1:
        msg = (
            f"the template holds {len(found)} CloudFront distributions; allowed: the imgcdn "
            "stack's template (exactly one AWS::CloudFront::Distribution)"
        )
        raise DriftError(msg)
    raw = source.resource(found[0], DISTRIBUTION).get("DistributionConfig", {})
    config = _canonical(raw)
    for behavior, raw_behavior in zip(_behaviors(config), _behaviors(raw), strict=True):
        _inline_template_behavior(source, behavior, raw_behavior)
    # `_canonical` leaves intrinsics as they are (none is a list object); evaluate them now.
    return View(_shape_distribution(source.resolve(config), from_template=True))


_POLICIES: Final[tuple[tuple[str, str, str, str], ...]] = (
    ("CachePolicyId", "CachePolicy", "AWS::CloudFront::CachePolicy", "CachePolicyConfig"),
    (
        "OriginRequestPolicyId",
        "OriginRequestPolicy",
        "AWS::CloudFront::OriginRequestPolicy",
        "OriginRequestPolicyConfig",
    ),
    (
        "ResponseHeadersPolicyId",
        "ResponseHeadersPolicy",
        "AWS::CloudFront::ResponseHeadersPolicy",
        "ResponseHeadersPolicyConfig",
    ),
)


def _inline_template_behavior(
    source: _Template, behavior: dict[str, Any], raw: Mapping[str, Any]
) -> None:
    for id_field, name, kind, config_field in _POLICIES:
        reference = raw.get(id_field)
        if reference is None:
            continue
        behavior.pop(id_field, None)
        logical = source.referenced(reference, kind)
        if logical is None:
            # A managed or external policy: its id is the configuration.
            behavior[id_field] = source.resolve(reference)
            continue
        behavior[name] = _canonical(source.resolve(source.resource(logical, kind)[config_field]))
    associations = []
    for item in raw.get("FunctionAssociations") or []:
        logical = source.referenced(item.get("FunctionARN"), "AWS::CloudFront::Function")
        entry: dict[str, Any] = {"EventType": item.get("EventType")}
        if logical is None:
            entry["FunctionARN"] = source.resolve(item.get("FunctionARN"))
        else:
            props = source.resource(logical, "AWS::CloudFront::Function")
            entry["Function"] = {
                "Name": source.resolve(props.get("Name")),
                "FunctionConfig": _canonical(source.resolve(props.get("FunctionConfig", {}))),
                "FunctionCode": _code_digest(str(props.get("FunctionCode", "")).encode()),
            }
        associations.append(entry)
    behavior["FunctionAssociations"] = associations
    groups = []
    for reference in raw.get("TrustedKeyGroups") or []:
        logical = source.referenced(reference, "AWS::CloudFront::KeyGroup")
        if logical is None:
            groups.append({"Id": source.resolve(reference)})
            continue
        group = dict(source.resource(logical, "AWS::CloudFront::KeyGroup")["KeyGroupConfig"])
        keys = []
        for key_ref in group.get("Items", []):
            key_logical = source.referenced(key_ref, "AWS::CloudFront::PublicKey")
            if key_logical is None:
                keys.append({"Id": source.resolve(key_ref)})
                continue
            key = source.resource(key_logical, "AWS::CloudFront::PublicKey")["PublicKeyConfig"]
            keys.append(_public_key(_canonical(source.resolve(key))))
        groups.append({**_canonical(source.resolve({**group, "Items": []})), "Items": keys})
    behavior["TrustedKeyGroups"] = groups


def _public_key(config: Mapping[str, Any]) -> dict[str, Any]:
    shaped = dict(config)
    if isinstance(shaped.get("EncodedKey"), str):
        # The API returns the PEM with a trailing newline whether or not it was sent with one.
        shaped["EncodedKey"] = shaped["EncodedKey"].strip()
    return shaped


# --- the deployed side: boto3 -------------------------------------------------------------------


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def deployed(cloudfront: Any, distribution_id: str) -> View:
    """The live distribution, read with a boto3 CloudFront client.

    Args:
        cloudfront: `boto3.client("cloudfront")` (or anything with the same methods).
        distribution_id: The distribution's id (the stack's `DistributionId` output).

    Returns:
        The deployed view.

    Raises:
        NotFound: There is no such distribution (or a policy it names is gone).
    """
    try:
        response = cloudfront.get_distribution_config(Id=distribution_id)
    except Exception as exc:
        if _error_code(exc) == "NoSuchDistribution":
            msg = (
                f"distribution {distribution_id} not found in this account; allowed: the "
                "DistributionId output of the imgcdn stack"
            )
            raise NotFound(msg) from None
        raise
    config = _canonical(response["DistributionConfig"])
    for behavior in _behaviors(config):
        _inline_deployed_behavior(cloudfront, behavior)
    return View(_shape_distribution(config, from_template=False))


def _inline_deployed_behavior(cloudfront: Any, behavior: dict[str, Any]) -> None:
    readers = {
        "CachePolicyId": lambda i: cloudfront.get_cache_policy(Id=i)["CachePolicy"],
        "OriginRequestPolicyId": lambda i: cloudfront.get_origin_request_policy(Id=i)[
            "OriginRequestPolicy"
        ],
        "ResponseHeadersPolicyId": lambda i: cloudfront.get_response_headers_policy(Id=i)[
            "ResponseHeadersPolicy"
        ],
    }
    for id_field, name, _kind, config_field in _POLICIES:
        policy_id = behavior.pop(id_field, None)
        if not policy_id:
            continue
        policy = readers[id_field](policy_id)
        # Managed policies belong to AWS: compare them by id, as the template names them.
        if str(policy[config_field].get("Name", "")).startswith("Managed-"):
            behavior[id_field] = policy_id
            continue
        behavior[name] = _canonical(policy[config_field])
    associations = []
    for item in behavior.get("FunctionAssociations") or []:
        name = str(item["FunctionARN"]).rsplit("/", 1)[-1]
        summary = cloudfront.describe_function(Name=name, Stage="LIVE")["FunctionSummary"]
        code = cloudfront.get_function(Name=name, Stage="LIVE")["FunctionCode"]
        data = code.read() if hasattr(code, "read") else bytes(code)
        associations.append(
            {
                "EventType": item["EventType"],
                "Function": {
                    "Name": summary["Name"],
                    "FunctionConfig": _canonical(summary.get("FunctionConfig", {})),
                    "FunctionCode": _code_digest(data),
                },
            }
        )
    behavior["FunctionAssociations"] = associations
    groups = []
    for group_id in behavior.get("TrustedKeyGroups") or []:
        group = cloudfront.get_key_group(Id=group_id)["KeyGroup"]["KeyGroupConfig"]
        keys = [
            _public_key(_canonical(cloudfront.get_public_key(Id=k)["PublicKey"]["PublicKeyConfig"]))
            for k in group.get("Items", [])
        ]
        groups.append({**_canonical({**group, "Items": []}), "Items": keys})
    behavior["TrustedKeyGroups"] = groups


# --- the comparison -----------------------------------------------------------------------------


def _empty(value: Any) -> bool:
    if value is None or value is False or value in ("", 0):
        return True
    if isinstance(value, list):
        return not value
    if isinstance(value, Mapping):
        return all(_empty(v) for v in value.values())
    return False


def _same_scalar(deployed_value: Any, expected: Any) -> bool:
    if expected is ANY or deployed_value == expected:
        return True
    # The API returns some numbers as text (ResponseCode "200"); the template writes 200.
    scalars = (int, float, str)
    if isinstance(deployed_value, bool) or isinstance(expected, bool):
        return False
    return (
        isinstance(deployed_value, scalars)
        and isinstance(expected, scalars)
        and str(deployed_value) == str(expected)
    )


def _item_key(*lists: list[Any]) -> str | None:
    """The field that names each item of both lists (unique within each), if there is one."""
    items = [i for items in lists for i in items]
    if not items or not all(isinstance(i, Mapping) for i in items):
        return None
    for key in _KEYS:
        if all(_names_items(items, key) for items in lists):
            return key
    return None


def _names_items(items: list[Mapping[str, Any]], key: str) -> bool:
    values = [i.get(key) for i in items]
    return all(isinstance(v, str | int) for v in values) and len(set(values)) == len(values)


def _same_item(actual: Any, expected: Any) -> bool:
    if isinstance(expected, Mapping | list) or isinstance(actual, Mapping | list):
        return _sort_key(actual) == _sort_key(expected)
    return _same_scalar(actual, expected)


def _sort_key(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, default=str)


def compare(expected: View, deployed_view: View) -> list[Difference]:
    """Every field where the deployed distribution differs from the expected one.

    Args:
        expected: From `expected_from_template`.
        deployed_view: From `deployed`.

    Returns:
        The differences, in path order of the expected configuration; empty when in sync.
    """
    found: list[Difference] = []
    _diff("", expected.config, deployed_view.config, found)
    return found


def _join_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _diff(path: str, expected: Any, actual: Any, found: list[Difference]) -> None:
    if expected is ANY:
        return
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        for name in [*expected, *(k for k in actual if k not in expected)]:
            child = _join_path(path, name)
            if name not in actual:
                if not _empty(expected[name]) and expected[name] is not ANY:
                    found.append(Difference(child, NOT_SET, expected[name]))
            elif name not in expected:
                if not _empty(actual[name]):
                    found.append(Difference(child, actual[name], NOT_SET))
            else:
                _diff(child, expected[name], actual[name], found)
        return
    if isinstance(expected, list) and isinstance(actual, list):
        _diff_list(path, expected, actual, found)
        return
    if isinstance(expected, Mapping | list) or isinstance(actual, Mapping | list):
        if not (_empty(expected) and _empty(actual)):
            found.append(Difference(path, actual, expected))
        return
    if not _same_scalar(actual, expected):
        found.append(Difference(path, actual, expected))


def _diff_list(path: str, expected: list[Any], actual: list[Any], found: list[Difference]) -> None:
    leaf = path.rsplit(".", 1)[-1]
    key = _item_key(expected, actual)
    if key is None:
        if leaf in _UNORDERED:
            expected, actual = sorted(expected, key=_sort_key), sorted(actual, key=_sort_key)
        if len(expected) != len(actual) or not all(
            _same_item(a, e) for e, a in zip(expected, actual, strict=True)
        ):
            found.append(Difference(path, actual, expected))
        return
    wanted = {item[key]: item for item in expected}
    present = {item[key]: item for item in actual}
    if leaf in _ORDERED_KEYED:
        order_expected = [i[key] for i in expected]
        order_actual = [i[key] for i in actual if i[key] in wanted]
        if [k for k in order_expected if k in present] != order_actual:
            found.append(Difference(f"{path}.order", order_actual, order_expected))
    for name, item in wanted.items():
        child = f"{path}[{name}]"
        if name not in present:
            found.append(Difference(child, NOT_SET, item))
        else:
            _diff(child, item, present[name], found)
    for name, item in present.items():
        if name not in wanted:
            found.append(Difference(f"{path}[{name}]", item, NOT_SET))


# --- the scheduled check ------------------------------------------------------------------------


def check_stack(cloudformation: Any, cloudfront: Any, stack_name: str) -> list[Difference]:
    """Compare a deployed imgcdn stack's distribution with the stack's own processed template.

    Args:
        cloudformation: A boto3 CloudFormation client of the stack's Region.
        cloudfront: A boto3 CloudFront client.
        stack_name: The stack's name (or id).

    Returns:
        Every difference; empty when in sync.

    Raises:
        DriftError: The stack holds no distribution.
    """
    body = cloudformation.get_template(StackName=stack_name, TemplateStage="Processed")[
        "TemplateBody"
    ]
    template = json.loads(body) if isinstance(body, str) else body
    resources: dict[str, str] = {}
    kinds: dict[str, str] = {}
    # ListStackResources pages through every resource (DescribeStackResources stops at 100).
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for item in page.get("StackResourceSummaries", ()):
            if item.get("PhysicalResourceId"):
                resources[item["LogicalResourceId"]] = item["PhysicalResourceId"]
                kinds[item["LogicalResourceId"]] = item["ResourceType"]
    stacks = cloudformation.describe_stacks(StackName=stack_name).get("Stacks", ())
    stack_id = str(stacks[0].get("StackId", "")) if stacks else ""
    # arn:<partition>:cloudformation:<region>:<account>:stack/<name>/<id>
    parts = stack_id.split(":")
    if len(parts) >= 6:
        partition, region, account = parts[1], parts[3], parts[4]
        suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
        resources.update(
            {
                "AWS::Partition": partition,
                "AWS::Region": region,
                "AWS::AccountId": account,
                "AWS::StackName": stack_name,
                "AWS::StackId": stack_id,
                "AWS::URLSuffix": suffix,
            }
        )
    distribution = next((p for k, p in resources.items() if kinds.get(k) == DISTRIBUTION), None)
    if distribution is None:
        msg = f"stack {stack_name} holds no deployed {DISTRIBUTION}"
        raise DriftError(msg)
    return compare(expected_from_template(template, resources), deployed(cloudfront, distribution))


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The scheduled check (EventBridge): log every difference and write `DriftedFields`.

    Raises:
        DriftError: The stack name is not configured or the stack holds no distribution.
    """
    configure_logging(json=True)
    stack_name = os.environ.get(STACK_NAME_ENV, "")
    if not stack_name:
        msg = f"{STACK_NAME_ENV} is not set; the stack's name is required"
        raise DriftError(msg)
    log = structlog.get_logger("imgcdn.verify").bind(
        stack=stack_name, request_id=getattr(context, "aws_request_id", None)
    )
    differences = check_stack(
        boto3.client("cloudformation"), boto3.client("cloudfront"), stack_name
    )
    for difference in differences:
        log.warning("drift", **difference.to_json())
    Metrics().emit({METRIC: (len(differences), Unit.COUNT)}, properties={"stack": stack_name})
    log.info("verified", drifted_fields=len(differences))
    return {"stack": stack_name, "drifted_fields": len(differences)}
