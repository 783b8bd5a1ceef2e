"""Every rule of the issue, asserted on the synthesized templates (default and full config)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from imgcdn_infra.nag import flatten_reference

ONE_YEAR = 31_536_000
STALE_IF_ERROR = 604_800
FAILOVER = [403, 404, 500, 502, 503, 504]
ALLOWLIST = ["w", "h", "dpr", "fit", "g", "fmt", "q"]


@pytest.fixture(scope="module", params=["default", "full"])
def synth(request: pytest.FixtureRequest, synths: Any) -> Any:
    """Each test that takes `synth` runs on both configurations."""
    return getattr(synths, request.param)


@pytest.fixture(scope="module")
def template(synth: Any) -> Template:
    return Template.from_json(synth.main())


@pytest.fixture(scope="module")
def default(synths: Any) -> Template:
    return Template.from_json(synths.default.main())


@pytest.fixture(scope="module")
def full(synths: Any) -> Template:
    return Template.from_json(synths.full.main())


def _resources(raw: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in raw["Resources"].items() if v["Type"] == kind}


def _one(raw: dict[str, Any], kind: str, prefix: str = "") -> tuple[str, dict[str, Any]]:
    found = [(k, v) for k, v in _resources(raw, kind).items() if k.startswith(prefix)]
    assert len(found) == 1, f"expected one {kind} named {prefix}*, found {[k for k, _ in found]}"
    return found[0]


def _distribution(raw: dict[str, Any]) -> dict[str, Any]:
    return _one(raw, "AWS::CloudFront::Distribution")[1]["Properties"]["DistributionConfig"]


def _behaviors(raw: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    config = _distribution(raw)
    for behavior in config.get("CacheBehaviors", []):
        yield behavior["PathPattern"], behavior
    yield "*", config["DefaultCacheBehavior"]


def _cache_policy(raw: dict[str, Any], behavior: dict[str, Any]) -> dict[str, Any]:
    logical = behavior["CachePolicyId"]["Ref"]
    return raw["Resources"][logical]["Properties"]["CachePolicyConfig"]


# --- Delivery: cache key (R1), TTLs (R9, R12), origin group (R14), OAC, Origin Shield ---------


def test_every_cache_policy_allowlists_exactly_w_h_fmt_q(template: Template) -> None:
    exact_key = {
        "QueryStringsConfig": {"QueryStringBehavior": "whitelist", "QueryStrings": ALLOWLIST},
        "HeadersConfig": {"HeaderBehavior": "none"},
        "CookiesConfig": {"CookieBehavior": "none"},
        "EnableAcceptEncodingGzip": True,
        "EnableAcceptEncodingBrotli": True,
    }
    template.has_resource_properties(
        "AWS::CloudFront::CachePolicy",
        {"CachePolicyConfig": {"ParametersInCacheKeyAndForwardedToOrigin": Match.exact(exact_key)}},
    )
    for policy in template.find_resources("AWS::CloudFront::CachePolicy").values():
        key = policy["Properties"]["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"]
        assert key == exact_key


def test_every_behaviour_uses_a_cache_policy_and_nothing_legacy(synth: Any) -> None:
    for pattern, behavior in _behaviors(synth.main()):
        assert "Ref" in behavior["CachePolicyId"], pattern
        for legacy in (
            "ForwardedValues",
            "MinTTL",
            "DefaultTTL",
            "MaxTTL",
            "OriginRequestPolicyId",
        ):
            assert legacy not in behavior, (pattern, legacy)


def test_every_ttl_of_every_behaviour(synth: Any) -> None:
    """R12: min TTL 0 everywhere (every behaviour can see the no-store redirect); R9: <= 60 s."""
    raw = synth.main()
    group_ids = {g["Id"] for g in _distribution(raw)["OriginGroups"]["Items"]}
    seen = []
    for pattern, behavior in _behaviors(raw):
        # Every behaviour targets the origin group, so every one can receive the fallback's
        # oversize redirect: all of them must have min TTL 0.
        assert behavior["TargetOriginId"] in group_ids, pattern
        ttl = _cache_policy(raw, behavior)
        assert ttl["MinTTL"] == 0, pattern
        if pattern.startswith("/ugc/"):
            assert 0 < ttl["DefaultTTL"] <= ttl["MaxTTL"] <= 60, pattern
        else:
            # The max TTL keeps an expired object for its stale windows (a week past max-age).
            assert ttl["DefaultTTL"] == ONE_YEAR, pattern
            assert ttl["MaxTTL"] == ONE_YEAR + STALE_IF_ERROR, pattern
        seen.append(pattern)
    assert "/ugc/*" in seen
    assert seen[-1] == "*"


def test_takedown_behaviour_caps_ttl_at_60_seconds(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CloudFront::CachePolicy",
        {"CachePolicyConfig": {"MinTTL": 0, "DefaultTTL": 60, "MaxTTL": 60}},
    )
    template.has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": {
                "CacheBehaviors": Match.array_with(
                    [Match.object_like({"PathPattern": "/ugc/*", "Compress": True})]
                )
            }
        },
    )


def test_origin_group_fails_over_on_403_404_and_5xx(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": {
                "OriginGroups": {
                    "Quantity": 1,
                    "Items": [
                        Match.object_like(
                            {
                                "FailoverCriteria": {
                                    "StatusCodes": {"Items": FAILOVER, "Quantity": 6}
                                },
                                "Members": {"Quantity": 2, "Items": Match.any_value()},
                            }
                        )
                    ],
                }
            }
        },
    )


def test_server_errors_are_not_kept_by_error_caching(synth: Any) -> None:
    # R13: CloudFront ignores no-store on 5xx and keeps them 10 s unless told otherwise.
    responses = _distribution(synth.main())["CustomErrorResponses"]
    assert sorted(responses, key=lambda r: r["ErrorCode"]) == [
        {"ErrorCode": code, "ErrorCachingMinTTL": 0} for code in (500, 502, 503, 504)
    ]


def test_origin_group_primary_is_s3_and_fallback_is_the_function_url(synth: Any) -> None:
    config = _distribution(synth.main())
    origins = {o["Id"]: o for o in config["Origins"]}
    primary, fallback = (
        m["OriginId"] for m in config["OriginGroups"]["Items"][0]["Members"]["Items"]
    )
    assert "S3OriginConfig" in origins[primary]
    assert "Derivatives" in origins[primary]["DomainName"]["Fn::GetAtt"][0]
    url = json.dumps(origins[fallback]["DomainName"])
    assert "FunctionUrl" in url


def test_both_origins_use_origin_access_control(template: Template, synth: Any) -> None:
    for kind in ("s3", "lambda"):
        template.has_resource_properties(
            "AWS::CloudFront::OriginAccessControl",
            {
                "OriginAccessControlConfig": Match.object_like(
                    {
                        "OriginAccessControlOriginType": kind,
                        "SigningBehavior": "always",
                        "SigningProtocol": "sigv4",
                    }
                )
            },
        )
    for origin in _distribution(synth.main())["Origins"]:
        assert "Fn::GetAtt" in origin["OriginAccessControlId"]
        assert origin.get("S3OriginConfig", {}).get("OriginAccessIdentity", "") == ""
    template.has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": {
                "Origins": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "CustomOriginConfig": Match.object_like(
                                    {
                                        "OriginProtocolPolicy": "https-only",
                                        "OriginSSLProtocols": ["TLSv1.2"],
                                    }
                                )
                            }
                        )
                    ]
                )
            }
        },
    )


def test_function_url_is_reachable_only_through_cloudfront(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Url", {"AuthType": "AWS_IAM", "InvokeMode": "BUFFERED"}
    )
    source = {
        "Fn::Join": [
            "",
            Match.array_with([":distribution/", {"Ref": Match.string_like_regexp("Distribution")}]),
        ]
    }
    for action in ("lambda:InvokeFunctionUrl", "lambda:InvokeFunction"):
        template.has_resource_properties(
            "AWS::Lambda::Permission",
            {"Action": action, "Principal": "cloudfront.amazonaws.com", "SourceArn": source},
        )
    for permission in template.find_resources("AWS::Lambda::Permission").values():
        assert permission["Properties"]["Principal"] != "*"


def test_derivatives_bucket_is_readable_only_by_this_distribution(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": Match.string_like_regexp("^StorageDerivatives")},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "s3:GetObject",
                                "Effect": "Allow",
                                "Principal": {"Service": "cloudfront.amazonaws.com"},
                                "Condition": {"StringEquals": {"AWS:SourceArn": Match.any_value()}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_origin_shield_on_both_origins(synths: Any) -> None:
    for synth, region in ((synths.default, "us-east-1"), (synths.full, "eu-west-1")):
        origins = _distribution(synth.main())["Origins"]
        assert [o["OriginShield"] for o in origins] == [
            {"Enabled": True, "OriginShieldRegion": region}
        ] * 2


def test_fallback_origin_waits_as_long_as_the_fallback_may_run(synths: Any) -> None:
    for synth, seconds in ((synths.default, 30), (synths.full, 60)):
        custom = [o for o in _distribution(synth.main())["Origins"] if "CustomOriginConfig" in o]
        assert custom[0]["CustomOriginConfig"]["OriginReadTimeout"] == seconds


def test_viewer_request_function_runs_on_every_behaviour(synth: Any) -> None:
    raw = synth.main()
    logical, function = _one(raw, "AWS::CloudFront::Function")
    assert function["Properties"]["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    assert function["Properties"]["AutoPublish"] is True
    for pattern, behavior in _behaviors(raw):
        assert behavior["FunctionAssociations"] == [
            {"EventType": "viewer-request", "FunctionARN": {"Fn::GetAtt": [logical, "FunctionARN"]}}
        ], pattern
        assert "LambdaFunctionAssociations" not in behavior


def test_function_code_is_the_generated_file(synth: Any, assets_dir: Path) -> None:
    _, function = _one(synth.main(), "AWS::CloudFront::Function")
    code = function["Properties"]["FunctionCode"]
    assert code == (assets_dir / "edge-function" / "viewer-request.js").read_text("utf-8")
    assert len(code.encode()) <= 10 * 1024


def test_only_get_and_head_reach_the_origin_group(synth: Any) -> None:
    for pattern, behavior in _behaviors(synth.main()):
        assert behavior["AllowedMethods"] == ["GET", "HEAD"], pattern
        assert behavior["CachedMethods"] == ["GET", "HEAD"], pattern
        assert behavior["ViewerProtocolPolicy"] == "redirect-to-https", pattern


def test_response_headers_policy_on_every_behaviour(synth: Any) -> None:
    raw = synth.main()
    logical, policy = _one(raw, "AWS::CloudFront::ResponseHeadersPolicy")
    for pattern, behavior in _behaviors(raw):
        assert behavior["ResponseHeadersPolicyId"] == {"Ref": logical}, pattern
    config = policy["Properties"]["ResponseHeadersPolicyConfig"]
    security = config["SecurityHeadersConfig"]
    assert security["StrictTransportSecurity"] == {
        "AccessControlMaxAgeSec": 730 * 86400,
        "IncludeSubdomains": True,
        "Override": True,
    }
    assert security["ContentTypeOptions"] == {"Override": True}
    headers = config["CustomHeadersConfig"]["Items"]
    assert [h["Header"] for h in headers] == ["Timing-Allow-Origin", "Vary"]
    assert headers[1] == {"Header": "Vary", "Value": "Accept", "Override": True}
    cors = config["CorsConfig"]
    assert cors["AccessControlAllowMethods"]["Items"] == ["GET", "HEAD"]
    assert cors["AccessControlAllowCredentials"] is False


def test_cors_and_timing_origins_follow_the_config(synths: Any) -> None:
    for synth, origins, timing in (
        (synths.default, ["*"], "*"),
        (
            synths.full,
            ["https://acme.example", "https://www.acme.example"],
            "https://acme.example, https://www.acme.example",
        ),
    ):
        _, policy = _one(synth.main(), "AWS::CloudFront::ResponseHeadersPolicy")
        config = policy["Properties"]["ResponseHeadersPolicyConfig"]
        assert config["CorsConfig"]["AccessControlAllowOrigins"]["Items"] == origins
        assert config["CustomHeadersConfig"]["Items"][0]["Value"] == timing


def test_distribution_logs_and_protocols(default: Template, full: Template) -> None:
    for template in (default, full):
        template.has_resource_properties(
            "AWS::CloudFront::Distribution",
            {
                "DistributionConfig": Match.object_like(
                    {
                        "HttpVersion": "http2and3",
                        "IPV6Enabled": True,
                        "Logging": {
                            "Bucket": {
                                "Fn::GetAtt": [
                                    Match.string_like_regexp("^StorageLogBucket"),
                                    "RegionalDomainName",
                                ]
                            },
                            "Prefix": "cloudfront/",
                        },
                    }
                )
            },
        )
    full.has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": Match.object_like(
                {
                    "Aliases": ["img.acme.example"],
                    "ViewerCertificate": {
                        "AcmCertificateArn": Match.string_like_regexp("^arn:aws:acm:us-east-1:"),
                        "MinimumProtocolVersion": "TLSv1.2_2021",
                        "SslSupportMethod": "sni-only",
                    },
                }
            )
        },
    )


# --- Signed URLs per tenant (R17) and WAF -------------------------------------------------


def test_signed_urls_use_each_tenants_own_key_group(synths: Any, full: Template) -> None:
    full.has_resource_properties(
        "AWS::CloudFront::KeyGroup",
        {
            "KeyGroupConfig": Match.object_like(
                {
                    "Items": [
                        {"Ref": Match.string_like_regexp("^DeliveryKeyacmek2026a")},
                        {"Ref": Match.string_like_regexp("^DeliveryKeyacmek2026b")},
                    ],
                    "Comment": Match.string_like_regexp("acme"),
                }
            )
        },
    )
    full.has_resource_properties(
        "AWS::CloudFront::PublicKey",
        {
            "PublicKeyConfig": Match.object_like(
                {"EncodedKey": Match.string_like_regexp("^-----BEGIN PUBLIC KEY-----")}
            )
        },
    )
    raw = synths.full.main()
    (group,) = _resources(raw, "AWS::CloudFront::KeyGroup")
    assert len(raw["Resources"][group]["Properties"]["KeyGroupConfig"]["Items"]) == 2
    behaviors = list(_behaviors(raw))
    patterns = [p for p, _ in behaviors]
    # CloudFront takes the first match: tenant patterns must precede the class-wide ones.
    assert patterns == ["/img/acme/*", "/ugc/acme/*", "/ugc/*", "*"]
    for pattern, behavior in behaviors:
        expected = [{"Ref": group}] if "/acme/" in pattern else None
        assert behavior.get("TrustedKeyGroups") == expected, pattern
    for pattern, behavior in _behaviors(synths.default.main()):
        assert "TrustedKeyGroups" not in behavior, pattern


def test_each_signed_tenant_outputs_its_public_key_ids(synths: Any, full: Template) -> None:
    # Signing needs the Key-Pair-Id CloudFront gives each key at deploy: an output per tenant.
    raw = synths.full.main()
    keys = {
        raw["Resources"][logical]["Properties"]["PublicKeyConfig"]["Comment"]: logical
        for logical in _resources(raw, "AWS::CloudFront::PublicKey")
    }
    first = keys["imgcdn tenant acme, key k2026a"]
    second = keys["imgcdn tenant acme, key k2026b"]
    full.has_output(
        "SigningKeyIdsacme",
        {
            "Value": {"Fn::Join": ["", ["k2026a=", {"Ref": first}, ",k2026b=", {"Ref": second}]]},
            "Description": Match.string_like_regexp("acme"),
        },
    )
    assert not [
        o for o in raw["Outputs"] if o.startswith("SigningKeyIds") and o != "SigningKeyIdsacme"
    ]
    assert not [o for o in synths.default.main()["Outputs"] if o.startswith("SigningKeyIds")]


def _byte_matches(statement: Any) -> Iterator[dict[str, Any]]:
    if isinstance(statement, dict):
        if "ByteMatchStatement" in statement:
            yield statement["ByteMatchStatement"]
        for value in statement.values():
            yield from _byte_matches(value)
    elif isinstance(statement, list):
        for value in statement:
            yield from _byte_matches(value)


def test_waf_lives_in_us_east_1_and_the_distribution_uses_it(synths: Any) -> None:
    waf_stack = synths.full.templates["ImgcdnFull-Waf"]
    waf = Template.from_json(waf_stack)
    waf.has_resource_properties(
        "AWS::WAFv2::WebACL",
        {
            "Scope": "CLOUDFRONT",
            "DefaultAction": {"Allow": {}},
            "Rules": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Name": "rate-limit-per-ip",
                            "Action": {"Block": {}},
                            "Statement": {
                                "RateBasedStatement": Match.object_like(
                                    {"Limit": 5000, "AggregateKeyType": "IP"}
                                )
                            },
                        }
                    ),
                    Match.object_like({"Name": "hotlink-acme", "Action": {"Block": {}}}),
                    Match.object_like({"Name": "hotlink-globex", "Action": {"Block": {}}}),
                ]
            ),
        },
    )
    rules = _one(waf_stack, "AWS::WAFv2::WebACL")[1]["Properties"]["Rules"]
    names = [rule["Name"] for rule in rules]
    assert "hotlink-initech" not in names
    assert len({rule["Priority"] for rule in rules}) == len(rules)
    globex = next(r for r in rules if r["Name"] == "hotlink-globex")
    text = json.dumps(globex)
    assert "https://globex.example/" in text
    assert "SizeConstraintStatement" not in text  # allow_empty_referer = false
    assert "SizeConstraintStatement" in json.dumps(
        next(r for r in rules if r["Name"] == "hotlink-acme")
    )
    # The viewer Function decodes the path: so must WAF, or `/img/%61cme/` skips `/img/acme/`.
    path_matches = [
        statement
        for rule in rules
        if rule["Name"].startswith("hotlink-")
        for statement in _byte_matches(rule["Statement"])
        if "UriPath" in statement["FieldToMatch"]
    ]
    assert len(path_matches) == 4  # two tenants x two classes
    for statement in path_matches:
        assert statement["TextTransformations"] == [{"Priority": 0, "Type": "URL_DECODE"}]
    manifest = json.loads((synths.full.outdir / "manifest.json").read_text())
    assert manifest["artifacts"]["ImgcdnFull-Waf"]["environment"].endswith("/us-east-1")
    acl = _distribution(synths.full.main())["WebACLId"]
    assert acl["Fn::GetStackOutput"]["StackName"] == "ImgcdnFull-Waf"
    assert acl["Fn::GetStackOutput"]["Region"] == "us-east-1"
    assert "WebACLId" not in _distribution(synths.default.main())


# --- Pipeline: notifications -> SQS (DLQ) -> precompute (R18) -------------------------------


def test_upload_queue_has_a_dlq_and_a_visibility_timeout_of_six_lambda_timeouts(
    default: Template, full: Template
) -> None:
    for template, visibility in ((default, 6 * 300), (full, 6 * 240 + 10)):
        template.has_resource_properties(
            "AWS::SQS::Queue",
            {
                "VisibilityTimeout": visibility,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {
                        "Fn::GetAtt": [Match.string_like_regexp("^PipelineDeadLetters"), "Arn"]
                    },
                    "maxReceiveCount": 5,
                },
            },
        )
        # The DLQ keeps messages longer than the source (a message's age moves with it).
        template.has_resource_properties(
            "AWS::SQS::Queue",
            {
                "MessageRetentionPeriod": 14 * 86400,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": Match.absent(),
            },
        )
        template.has_resource_properties(
            "AWS::SQS::Queue",
            {"MessageRetentionPeriod": 4 * 86400, "RedrivePolicy": Match.any_value()},
        )


def test_queues_refuse_plain_http(template: Template) -> None:
    for queue in ("PipelineUploads", "PipelineDeadLetters"):
        template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": Match.string_like_regexp(f"^{queue}")}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                }
                            )
                        ]
                    )
                },
            },
        )


def test_event_source_reports_partial_batch_failures(default: Template, full: Template) -> None:
    shape = {
        "EventSourceArn": {"Fn::GetAtt": [Match.string_like_regexp("^PipelineUploads"), "Arn"]},
        "FunctionName": {"Ref": Match.string_like_regexp("^PipelineWorker")},
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }
    default.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {**shape, "BatchSize": 4, "ScalingConfig": Match.absent()},
    )
    full.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            **shape,
            "BatchSize": 5,
            "MaximumBatchingWindowInSeconds": 10,
            # reserved_concurrency 20 - backfill.max_concurrency 6
            "ScalingConfig": {"MaximumConcurrency": 14},
        },
    )


def test_backfill_and_uploads_never_compete_for_the_reservation(synths: Any) -> None:
    """With reserved concurrency, queue share + backfill share <= the reservation."""
    for synth, queue, backfill in ((synths.default, None, 20), (synths.full, 14, 6)):
        raw = synth.main()
        _, mapping = _one(raw, "AWS::Lambda::EventSourceMapping", "PipelineWorker")
        scaling = mapping["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency")
        assert scaling == queue, synth.name
        definition = _definition(raw)
        assert definition["States"][definition["StartAt"]]["MaxConcurrency"] == backfill
        _, worker = _one(raw, "AWS::Lambda::Function", "PipelineWorker")
        reserved = worker["Properties"].get("ReservedConcurrentExecutions")
        if reserved is not None:
            assert scaling + backfill == reserved


def test_s3_created_removed_and_expired_events_of_both_classes_reach_the_queue(
    template: Template,
) -> None:
    queue = {"Fn::GetAtt": [Match.string_like_regexp("^PipelineUploads"), "Arn"]}
    configurations = [
        {
            "Events": [event],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
            "QueueArn": queue,
        }
        for prefix in ("img/", "ugc/")
        for event in ("s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*")
    ]
    template.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "BucketName": {"Ref": Match.string_like_regexp("^StorageOriginals")},
            "NotificationConfiguration": {
                "QueueConfigurations": Match.array_equals(configurations)
            },
        },
    )
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": Match.array_with(["sqs:SendMessage"]),
                                "Principal": {"Service": "s3.amazonaws.com"},
                                "Condition": {
                                    "ArnLike": {
                                        "aws:SourceArn": {
                                            "Fn::GetAtt": [
                                                Match.string_like_regexp("^StorageOriginals"),
                                                "Arn",
                                            ]
                                        }
                                    }
                                },
                            }
                        )
                    ]
                )
            }
        },
    )


def test_lambdas_run_python_3_12_on_the_configured_architecture(
    default: Template, full: Template, assets_dir: Path
) -> None:
    policy = json.loads((assets_dir / "edge-function" / "policy.json").read_text("utf-8"))
    for template, architecture in ((default, "arm64"), (full, "x86_64")):
        for handler in ("imgcdn_precompute.handler.handler", "imgcdn_edge.handler.handler"):
            template.has_resource_properties(
                "AWS::Lambda::Function",
                {
                    "Handler": handler,
                    "Runtime": "python3.12",
                    "Architectures": [architecture],
                    "LoggingConfig": Match.object_like({"LogFormat": "JSON"}),
                    "Environment": {
                        "Variables": {
                            "IMGCDN_ORIGINALS_BUCKET": {
                                "Ref": Match.string_like_regexp("^StorageOriginals")
                            },
                            "IMGCDN_DERIVATIVES_BUCKET": {
                                "Ref": Match.string_like_regexp("^StorageDerivatives")
                            },
                            "IMGCDN_POLICY": Match.serialized_json(policy),
                        }
                    },
                },
            )
    default.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "imgcdn_precompute.handler.handler",
            "MemorySize": 3008,
            "Timeout": 300,
            "ReservedConcurrentExecutions": Match.absent(),
        },
    )
    full.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "imgcdn_precompute.handler.handler",
            "Timeout": 240,
            "ReservedConcurrentExecutions": 20,
        },
    )
    full.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "imgcdn_edge.handler.handler",
            "Timeout": 60,
            "ReservedConcurrentExecutions": 50,
        },
    )


# --- Storage guards ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Originals", "Derivatives", "LogBucket"])
def test_buckets_are_private_encrypted_tls_only_and_retained(
    template: Template, synth: Any, name: str
) -> None:
    # Each bucket by its own logical id: one guarded bucket must not vouch for the others.
    logical, _ = _one(synth.main(), "AWS::S3::Bucket", f"Storage{name}")
    guarded = Template.from_json({"Resources": {logical: synth.main()["Resources"][logical]}})
    guarded.has_resource(
        "AWS::S3::Bucket",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": Match.object_like(
                {
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                        ]
                    },
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                }
            ),
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": Match.string_like_regexp(f"^Storage{name}")},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Principal": {"AWS": "*"},
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ),
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}},
                            }
                        ),
                    ]
                )
            },
        },
    )


@pytest.mark.parametrize("name", ["originals", "derivatives"])
def test_data_buckets_are_versioned_and_log_access(template: Template, name: str) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "VersioningConfiguration": {"Status": "Enabled"},
            "LoggingConfiguration": {
                "DestinationBucketName": {"Ref": Match.string_like_regexp("^StorageLogBucket")},
                "LogFilePrefix": f"s3/{name}/",
            },
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        },
    )


def test_superseded_derivatives_expire(default: Template, full: Template) -> None:
    """Old versions' derivatives stay current objects: the tag precompute sets expires them."""
    for template, days in ((default, 30), (full, 45)):
        template.has_resource_properties(
            "AWS::S3::Bucket",
            {
                "LoggingConfiguration": Match.object_like({"LogFilePrefix": "s3/derivatives/"}),
                "LifecycleConfiguration": {
                    "Rules": Match.array_equals(
                        [
                            {
                                "Id": "expire-superseded-version-derivatives",
                                "Status": "Enabled",
                                "TagFilters": [{"Key": "imgcdn-superseded", "Value": "true"}],
                                "ExpirationInDays": days,
                            },
                            Match.object_like(
                                {
                                    "Id": "expire-noncurrent-derivatives",
                                    "Status": "Enabled",
                                    "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
                                    "ExpiredObjectDeleteMarker": True,
                                    "TagFilters": Match.absent(),
                                }
                            ),
                        ]
                    )
                },
            },
        )


