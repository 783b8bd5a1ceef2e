"""The context model: defaults, overrides, and errors that name the offending key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from imgcdn_infra.config import ConfigError, InfraConfig, load_config, origin_shield_region_for

TENANTS = {"tenants": [{"name": "acme"}]}


def test_defaults_need_only_tenants() -> None:
    config = load_config({"imgcdn": TENANTS})
    assert config.architecture == "arm64"
    assert config.prefixes == ("img", "ugc")
    assert config.cors_origins == ("*",)
    assert config.tenant_prefixes == ("img/acme/", "ugc/acme/")
    assert config.precompute.reserved_concurrency is None
    assert not config.waf.enabled
    assert config.domain is None


def test_visibility_timeout_is_six_times_the_timeout_plus_the_batching_window() -> None:
    config = load_config(
        {
            "imgcdn": TENANTS,
            "imgcdn:precompute.timeout_seconds": "120",
            "imgcdn:precompute.max_batching_window_seconds": "5",
        }
    )
    assert config.precompute.visibility_timeout_seconds == 6 * 120 + 5


def test_config_may_arrive_as_a_json_string_from_the_cli() -> None:
    config = load_config({"imgcdn": json.dumps({**TENANTS, "architecture": "x86_64"})})
    assert config.architecture == "x86_64"


def test_flat_overrides_reach_nested_fields_and_list_items() -> None:
    config = load_config(
        {
            "imgcdn": {"tenants": [{"name": "acme"}, {"name": "globex"}]},
            "imgcdn:tenants.1.name": "initech",
            "imgcdn:fallback.reserved_concurrency": "7",
            "imgcdn:cors_origins": '["https://a.example"]',
            "imgcdn:stack_name": "Images",
        }
    )
    assert [t.name for t in config.tenants] == ["acme", "initech"]
    assert config.fallback.reserved_concurrency == 7
    assert config.cors_origins == ("https://a.example",)
    assert config.stack_name == "Images"


def test_the_model_is_frozen() -> None:
    config = load_config({"imgcdn": TENANTS})
    with pytest.raises(ValueError, match="frozen"):
        config.architecture = "x86_64"  # type: ignore[misc] - the point is that it fails


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"imgcdn:architecture": "sparc"}, "imgcdn.architecture"),
        ({"imgcdn:precompute.reserved_concurrency": "1"}, "imgcdn.precompute.reserved_concurrency"),
        ({"imgcdn:precompute.timeout_seconds": "901"}, "imgcdn.precompute.timeout_seconds"),
        ({"imgcdn:precompute.batch_size": "11"}, "imgcdn.precompute.batch_size"),
        ({"imgcdn:fallback.timeout_seconds": "121"}, "imgcdn.fallback.timeout_seconds"),
        ({"imgcdn:tenants.0.name": "Acme Corp"}, "imgcdn.tenants.0.name"),
        # imgcore's key layout fixes the content classes: not a setting
        ({"imgcdn:takedown_prefix": "ugc"}, "imgcdn.takedown_prefix"),
        ({"imgcdn:cors_origins": '["ftp://x.example"]'}, "imgcdn.cors_origins"),
        ({"imgcdn:cors_origins": '["*", "https://x.example"]'}, "imgcdn.cors_origins"),
        ({"imgcdn:origin_shield_region": "moon-1"}, "imgcdn.origin_shield_region"),
        ({"imgcdn:region": "mars-north-1"}, "imgcdn.region"),
        ({"imgcdn:region": "ap-southeast-7"}, "origin_shield_region"),
        ({"imgcdn:retention.log_days": "42"}, "imgcdn.retention.log_days"),
        ({"imgcdn:alarms.fallback_5xx_percent": "0"}, "imgcdn.alarms.fallback_5xx_percent"),
        ({"imgcdn:alarms.email": "not-an-address"}, "imgcdn.alarms.email"),
        ({"imgcdn:waf.rate_limit": "5"}, "imgcdn.waf.rate_limit"),
        ({"imgcdn:architechture": "arm64"}, "imgcdn.architechture"),
        ({"imgcdn:tenants.0.referers": '["acme.example"]'}, "tenants.0.referers"),
        (
            {"imgcdn:domain": '{"names": ["img.example.com"], "certificate_arn": "nope"}'},
            "imgcdn.domain.certificate_arn",
        ),
        (
            {
                "imgcdn:domain": json.dumps(
                    {
                        "names": ["img.example.com"],
                        "certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc-1",
                    }
                )
            },
            "imgcdn.domain.certificate_arn",
        ),
        (
            {"imgcdn:tenants.0.signed_urls": '[{"id": "k1", "pem": "ssh-rsa AAAA"}]'},
            "imgcdn.tenants.0.signed_urls.0.pem",
        ),
    ],
)
def test_a_wrong_value_fails_with_a_message_naming_the_key(
    overrides: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"imgcdn": TENANTS, **overrides})
    assert key in str(caught.value)


def test_every_bad_key_is_reported_at_once_and_nothing_else() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            {
                "imgcdn": TENANTS,
                "imgcdn:tenants.0.name": "Bad",
                "imgcdn:precompute.memory_mb": "64",
            }
        )
    lines = str(caught.value).splitlines()[1:]
    assert [line.split(":")[0].strip() for line in lines] == [
        "imgcdn.tenants.0.name",
        "imgcdn.precompute.memory_mb",
    ]


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ({}, "imgcdn.tenants"),
        ({"imgcdn": {"tenants": []}}, "imgcdn.tenants"),
        ({"imgcdn": {"tenants": [{"name": "a"}, {"name": "a"}]}}, "imgcdn.tenants"),
        ({"imgcdn": "[1, 2]"}, "imgcdn"),
        ({"imgcdn": TENANTS, "imgcdn:": "x"}, "imgcdn:"),
        ({"imgcdn": TENANTS, "imgcdn:stack_name.x": "1"}, "imgcdn.stack_name"),
    ],
)
def test_structural_errors_name_the_key(context: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(context)


def test_origin_shield_follows_aws_recommendation_unless_set() -> None:
    assert origin_shield_region_for("eu-north-1") == "eu-west-2"
    config = InfraConfig.model_validate({**TENANTS, "region": "us-west-1"})
    assert config.resolved_origin_shield_region(None) == "us-west-2"
    pinned = InfraConfig.model_validate({**TENANTS, "origin_shield_region": "eu-central-1"})
    assert pinned.resolved_origin_shield_region("us-east-1") == "eu-central-1"
    with pytest.raises(ConfigError, match="origin_shield_region"):
        InfraConfig.model_validate(TENANTS).resolved_origin_shield_region(None)


def test_origin_shield_error_says_which_variable_to_set() -> None:
    """`imgcdn synth` with cdk.json alone has no Region: the message must say how to give one."""
    with pytest.raises(ConfigError) as caught:
        InfraConfig.model_validate(TENANTS).resolved_origin_shield_region(None)
    for hint in ("AWS_REGION", "-c imgcdn:region=", "origin_shield_region"):
        assert hint in str(caught.value)


# --- Concurrency shared by the upload queue and the backfill ---------------------------------


def _concurrency(**precompute: Any) -> dict[str, Any]:
    backfill = precompute.pop("backfill", None)
    config = {**TENANTS, "precompute": precompute}
    if backfill is not None:
        config["backfill"] = {"max_concurrency": backfill}
    return {"imgcdn": config}


@pytest.mark.parametrize(
    ("settings", "queue", "backfill"),
    [
        ({}, None, 20),
        ({"reserved_concurrency": 30}, 10, 20),
        ({"reserved_concurrency": 20, "backfill": 5}, 15, 5),
        ({"reserved_concurrency": 20, "event_source_max_concurrency": 16}, 16, 4),
        ({"reserved_concurrency": 40, "event_source_max_concurrency": 30, "backfill": 3}, 30, 3),
        ({"event_source_max_concurrency": 8}, 8, 20),
    ],
)
def test_the_reservation_is_split_between_queue_and_backfill(
    settings: dict[str, Any], queue: int | None, backfill: int
) -> None:
    config = load_config(_concurrency(**settings))
    assert config.queue_concurrency == queue
    assert config.backfill_concurrency == backfill
    reserved = config.precompute.reserved_concurrency
    if reserved is not None:
        assert queue is not None
        assert queue + backfill <= reserved


@pytest.mark.parametrize(
    ("settings", "needles"),
    [
        (
            {"reserved_concurrency": 20},
            ["precompute.reserved_concurrency", "backfill.max_concurrency (20)", "at least 22"],
        ),
        (
            {"reserved_concurrency": 10, "event_source_max_concurrency": 10},
            ["precompute.event_source_max_concurrency", "precompute.reserved_concurrency (10)"],
        ),
        ({"reserved_concurrency": 2}, ["imgcdn.precompute.reserved_concurrency"]),
        ({"event_source_max_concurrency": 1}, ["imgcdn.precompute.event_source_max_concurrency"]),
    ],
)
def test_a_reservation_without_room_for_both_names_the_keys(
    settings: dict[str, Any], needles: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_concurrency(**settings))
    for needle in needles:
        assert needle in str(caught.value)


# --- Quotas the tenant list must fit -------------------------------------------------------

PEM = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----\n"


def _tenants(count: int, *, signed: bool = False, width: int = 6) -> dict[str, Any]:
    keys = [{"id": "k1", "pem": PEM}] if signed else []
    return {"tenants": [{"name": f"t{i:0{width - 1}d}", "signed_urls": keys} for i in range(count)]}


def test_signed_tenants_must_fit_cloudfronts_cache_behaviour_quota() -> None:
    # With the default quota (75) IAM's limit binds first; an account at 25 reaches this one.
    quota = {"quotas": {"cache_behaviors_per_distribution": 25}}
    load_config({"imgcdn": {**_tenants(11, signed=True), **quota}})  # 2 x 11 + 2 = 24 <= 25
    with pytest.raises(ConfigError) as caught:
        load_config({"imgcdn": {**_tenants(12, signed=True), **quota}})
    message = str(caught.value)
    for needle in (
        "tenants:",
        "12 tenants with signed_urls",
        "26 cache behaviours",
        "quota of 25",
        "at most 11",
        "quotas.cache_behaviors_per_distribution",
    ):
        assert needle in message
    load_config({"imgcdn": _tenants(12, signed=True)})  # the default quota, 75


def test_unsigned_tenants_add_no_cache_behaviours() -> None:
    # At a quota of exactly the two class-wide behaviours, any tenant that cost one would fail.
    quota = {"quotas": {"cache_behaviors_per_distribution": 2}}
    load_config({"imgcdn": {**_tenants(12), **quota}})
    one_signed = _tenants(12)
    one_signed["tenants"][0]["signed_urls"] = [{"id": "k1", "pem": PEM}]
    with pytest.raises(ConfigError, match="1 tenants with signed_urls need 4 cache behaviours"):
        load_config({"imgcdn": {**one_signed, **quota}})


def test_tenants_must_fit_iams_inline_policy_limit() -> None:
    load_config({"imgcdn": _tenants(12)})
    with pytest.raises(ConfigError) as caught:
        load_config({"imgcdn": _tenants(14)})
    message = str(caught.value)
    for needle in ("tenants", "14 tenants", "10240", "not adjustable"):
        assert needle in message
    # Long names cost characters in every ARN: fewer of them fit.
    with pytest.raises(ConfigError, match="tenants"):
        load_config({"imgcdn": _tenants(10, width=32)})


def test_superseded_derivatives_days_is_validated() -> None:
    assert load_config({"imgcdn": TENANTS}).retention.superseded_derivatives_days == 30
    with pytest.raises(ConfigError, match=r"imgcdn\.retention\.superseded_derivatives_days"):
        load_config({"imgcdn": TENANTS, "imgcdn:retention.superseded_derivatives_days": "0"})


def test_a_key_group_holds_at_most_five_public_keys_and_the_message_names_the_extra_key() -> None:
    # CloudFront's quota "Public keys in a single key group" is 5.
    keys = [{"id": f"k{i}", "pem": PEM} for i in range(1, 6)]
    load_config({"imgcdn": {"tenants": [{"name": "acme", "signed_urls": keys}]}})
    six = [*keys, {"id": "k2027", "pem": PEM}]
    with pytest.raises(ConfigError) as caught:
        load_config({"imgcdn": {"tenants": [{"name": "acme", "signed_urls": six}]}})
    message = str(caught.value)
    for needle in ("tenants.0.signed_urls", "6 public keys", "quota of 5", "key 'k2027'"):
        assert needle in message


def test_render_functions_are_sized_for_imgcores_per_render_memory_bound() -> None:
    from imgcdn_infra.config import MIN_RENDER_MEMORY_MB, RENDER_MEMORY_MB
    from imgcore import DEFAULT_POLICY

    assert DEFAULT_POLICY.limits.max_render_bytes == RENDER_MEMORY_MB * 1024 * 1024
    config = load_config({"imgcdn": TENANTS})
    assert config.fallback.memory_mb >= MIN_RENDER_MEMORY_MB
    assert config.precompute.memory_mb >= MIN_RENDER_MEMORY_MB
    for key in ("imgcdn:fallback.memory_mb", "imgcdn:precompute.memory_mb"):
        with pytest.raises(ConfigError) as caught:
            load_config({"imgcdn": TENANTS, key: str(MIN_RENDER_MEMORY_MB - 1)})
        assert key.replace(":", ".") in str(caught.value)
