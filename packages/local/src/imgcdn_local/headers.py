"""The distribution's response headers policy, applied by the local stack to the image URL space.

The CDK app builds the policy in `imgcdn_infra.delivery` (`Delivery._response_headers`) from
`HSTS_MAX_AGE` and `InfraConfig.cors_origins`; the local stack cannot import the CDK app (it
would load aws_cdk and jsii), so the values are repeated here and a test holds them equal.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CORS_ORIGINS", "HSTS_MAX_AGE_S", "delivery_headers"]

HSTS_MAX_AGE_S = 730 * 24 * 3600
"""`Strict-Transport-Security` max-age: `imgcdn_infra.delivery.HSTS_MAX_AGE` (730 days)."""
CORS_ORIGINS: tuple[str, ...] = ("*",)
"""`InfraConfig.cors_origins`' default: every origin may read the images."""


def delivery_headers(
    origin: str | None, cors_origins: Sequence[str] = CORS_ORIGINS
) -> dict[str, str]:
    """The headers the response headers policy adds (overriding the origin's) to one answer.

    Args:
        origin: The request's `Origin` header: CloudFront adds CORS headers only to CORS requests.
        cors_origins: The allowed origins (`*`, or explicit `https://host[:port]` values).
    """
    listed = list(cors_origins)
    headers = {
        "strict-transport-security": f"max-age={HSTS_MAX_AGE_S}; includeSubDomains",
        "x-content-type-options": "nosniff",
        "timing-allow-origin": "*" if listed in ([], ["*"]) else ", ".join(listed),
        # fmt=auto answers differ by Accept (R3); see the Vary header in imgcdn_infra.delivery.
        "vary": "Accept",
    }
    if origin and listed:
        if listed == ["*"]:
            headers["access-control-allow-origin"] = "*"
        elif origin in listed:
            headers["access-control-allow-origin"] = origin
    return headers
