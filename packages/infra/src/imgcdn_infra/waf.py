"""The optional web ACL: a per-IP rate limit, the IP reputation list, per-tenant hotlink rules.

A web ACL for CloudFront must live in us-east-1. When the app deploys elsewhere, it goes into
its own stack there and the distribution reads its ARN through CDK's cross-Region references.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from imgcdn_infra.config import STANDARD_PREFIX, TAKEDOWN_PREFIX, InfraConfig, TenantConfig

__all__ = ["ImageWebAcl", "WebAclStack"]

_NONE = [{"priority": 0, "type": "NONE"}]
# The viewer-request Function percent-decodes each path segment once before it reads the class
# and tenant, so WAF must compare the decoded path: raw, `/img/%61cme/...` would skip the rule
# for `/img/acme/`. One decode is what the Function does (`%2561` stays `%61` for both). Neither
# NORMALIZE_PATH nor LOWERCASE is added: the Function answers 400 to empty, `.` and `..`
# segments and to classes or tenants that are not lower case (imgcore's validate_tenant), so
# `//img/acme/`, `/img/./acme/` or `/IMG/ACME/` never reach a tenant's images anyway.
_URL_DECODE = [{"priority": 0, "type": "URL_DECODE"}]


def _visibility(name: str) -> dict[str, Any]:
    return {"sampledRequestsEnabled": True, "cloudWatchMetricsEnabled": True, "metricName": name}


def _any(statements: list[dict[str, Any]]) -> dict[str, Any]:
    """One statement, or an OR of several (WAF's OrStatement needs at least two)."""
    return statements[0] if len(statements) == 1 else {"orStatement": {"statements": statements}}


def _path_starts_with(prefix: str) -> dict[str, Any]:
    return {
        "byteMatchStatement": {
            "fieldToMatch": {"uriPath": {}},
            "positionalConstraint": "STARTS_WITH",
            "searchString": prefix,
            "textTransformations": _URL_DECODE,
        }
    }


def _referer_from(host: str) -> dict[str, Any]:
    # STARTS_WITH, not CONTAINS: "https://evil.example/?https://good.example/" must not pass.
    return {
        "byteMatchStatement": {
            "fieldToMatch": {"singleHeader": {"Name": "referer"}},
            "positionalConstraint": "STARTS_WITH",
            "searchString": f"https://{host}/",
            "textTransformations": [{"priority": 0, "type": "LOWERCASE"}],
        }
    }


def _hotlink_rule(tenant: TenantConfig, priority: int) -> dict[str, Any]:
    """Block a tenant's images when the Referer names a site the tenant did not allow."""
    conditions = [
        _any(
            [_path_starts_with(f"/{p}/{tenant.name}/") for p in (STANDARD_PREFIX, TAKEDOWN_PREFIX)]
        ),
        {"notStatement": {"statement": _any([_referer_from(h) for h in tenant.referers])}},
    ]
    if tenant.allow_empty_referer:
        conditions.append(
            {
                "sizeConstraintStatement": {
                    "fieldToMatch": {"singleHeader": {"Name": "referer"}},
                    "comparisonOperator": "GT",
                    "size": 0,
                    "textTransformations": _NONE,
                }
            }
        )
    name = f"hotlink-{tenant.name}"
    return {
        "name": name,
        "priority": priority,
        "action": {"block": {}},
        "statement": {"andStatement": {"statements": conditions}},
        "visibilityConfig": _visibility(name),
    }


class ImageWebAcl(Construct):
    """The CLOUDFRONT-scoped web ACL (its stack must be in us-east-1)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig) -> None:
        super().__init__(scope, construct_id)
        rules: list[dict[str, Any]] = [
            {
                "name": "rate-limit-per-ip",
                "priority": 0,
                "action": {"block": {}},
                "statement": {
                    "rateBasedStatement": {
                        "limit": config.waf.rate_limit,
                        "aggregateKeyType": "IP",
                        "evaluationWindowSec": 300,
                    }
                },
                "visibilityConfig": _visibility("rate-limit-per-ip"),
            }
        ]
        if config.waf.ip_reputation:
            rules.append(
                {
                    "name": "aws-ip-reputation",
                    "priority": 1,
                    "overrideAction": {"none": {}},
                    "statement": {
                        "managedRuleGroupStatement": {
                            "vendorName": "AWS",
                            "name": "AWSManagedRulesAmazonIpReputationList",
                        }
                    },
                    "visibilityConfig": _visibility("aws-ip-reputation"),
                }
            )
        rules += [
            _hotlink_rule(tenant, 10 + index)
            for index, tenant in enumerate(t for t in config.tenants if t.referers)
        ]
        self.acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="CLOUDFRONT",
            default_action={"allow": {}},
            description="imgcdn: rate limit per IP, IP reputation, per-tenant hotlink rules",
            visibility_config=_visibility("imgcdn"),
            rules=rules,
        )


class WebAclStack(Stack):
    """The web ACL on its own, in us-east-1, for a distribution whose stack is elsewhere."""

    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig, **kwargs: Any):
        super().__init__(scope, construct_id, **kwargs)
        self.web_acl = ImageWebAcl(self, "Waf", config=config)
