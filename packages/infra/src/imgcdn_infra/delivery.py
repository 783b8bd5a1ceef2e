"""Viewer to bytes: the distribution, its cache behaviours, the Function and the fallback.

Every behaviour targets one origin group: the derivatives bucket first (OAC), the fallback's
Function URL (OAC) on 403/404/5xx (R14), both behind Origin Shield. The cache key is the
rewritten URI plus exactly `w, h, fmt, q` (R1); min TTL is 0 everywhere so the fallback's
`no-store` redirect is never cached (R12); the takedown prefix caps the TTL at 60 s (R9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from constructs import Construct

from imgcdn_infra.assets import BuiltAssets
from imgcdn_infra.config import STANDARD_PREFIX, TAKEDOWN_PREFIX, InfraConfig
from imgcdn_infra.fallback import fallback_function
from imgcdn_infra.storage import Storage

__all__ = [
    "CACHE_KEY_QUERY_STRINGS",
    "FAILOVER_STATUS_CODES",
    "FUNCTION_SIZE_LIMIT",
    "SERVER_ERROR_STATUS_CODES",
    "Delivery",
    "key_ids_output_name",
]

CACHE_KEY_QUERY_STRINGS = ("w", "h", "dpr", "fit", "g", "fmt", "q")
"""R1: the only request values that change the bytes (imgcore.params.PARAM_NAMES; the Function
folds them into the URI and empties the query, so this list only guards a request that reaches
the cache without the Function)."""
FAILOVER_STATUS_CODES = (403, 404, 500, 502, 503, 504)
"""R14: S3 behind OAC answers 403 for a missing key, so 403 must fail over too."""
FUNCTION_SIZE_LIMIT = 10 * 1024
"""CloudFront Functions' maximum code size in bytes."""
SERVER_ERROR_STATUS_CODES = (500, 502, 503, 504)
"""R13: 5xx are `no-store`, but CloudFront ignores `no-store` on them and keeps each for the
error caching minimum TTL (10 s by default): a custom error response per code sets it to 0, so a
fallback that timed out once is asked again on the next request."""
HSTS_MAX_AGE = Duration.days(730)
_PRICE_CLASS = {
    "PriceClass_100": cloudfront.PriceClass.PRICE_CLASS_100,
    "PriceClass_200": cloudfront.PriceClass.PRICE_CLASS_200,
    "PriceClass_All": cloudfront.PriceClass.PRICE_CLASS_ALL,
}