# --- Least privilege (R17) -----------------------------------------------------------------


def _flat(value: Any) -> list[str]:
    return [flatten_reference(v) for v in (value if isinstance(value, list) else [value])]


def _statements(raw: dict[str, Any], description: str) -> dict[str, dict[str, Any]]:
    (role,) = [
        r
        for r in _resources(raw, "AWS::IAM::Role").values()
        if r["Properties"].get("Description", "").startswith(description)
    ]
    (policy,) = role["Properties"]["Policies"]
    assert role["Properties"].get("ManagedPolicyArns") is None
    return {
        s.get("Sid", "?"): {
            "actions": sorted(_flat(s["Action"])),
            "resources": sorted(_flat(s["Resource"])),
            "condition": s.get("Condition"),
        }
        for s in policy["PolicyDocument"]["Statement"]
    }


def _bucket(raw: dict[str, Any], name: str) -> str:
    return f"<{_one(raw, 'AWS::S3::Bucket', f'Storage{name}')[0]}.Arn>"


def test_precompute_reads_originals_and_owns_derivatives_under_tenant_prefixes(synth: Any) -> None:
    raw = synth.main()
    prefixes = [f"{cls}/{tenant}/" for tenant in synth.tenants for cls in ("img", "ugc")]
    originals, derivatives = _bucket(raw, "Originals"), _bucket(raw, "Derivatives")
    statements = _statements(raw, "imgcdn precompute")
    assert set(statements) == {
        "WriteOwnLogs",
        "ReadOriginals",
        "ListOriginals",
        "ReadWriteDeleteDerivatives",
        "ListDerivatives",
        "TagSupersededDerivatives",
        "ConsumeUploads",
    }
    assert statements["ReadOriginals"]["actions"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert statements["ReadOriginals"]["resources"] == sorted(f"{originals}/{p}*" for p in prefixes)
    assert statements["ReadWriteDeleteDerivatives"]["actions"] == [
        "s3:DeleteObject",
        "s3:GetObject",
        "s3:PutObject",
    ]
    assert statements["ReadWriteDeleteDerivatives"]["resources"] == sorted(
        f"{derivatives}/{p}*" for p in prefixes
    )
    assert statements["TagSupersededDerivatives"] == {
        "actions": ["s3:DeleteObjectTagging", "s3:GetObjectTagging", "s3:PutObjectTagging"],
        "resources": sorted(f"{derivatives}/{p}*" for p in prefixes),
        "condition": None,
    }
    assert statements["ConsumeUploads"] == {
        "actions": [
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
            "sqs:ReceiveMessage",
        ],
        "resources": [f"<{_one(raw, 'AWS::SQS::Queue', 'PipelineUploads')[0]}.Arn>"],
        "condition": None,
    }
    for sid, bucket in (("ListOriginals", originals), ("ListDerivatives", derivatives)):
        assert statements[sid]["actions"] == ["s3:ListBucket"]
        assert statements[sid]["resources"] == [bucket]
        assert statements[sid]["condition"] == {
            "StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}
        }
    assert statements["WriteOwnLogs"]["actions"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statements["WriteOwnLogs"]["resources"] == [
        f"<{_one(raw, 'AWS::Logs::LogGroup', 'PipelineLogs')[0]}.Arn>"
    ]


def test_fallback_reads_originals_and_manifests_and_only_writes_derivatives(synth: Any) -> None:
    raw = synth.main()
    originals, derivatives = _bucket(raw, "Originals"), _bucket(raw, "Derivatives")
    statements = _statements(raw, "imgcdn fallback")
    assert set(statements) == {"WriteOwnLogs", "ReadOriginals", "ReadManifests", "WriteDerivatives"}
    assert statements["ReadOriginals"]["actions"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert all(r.startswith(f"{originals}/") for r in statements["ReadOriginals"]["resources"])
    assert statements["ReadManifests"]["actions"] == ["s3:GetObject"]
    assert statements["ReadManifests"]["resources"]
    assert all(
        r.startswith(f"{derivatives}/") and r.endswith("/*/manifest.json")
        for r in statements["ReadManifests"]["resources"]
    )
    assert statements["WriteDerivatives"]["actions"] == ["s3:PutObject"]
    assert all(r.startswith(f"{derivatives}/") for r in statements["WriteDerivatives"]["resources"])


def test_no_lambda_role_gets_a_bucket_wide_or_service_wide_grant(synth: Any) -> None:
    raw = synth.main()
    buckets = {_bucket(raw, name) for name in ("Originals", "Derivatives", "LogBucket")}
    for description in ("imgcdn precompute", "imgcdn fallback"):
        for sid, statement in _statements(raw, description).items():
            assert not any(a.endswith(":*") or a == "*" for a in statement["actions"]), sid
            for resource in statement["resources"]:
                assert resource != "*", sid
                assert resource not in {f"{b}/*" for b in buckets}, sid
    # Every grant is in the roles' inline policies (permissions.py): CDK attaches none.
    for policy in _resources(raw, "AWS::IAM::Policy").values():
        roles = json.dumps(policy["Properties"].get("Roles", []))
        assert "DeliveryFallbackRole" not in roles
        assert "PipelineRole" not in roles


def _resolved_worst_case(raw: dict[str, Any], value: Any) -> Any:
    """`value` with every reference replaced by the longest text it can resolve to."""
    if isinstance(value, list):
        return [_resolved_worst_case(raw, v) for v in value]
    if not isinstance(value, dict):
        return value
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return delimiter.join(_resolved_worst_case(raw, p) for p in parts)
    if "Ref" in value:
        names = {"AWS::Partition": "aws-us-gov", "AWS::Region": "ap-southeast-2"}
        return names.get(value["Ref"], "n" * 63)
    if "Fn::GetAtt" in value:
        kind = raw["Resources"][value["Fn::GetAtt"][0]]["Type"]
        account = "ap-southeast-2:123456789012"
        # Names CloudFormation generates: stack name (at most 101 here) + logical id + suffix.
        return {
            "AWS::S3::Bucket": "arn:aws-us-gov:s3:::" + "b" * 63,
            "AWS::Logs::LogGroup": f"arn:aws-us-gov:logs:{account}:log-group:{'l' * 160}:*",
            "AWS::SQS::Queue": f"arn:aws-us-gov:sqs:{account}:{'q' * 80}",
        }[kind]
    return {k: _resolved_worst_case(raw, v) for k, v in value.items()}


def test_the_tenant_quota_check_bounds_the_real_role_policies(synth: Any) -> None:
    """The config refuses tenant lists whose policies would pass IAM's 10,240 characters."""
    from imgcdn_infra.config import IAM_INLINE_POLICY_CHARS, _iam_policy_chars

    raw = synth.main()
    bound = _iam_policy_chars(synth.tenants, ("img", "ugc"))
    for description in ("imgcdn precompute", "imgcdn fallback"):
        (role,) = [
            r
            for r in _resources(raw, "AWS::IAM::Role").values()
            if r["Properties"].get("Description", "").startswith(description)
        ]
        policies = _resolved_worst_case(raw, role["Properties"]["Policies"])
        size = len(json.dumps(policies, separators=(",", ":")))
        assert size <= bound, description
        if description == "imgcdn precompute":
            # The larger role, so the bound is sized for it: tight enough to be useful.
            assert bound - size <= IAM_INLINE_POLICY_CHARS // 20


# --- Operations ----------------------------------------------------------------------------


def _alarm(template: Template, metric: dict[str, Any], **extra: Any) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            **metric,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": Match.string_like_regexp("^OperationsAlarms")}],
            **extra,
        },
    )


def test_alarms(default: Template, full: Template) -> None:
    for template in (default, full):
        _alarm(
            template,
            {
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [
                    {
                        "Name": "QueueName",
                        "Value": {
                            "Fn::GetAtt": [
                                Match.string_like_regexp("^PipelineDeadLetters"),
                                "QueueName",
                            ]
                        },
                    }
                ],
            },
            Threshold=0,
        )
        _alarm(
            template,
            {
                "Namespace": "AWS/Lambda",
                "MetricName": "Errors",
                "Dimensions": [
                    {
                        "Name": "FunctionName",
                        "Value": {"Ref": Match.string_like_regexp("^PipelineWorker")},
                    }
                ],
            },
            Threshold=0,
        )
        _alarm(
            template,
            {
                "Metrics": Match.array_with(
                    [
                        Match.object_like(
                            {"Expression": "IF(requests > 0, 100 * errors / requests, 0)"}
                        ),
                        Match.object_like(
                            {
                                "MetricStat": Match.object_like(
                                    {"Metric": Match.object_like({"MetricName": "Url5xxCount"})}
                                )
                            }
                        ),
                    ]
                )
            },
            Threshold=1,
        )
        _alarm(
            template,
            {
                "Namespace": "AWS/Lambda",
                "MetricName": "Invocations",
                "Dimensions": [
                    {
                        "Name": "FunctionName",
                        "Value": {"Ref": Match.string_like_regexp("^DeliveryFallback")},
                    }
                ],
            },
            Threshold=100,
            EvaluationPeriods=5,
            DatapointsToAlarm=5,
        )
    full.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@acme.example"}
    )


