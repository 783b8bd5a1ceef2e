"""The local stack adds the response headers the CDK app's response headers policy adds."""

from __future__ import annotations

from imgcdn_infra.config import InfraConfig
from imgcdn_infra.delivery import HSTS_MAX_AGE, SERVER_ERROR_STATUS_CODES
from imgcdn_local.cache import SERVER_ERROR_CACHING_MIN_TTL
from imgcdn_local.headers import CORS_ORIGINS, HSTS_MAX_AGE_S, delivery_headers


def test_the_values_are_the_cdk_apps() -> None:
    assert HSTS_MAX_AGE.to_seconds() == HSTS_MAX_AGE_S
    assert InfraConfig.model_fields["cors_origins"].default == CORS_ORIGINS
    assert dict.fromkeys(SERVER_ERROR_STATUS_CODES, 0) == SERVER_ERROR_CACHING_MIN_TTL


def test_cors_headers_answer_cors_requests_only() -> None:
    plain = delivery_headers(None)
    assert plain == {
        "strict-transport-security": f"max-age={HSTS_MAX_AGE_S}; includeSubDomains",
        "x-content-type-options": "nosniff",
        "timing-allow-origin": "*",
        "vary": "Accept",
    }
    assert delivery_headers("https://a.example")["access-control-allow-origin"] == "*"


def test_explicit_origins_are_echoed_only_when_listed() -> None:
    listed = ("https://a.example", "https://b.example:8443")
    assert delivery_headers("https://a.example", listed)["access-control-allow-origin"] == (
        "https://a.example"
    )
    assert "access-control-allow-origin" not in delivery_headers("https://evil.example", listed)
    assert delivery_headers(None, listed)["timing-allow-origin"] == ", ".join(listed)
    assert "access-control-allow-origin" not in delivery_headers("https://a.example", ())