class Delivery(Construct):
    """The fallback transformer and the CloudFront distribution in front of everything."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        storage: Storage,
        assets: BuiltAssets,
        origin_shield_region: str,
        web_acl_arn: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        built = fallback_function(self, config=config, storage=storage, assets=assets)
        self.log_group = built.log_group
        self.s3_statements = built.s3_statements
        self.fallback = built.function
        self.fallback_url = built.url
        self.origin = self._origin(storage, origin_shield_region)
        self._cache_policies(assets)
        self.viewer_request = cloudfront.Function(
            self,
            "ViewerRequest",
            code=cloudfront.FunctionCode.from_file(file_path=str(assets.viewer_request_js)),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            comment="imgcdn: canonical query, fmt=auto, URI -> derivative key (R1-R5)",
        )
        self.headers = self._response_headers()
        self.public_keys: dict[str, dict[str, cloudfront.PublicKey]] = {}
        self.key_groups = self._key_groups()
        self._key_id_outputs()
        self.distribution = self._distribution(storage, web_acl_arn)

    def _origin(self, storage: Storage, origin_shield_region: str) -> origins.OriginGroup:
        """The derivatives bucket first, the fallback's URL on a miss (R14)."""
        primary = origins.S3BucketOrigin.with_origin_access_control(
            storage.derivatives,
            origin_access_levels=[cloudfront.AccessLevel.READ],
            origin_shield_region=origin_shield_region,
            origin_shield_enabled=True,
        )
        fallback = origins.FunctionUrlOrigin.with_origin_access_control(
            self.fallback_url,
            origin_shield_region=origin_shield_region,
            origin_shield_enabled=True,
            # CloudFront waits for a render as long as the function may run.
            read_timeout=Duration.seconds(self._config.fallback.timeout_seconds),
        )
        return origins.OriginGroup(
            primary_origin=primary,
            fallback_origin=fallback,
            fallback_status_codes=list(FAILOVER_STATUS_CODES),
        )

    def _cache_policies(self, assets: BuiltAssets) -> None:
        """The standard and the takedown class's cache policies, from the policy's TTLs."""
        ttl = assets.policy["ttl"]
        if not isinstance(ttl, Mapping):  # pragma: no cover - the policy's schema guarantees it
            msg = "policy.json has no ttl object"
            raise TypeError(msg)
        # The max TTLs leave room past max-age for each class's stale windows, so that the edge
        # keeps an expired object long enough to serve it while the origin fails; the takedown
        # class's sum is at most 60 s (R9), stale or not (imgcore's CacheTtls checks it).
        immutable_stale = max(
            int(ttl.get("immutable_stale_while_revalidate", 0)),
            int(ttl.get("immutable_stale_if_error", 0)),
        )
        self.standard_cache = self._cache_policy(
            "StandardCachePolicy",
            "imgcdn standard images: versioned, immutable, stale on origin faults",
            default_ttl=int(ttl["immutable"]),
            max_ttl=int(ttl["immutable"]) + immutable_stale,
        )
        self.takedown_cache = self._cache_policy(
            "TakedownCachePolicy",
            "imgcdn takedown-eligible images: at most 60 s at the edge (R9)",
            default_ttl=int(ttl["takedown"]),
            max_ttl=int(ttl["takedown"]) + int(ttl.get("takedown_stale_if_error", 0)),
        )

    def _behaviors(self) -> dict[str, cloudfront.BehaviorOptions]:
        """The additional behaviours: per signed tenant and class, and the takedown class."""
        behaviors: dict[str, cloudfront.BehaviorOptions] = {}
        for tenant in self._config.tenants:
            key_group = self.key_groups.get(tenant.name)
            if key_group is None:
                continue
            # One behaviour per class and tenant: CloudFront checks the signature against this
            # tenant's keys only, so tenant A's key can never open tenant B's images (R17).
            behaviors[f"/{STANDARD_PREFIX}/{tenant.name}/*"] = self._behavior(
                self.standard_cache, [key_group]
            )
            behaviors[f"/{TAKEDOWN_PREFIX}/{tenant.name}/*"] = self._behavior(
                self.takedown_cache, [key_group]
            )
        behaviors[f"/{TAKEDOWN_PREFIX}/*"] = self._behavior(self.takedown_cache, [])
        return behaviors

    def _distribution(self, storage: Storage, web_acl_arn: str | None) -> cloudfront.Distribution:
        config = self._config
        domain = config.domain
        return cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"imgcdn {config.stack_name}",
            default_behavior=self._behavior(self.standard_cache, []),
            additional_behaviors=self._behaviors(),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_ipv6=True,
            price_class=_PRICE_CLASS[config.price_class],
            enable_logging=True,
            log_bucket=storage.log_bucket,
            log_file_prefix="cloudfront/",
            domain_names=list(domain.names) if domain else None,
            certificate=acm.Certificate.from_certificate_arn(
                self, "Certificate", domain.certificate_arn
            )
            if domain
            else None,
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021
            if domain
            else None,
            web_acl_id=web_acl_arn,
            error_responses=[
                cloudfront.ErrorResponse(http_status=code, ttl=Duration.seconds(0))
                for code in SERVER_ERROR_STATUS_CODES
            ],
        )

    def _cache_policy(
        self, construct_id: str, comment: str, *, default_ttl: int, max_ttl: int
    ) -> cloudfront.CachePolicy:
        return cloudfront.CachePolicy(
            self,
            construct_id,
            comment=comment,
            query_string_behavior=cloudfront.CacheQueryStringBehavior.allow_list(
                *CACHE_KEY_QUERY_STRINGS
            ),
            header_behavior=cloudfront.CacheHeaderBehavior.none(),
            cookie_behavior=cloudfront.CacheCookieBehavior.none(),
            enable_accept_encoding_gzip=True,
            enable_accept_encoding_brotli=True,
            # R12: never 0 < min TTL, or CloudFront caches the oversize redirect despite no-store.
            min_ttl=Duration.seconds(0),
            default_ttl=Duration.seconds(default_ttl),
            max_ttl=Duration.seconds(max_ttl),
        )

    def _behavior(
        self, cache_policy: cloudfront.ICachePolicy, key_groups: Sequence[cloudfront.IKeyGroup]
    ) -> cloudfront.BehaviorOptions:
        return cloudfront.BehaviorOptions(
            origin=self.origin,
            cache_policy=cache_policy,
            # Origin groups fail over only for GET, HEAD and OPTIONS; images need GET and HEAD.
            allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
            cached_methods=cloudfront.CachedMethods.CACHE_GET_HEAD,
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
            compress=True,
            response_headers_policy=self.headers,
            function_associations=[
                cloudfront.FunctionAssociation(
                    function=self.viewer_request,
                    event_type=cloudfront.FunctionEventType.VIEWER_REQUEST,
                )
            ],
            trusted_key_groups=list(key_groups) or None,
        )

    def _response_headers(self) -> cloudfront.ResponseHeadersPolicy:
        cors_origins = list(self._config.cors_origins)
        timing_origin = "*" if cors_origins in ([], ["*"]) else ", ".join(cors_origins)
        return cloudfront.ResponseHeadersPolicy(
            self,
            "ResponseHeaders",
            comment="imgcdn: HSTS, nosniff, CORS, Timing-Allow-Origin, Vary: Accept",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=HSTS_MAX_AGE, include_subdomains=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
            ),
            cors_behavior=cloudfront.ResponseHeadersCorsBehavior(
                access_control_allow_credentials=False,
                access_control_allow_headers=["*"],
                access_control_allow_methods=["GET", "HEAD"],
                access_control_allow_origins=cors_origins,
                access_control_max_age=Duration.days(1),
                origin_override=True,
            )
            if cors_origins
            else None,
            custom_headers_behavior=cloudfront.ResponseCustomHeadersBehavior(
                custom_headers=[
                    cloudfront.ResponseCustomHeader(
                        header="Timing-Allow-Origin", value=timing_origin, override=True
                    ),
                    # A URL without fmt is negotiated from Accept (R3): a shared cache between
                    # CloudFront and the viewer must not hand AVIF to a client that did not ask
                    # for it. The policy cannot tell negotiated answers from others, so every
                    # image answer varies by Accept (harmless where fmt was explicit).
                    cloudfront.ResponseCustomHeader(header="Vary", value="Accept", override=True),
                ]
            ),
        )

    def _key_groups(self) -> dict[str, cloudfront.KeyGroup]:
        groups: dict[str, cloudfront.KeyGroup] = {}
        for tenant in self._config.tenants:
            if not tenant.signed_urls:
                continue
            keys = {
                key.id: cloudfront.PublicKey(
                    self,
                    f"Key-{tenant.name}-{key.id}",
                    encoded_key=key.pem,
                    comment=f"imgcdn tenant {tenant.name}, key {key.id}",
                )
                for key in tenant.signed_urls
            }
            self.public_keys[tenant.name] = keys
            groups[tenant.name] = cloudfront.KeyGroup(
                self,
                f"KeyGroup-{tenant.name}",
                items=list(keys.values()),
                comment=f"imgcdn tenant {tenant.name}: signed URLs (R17)",
            )
        return groups

    def _key_id_outputs(self) -> None:
        # A signer needs CloudFront's id of each public key (the URL's Key-Pair-Id), which exists
        # only after deploy. One stack output per signed tenant, `config id=CloudFront id`,
        # named at the stack's top level so `aws cloudformation describe-stacks` shows it as is.
        for tenant, keys in self.public_keys.items():
            CfnOutput(
                Stack.of(self),
                key_ids_output_name(tenant),
                value=",".join(f"{key_id}={key.public_key_id}" for key_id, key in keys.items()),
                description=f"imgcdn tenant {tenant}: signing key ids (config id=Key-Pair-Id)",
            )


def key_ids_output_name(tenant: str) -> str:
    """The stack output holding `tenant`'s public key ids (alphanumeric: `-` becomes `X`)."""
    return "SigningKeyIds" + tenant.replace("-", "X")