def test_alarms_on_precompute_item_failures_sum_every_emf_dimension_set(
    default: Template, full: Template
) -> None:
    """Partial batch responses hide item faults from Lambda's Errors: alarm on the EMF counters.

    RenderFailures is emitted per tenant (or with no dimension): a plain metric would match only
    one dimension set, so each alarm is a Metrics Insights query over the whole namespace.
    """
    for template, render_failures in ((default, 10), (full, 3)):
        for metric, threshold in (
            ("TransientErrors", 5),
            ("RenderFailures", render_failures),
            ("PoisonedMessages", 0),
        ):
            _alarm(
                template,
                {
                    "Metrics": [
                        Match.object_like(
                            {
                                # S608: a Metrics Insights query, not database SQL.
                                "Expression": f"SELECT SUM({metric}) FROM imgcdn",  # noqa: S608
                                "Period": 300,
                                "ReturnData": True,
                            }
                        )
                    ]
                },
                Threshold=threshold,
                EvaluationPeriods=1,
            )


def test_dashboard_shows_edge_metrics_from_us_east_1(synth: Any) -> None:
    _, dashboard = _one(synth.main(), "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for needle in (
        "AWS/CloudFront",
        "us-east-1",
        "UrlRequestCount",
        "ApproximateAgeOfOldestMessage",
        "SELECT SUM(TransientErrors) FROM imgcdn",
        "SELECT SUM(RenderFailures) FROM imgcdn",
        "SELECT SUM(PoisonedMessages) FROM imgcdn",
    ):
        assert needle in body


