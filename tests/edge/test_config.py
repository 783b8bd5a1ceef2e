"""The fallback's configuration: resolved once from the environment; bad values name themselves."""

from __future__ import annotations

import pytest

from imgcdn_edge.config import (
    DEFAULT_DEADLINE_MARGIN_MS,
    DEFAULT_MAX_RESPONSE_BYTES,
    LAMBDA_RESPONSE_LIMIT,
    MIN_DEADLINE_MARGIN_MS,
    ConfigError,
    FallbackLimits,
    FallbackSettings,
)
from imgcore import DEFAULT_POLICY, Policy

BASE = {"IMGCDN_ORIGINALS_BUCKET": "acme-originals", "IMGCDN_DERIVATIVES_BUCKET": "acme-derived"}


def test_defaults() -> None:
    config = FallbackSettings.from_env(BASE)
    assert config == FallbackSettings("acme-originals", "acme-derived")
    assert config.policy is DEFAULT_POLICY
    assert config.s3_endpoint is None
    assert config.limits.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES
    assert config.limits.deadline_margin_ms == DEFAULT_DEADLINE_MARGIN_MS
    # The cap leaves room for the JSON and headers around a base64 body under Lambda's 6 MiB.
    assert LAMBDA_RESPONSE_LIMIT - DEFAULT_MAX_RESPONSE_BYTES >= 64 * 1024


def test_every_variable() -> None:
    policy = Policy(widths=(100, 200), standard={"widths": (100,)})
    config = FallbackSettings.from_env(
        {
            **BASE,
            "IMGCDN_S3_ENDPOINT": "http://127.0.0.1:5000/",
            "IMGCDN_POLICY": policy.to_json(),
            "IMGCDN_MAX_RESPONSE_BYTES": "1048576",
            "IMGCDN_DEADLINE_MARGIN_MS": "2500",
        }
    )
    assert config.s3_endpoint == "http://127.0.0.1:5000"
    assert config.policy == policy
    assert config.limits == FallbackLimits(max_response_bytes=1048576, deadline_margin_ms=2500)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"IMGCDN_ORIGINALS_BUCKET": ""}, "IMGCDN_ORIGINALS_BUCKET"),
        ({"IMGCDN_DERIVATIVES_BUCKET": "Not_A_Bucket"}, "IMGCDN_DERIVATIVES_BUCKET"),
        ({"IMGCDN_S3_ENDPOINT": "ftp://example"}, "IMGCDN_S3_ENDPOINT"),
        ({"IMGCDN_POLICY": "{"}, "IMGCDN_POLICY"),
        ({"IMGCDN_POLICY": '{"qualities": []}'}, "IMGCDN_POLICY"),
        ({"IMGCDN_MAX_RESPONSE_BYTES": "7000000"}, "IMGCDN_MAX_RESPONSE_BYTES"),
        ({"IMGCDN_MAX_RESPONSE_BYTES": "6MB"}, "IMGCDN_MAX_RESPONSE_BYTES"),
        ({"IMGCDN_MAX_RESPONSE_BYTES": "0"}, "IMGCDN_MAX_RESPONSE_BYTES"),
        ({"IMGCDN_DEADLINE_MARGIN_MS": "-1"}, "IMGCDN_DEADLINE_MARGIN_MS"),
        # Less than one S3 call can stall: a call abandoned at the deadline would outlive it.
        ({"IMGCDN_DEADLINE_MARGIN_MS": "0"}, "IMGCDN_DEADLINE_MARGIN_MS=.*1500-"),
        ({"IMGCDN_DEADLINE_MARGIN_MS": "1499"}, "IMGCDN_DEADLINE_MARGIN_MS=.*1500-"),
        ({"IMGCDN_DEADLINE_MARGIN_MS": "\u0661\u0660"}, "IMGCDN_DEADLINE_MARGIN_MS"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        FallbackSettings.from_env({**BASE, **overrides})


def test_settings_are_checked_when_built_in_code() -> None:
    with pytest.raises(ConfigError, match="max_response_bytes"):
        FallbackLimits(max_response_bytes=LAMBDA_RESPONSE_LIMIT + 1)
    with pytest.raises(ConfigError, match="deadline_margin_ms"):
        FallbackLimits(deadline_margin_ms=-5)


def test_one_s3_call_of_the_fallback_fits_in_the_deadline_margin() -> None:
    """The numbers behind MIN_DEADLINE_MARGIN_MS are the client's real botocore settings."""
    from imgcdn_aws.s3 import INTERACTIVE_CALL_BUDGET_MS, s3_client

    config = s3_client("http://127.0.0.1:9", interactive=True).meta.config
    assert config.retries["total_max_attempts"] == 1
    stall_ms = (config.connect_timeout + config.read_timeout) * 1000
    assert stall_ms == INTERACTIVE_CALL_BUDGET_MS <= MIN_DEADLINE_MARGIN_MS
    assert MIN_DEADLINE_MARGIN_MS <= DEFAULT_DEADLINE_MARGIN_MS
