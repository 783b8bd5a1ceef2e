"""A deployed imgcdn distribution, built from a synthesized template, behind real boto3 clients.

moto 5.2.5 (moto/cloudfront) cannot hold this deployment faithfully:

* it has no cache, origin request or response headers policies at all (no Get*Policy API);
* its distribution model drops every behaviour's `FunctionAssociations` (always Quantity 0) and
  every origin's `OriginAccessControlId`;
* its key groups and public keys drop their `Comment`.

So the narrowest substitute serves exactly those reads, and moto serves the rest: the Function
(create, DescribeFunction, GetFunction, delete) and any distribution id this deployment does not
hold (moto's `NoSuchDistribution`). The code under test always calls a real
`boto3.client("cloudfront")`: served operations are answered from a `before-call` hook (as
botocore's own Stubber does), after botocore validated the request against the service model,
and every served response is validated against the operation's output shape, so a field name
or shape that boto3 would not return fails the test. The API shape is derived here from the
CloudFormation shape independently of `imgcdn_ops.verify`, with the defaults CloudFront fills in.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.validate import validate_parameters

ACCOUNT = "123456789012"
REGION = "us-east-1"

# CloudFormation field -> API field, where they differ.
_NAMES = {"IPV6Enabled": "IsIPV6Enabled", "OriginSSLProtocols": "OriginSslProtocols"}
# API lists that are plain arrays, not {Quantity, Items}.
_PLAIN_LISTS = {"Items"}


def _digits(name: str, count: int) -> str:
    """Stable digits for an id (str hashes change with every interpreter)."""
    return str(int(hashlib.sha256(name.encode()).hexdigest(), 16))[:count]


def _wrap(items: list[Any]) -> dict[str, Any]:
    return {"Quantity": len(items), "Items": items}


def api_shape(value: Any, name: str = "") -> Any:
    """CloudFormation's shape of a CloudFront config -> the API's (lists as Quantity/Items)."""
    if isinstance(value, list):
        items = [api_shape(v) for v in value]
        return items if name in _PLAIN_LISTS else _wrap(items)
    if isinstance(value, Mapping):
        shaped = {_NAMES.get(k, k): api_shape(v, k) for k, v in value.items()}
        if "Items" in shaped and "Quantity" not in shaped:
            shaped["Quantity"] = len(shaped["Items"])
        return shaped
    return value


class Deployment:
    """The template's distribution and what it references, "deployed" for one test."""

    def __init__(self, template: Mapping[str, Any]) -> None:
        self.template = template
        self.resources: Mapping[str, Any] = template["Resources"]
        self.client = boto3.client("cloudfront", region_name=REGION)
        self.physical: dict[str, str] = {
            "AWS::Region": REGION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::Partition": "aws",
            "AWS::AccountId": ACCOUNT,
        }
        self.policies: dict[str, dict[str, Any]] = {}
        self.key_groups: dict[str, dict[str, Any]] = {}
        self.public_keys: dict[str, dict[str, Any]] = {}
        self.function_arns: dict[str, str] = {}
        for logical, resource in self.resources.items():
            kind, props = resource["Type"], resource.get("Properties", {})
            if kind == "AWS::S3::Bucket":
                self.physical[logical] = f"imgcdn-{logical.lower()[:40]}"
            elif kind == "AWS::CloudFront::OriginAccessControl":
                self.physical[logical] = f"E{_digits(logical, 12)}"
            elif kind == "AWS::CloudFront::PublicKey":
                self._public_key(logical, props)
        for logical, resource in self.resources.items():
            kind, props = resource["Type"], resource.get("Properties", {})
            if kind.endswith("Policy") and kind.startswith("AWS::CloudFront::"):
                self._policy(logical, kind, props)
            elif kind == "AWS::CloudFront::KeyGroup":
                self._key_group(logical, props)
            elif kind == "AWS::CloudFront::Function":
                self.create_function(logical, props["FunctionCode"])
        distribution = next(
            k for k, r in self.resources.items() if r["Type"] == "AWS::CloudFront::Distribution"
        )
        self.distribution_id = "E2IMGCDNVERIFY"
        self.physical[distribution] = self.distribution_id
        self.config = self._distribution_config(
            self.resources[distribution]["Properties"]["DistributionConfig"]
        )
        self.client.meta.events.register("before-call.cloudfront.*", self._answer)

    # -- building ------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:  # noqa: PLR0911 - one return per intrinsic
        """Evaluate the template's intrinsics with this deployment's ids and names."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, Mapping):
            return value
        if "Ref" in value:
            return self.physical[value["Ref"]]
        if "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"]
            kind = self.resources[logical]["Type"]
            if attribute == "FunctionARN":
                return self.function_arns[logical]
            if attribute == "RegionalDomainName":
                return f"{self.physical[logical]}.s3.{REGION}.amazonaws.com"
            if attribute == "FunctionUrl":
                return "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws/"
            if kind == "AWS::CloudFront::OriginAccessControl":
                return self.physical[logical]
            raise AssertionError(value)
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return delimiter.join(str(self.resolve(i)) for i in items)
        if "Fn::Select" in value:
            index, items = value["Fn::Select"]
            return self.resolve(items)[int(index)]
        if "Fn::Split" in value:
            delimiter, text = value["Fn::Split"]
            return str(self.resolve(text)).split(delimiter)
        return {k: self.resolve(v) for k, v in value.items()}

    def _policy(self, logical: str, kind: str, props: Mapping[str, Any]) -> None:
        name = kind.rsplit("::", 1)[1]
        policy_id = f"{_digits(logical, 8)}-0000-4000-8000-000000000000"
        config = api_shape(self.resolve(props[f"{name}Config"]))
        if name == "CachePolicy":
            params = config["ParametersInCacheKeyAndForwardedToOrigin"]
            params["HeadersConfig"].setdefault("Headers", _wrap([]))
            params["CookiesConfig"].setdefault("Cookies", _wrap([]))
        if name == "ResponseHeadersPolicy":
            sts = config["SecurityHeadersConfig"]["StrictTransportSecurity"]
            sts.setdefault("Preload", False)
            config.setdefault("RemoveHeadersConfig", _wrap([]))
        self.physical[logical] = policy_id
        self.policies[policy_id] = {"Id": policy_id, f"{name}Config": config}

    def _public_key(self, logical: str, props: Mapping[str, Any]) -> None:
        key_id = f"K{_digits(logical, 12)}"
        config = dict(self.resolve(props["PublicKeyConfig"]))
        config["EncodedKey"] = config["EncodedKey"].rstrip("\n") + "\n"  # as the API returns it
        self.physical[logical] = key_id
        self.public_keys[key_id] = {"Id": key_id, "PublicKeyConfig": config}

    def _key_group(self, logical: str, props: Mapping[str, Any]) -> None:
        group_id = f"{_digits(logical, 8)}-1111-4000-8000-000000000000"
        config = dict(self.resolve(props["KeyGroupConfig"]))
        self.physical[logical] = group_id
        self.key_groups[group_id] = {"Id": group_id, "KeyGroupConfig": config}

    def create_function(self, logical: str, code: str) -> None:
        """Create (or replace, moto has no UpdateFunction) the Function in moto."""
        props = self.resources[logical]["Properties"]
        name = self.resolve(props["Name"])
        if logical in self.function_arns:
            etag = self.client.describe_function(Name=name)["ETag"]
            self.client.delete_function(Name=name, IfMatch=etag)
        created = self.client.create_function(
            Name=name, FunctionConfig=props["FunctionConfig"], FunctionCode=code.encode()
        )
        self.function_arns[logical] = created["FunctionSummary"]["FunctionMetadata"]["FunctionARN"]
        self.physical[logical] = name

    def _distribution_config(self, cfn: Mapping[str, Any]) -> dict[str, Any]:
        config = api_shape(self.resolve(cfn))
        config["CallerReference"] = "imgcdn-verify-test"
        config.setdefault("Aliases", _wrap([]))
        config.setdefault("DefaultRootObject", "")
        config.setdefault("WebACLId", "")
        config["Restrictions"] = {"GeoRestriction": {"RestrictionType": "none", "Quantity": 0}}
        config["ViewerCertificate"] = {
            "CloudFrontDefaultCertificate": True,
            "SSLSupportMethod": "vip",
            "MinimumProtocolVersion": "TLSv1",
            "CertificateSource": "cloudfront",
        }
        config["Logging"] = {"Enabled": True, "IncludeCookies": False, **config["Logging"]}
        config["Staging"] = False
        config["ContinuousDeploymentPolicyId"] = ""
        for origin in config["Origins"]["Items"]:
            origin.setdefault("OriginPath", "")
            origin.setdefault("ConnectionAttempts", 3)
            origin.setdefault("ConnectionTimeout", 10)
            origin.setdefault("CustomHeaders", _wrap([]))
            custom = origin.get("CustomOriginConfig")
            if custom is not None:
                custom.setdefault("HTTPPort", 80)
                custom.setdefault("HTTPSPort", 443)
                custom.setdefault("OriginKeepaliveTimeout", 5)
        for response in config["CustomErrorResponses"]["Items"]:
            response.setdefault("ResponsePagePath", "")
            response.setdefault("ResponseCode", "")
        behaviors = [config["DefaultCacheBehavior"], *config["CacheBehaviors"]["Items"]]
        for behavior in behaviors:
            allowed, cached = behavior.pop("AllowedMethods"), behavior.pop("CachedMethods")
            behavior["AllowedMethods"] = {**allowed, "CachedMethods": cached}
            groups = behavior.get("TrustedKeyGroups", _wrap([]))
            behavior["TrustedKeyGroups"] = {"Enabled": bool(groups["Quantity"]), **groups}
            behavior["TrustedSigners"] = {"Enabled": False, "Quantity": 0}
            behavior["SmoothStreaming"] = False
            behavior["FieldLevelEncryptionId"] = ""
            behavior["LambdaFunctionAssociations"] = {"Quantity": 0}
        return config

    # -- serving -------------------------------------------------------------------------------

    def policy_config(self, logical: str) -> dict[str, Any]:
        """The deployed config of a policy, to edit in place (drift made by hand)."""
        policy = self.policies[self.physical[logical]]
        return next(v for k, v in policy.items() if k.endswith("Config"))

    def logical(self, kind: str) -> list[str]:
        """The logical ids of the template's resources of `kind`."""
        return [k for k, r in self.resources.items() if r["Type"] == kind]

    def _answer(self, model: Any, params: Mapping[str, Any], **_: Any) -> Any:
        response = self._serve(model.name, params)
        if response is None:
            return None  # moto answers
        if "Error" in response:
            return AWSResponse(None, 404, {}, None), response
        validate_parameters(response, model.output_shape)
        return AWSResponse(None, 200, {}, None), copy.deepcopy(response)

    def _serve(self, operation: str, request: Mapping[str, Any]) -> dict[str, Any] | None:
        # `before-call` sees the serialized request: the id is in the REST path.
        parts = str(request["url_path"]).split("/")
        resource_id = parts[-2] if operation == "GetDistributionConfig" else parts[-1]
        if operation == "GetDistributionConfig":
            if resource_id != self.distribution_id:
                return None
            return {"DistributionConfig": self.config, "ETag": "E1"}
        stores = {
            "GetCachePolicy": ("CachePolicy", self.policies, "NoSuchCachePolicy"),
            "GetOriginRequestPolicy": (
                "OriginRequestPolicy",
                self.policies,
                "NoSuchOriginRequestPolicy",
            ),
            "GetResponseHeadersPolicy": (
                "ResponseHeadersPolicy",
                self.policies,
                "NoSuchResponseHeadersPolicy",
            ),
            "GetKeyGroup": ("KeyGroup", self.key_groups, "NoSuchResource"),
            "GetPublicKey": ("PublicKey", self.public_keys, "NoSuchPublicKey"),
        }
        if operation not in stores:
            return None
        field, store, error = stores[operation]
        found = store.get(resource_id)
        if found is None or (field.endswith("Policy") and f"{field}Config" not in found):
            return {"Error": {"Code": error, "Message": f"{resource_id} not found"}}
        stamp = "CreatedTime" if operation == "GetPublicKey" else "LastModifiedTime"
        item = {**found, stamp: "2026-12-01T00:00:00Z"}
        return {field: item, "ETag": "E1"}