def _definition(raw: dict[str, Any]) -> dict[str, Any]:
    _, machine = _one(raw, "AWS::StepFunctions::StateMachine")
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "TOKEN" for p in parts)
    return dict(json.loads(text))


def test_backfill_is_a_distributed_map_over_an_s3_prefix_invoking_precompute(
    template: Template, synth: Any
) -> None:
    definition = _definition(synth.main())
    state = definition["States"][definition["StartAt"]]
    assert state["Type"] == "Map"
    assert state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert state["ItemReader"]["Resource"].endswith(":states:::s3:listObjectsV2")
    assert state["ItemReader"]["Parameters"] == {"Bucket": "TOKEN", "Prefix.$": "$.prefix"}
    assert state["ItemSelector"] == {"Key.$": "$$.Map.Item.Value.Key"}
    assert state["ItemBatcher"] == {
        "MaxItemsPerBatch": 5,
        "BatchInput": {"source": "imgcdn.backfill", "bucket": "TOKEN"},
    }
    inner = state["ItemProcessor"]["States"]
    task = inner[state["ItemProcessor"]["StartAt"]]
    assert task["Parameters"] == {
        "source.$": "$.BatchInput.source",
        "bucket.$": "$.BatchInput.bucket",
        "items.$": "$.Items",
    }
    assert any("Lambda.TooManyRequestsException" in r["ErrorEquals"] for r in task["Retry"])
    choice = inner[task["Next"]]
    assert choice["Choices"][0]["Variable"] == "$.batchItemFailures[0]"
    assert inner[choice["Choices"][0]["Next"]]["Type"] == "Fail"
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "DefinitionString": {
                "Fn::Join": [
                    "",
                    Match.array_with(
                        [{"Fn::GetAtt": [Match.string_like_regexp("^PipelineWorker"), "Arn"]}]
                    ),
                ]
            },
            "LoggingConfiguration": Match.object_like({"Level": "ALL"}),
            "TracingConfiguration": {"Enabled": True},
        },
    )


def test_outputs_tell_an_operator_where_everything_is(template: Template) -> None:
    for name in (
        "DistributionDomainName",
        "DistributionId",
        "OriginalsBucket",
        "DerivativesBucket",
        "UploadQueue",
        "DeadLetterQueue",
        "BackfillStateMachine",
        "AlarmTopic",
    ):
        template.has_output(name, {"Value": Match.any_value()})
    # The redrive command takes the DLQ's ARN, not its URL.
    template.has_output(
        "DeadLetterQueueArn",
        {"Value": {"Fn::GetAtt": [Match.string_like_regexp("^PipelineDeadLetters"), "Arn"]}},
    )


def test_the_cache_key_allowlist_is_imgcores_parameter_list() -> None:
    # infra cannot import imgcore (it ships without it); until the generated contract carries
    # the names, this holds the two lists together.
    from imgcdn_infra.delivery import CACHE_KEY_QUERY_STRINGS
    from imgcore.params import PARAM_NAMES

    assert CACHE_KEY_QUERY_STRINGS == PARAM_NAMES == tuple(ALLOWLIST)
