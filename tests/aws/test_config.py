"""Configuration resolves from the environment once, and a bad value names its variable."""

from __future__ import annotations

import pytest

from imgcdn_aws.config import ConfigError, Settings
from imgcore.policy import DEFAULT_POLICY, Policy, StandardSet

GOOD = {"IMGCDN_ORIGINALS_BUCKET": "acme-originals", "IMGCDN_DERIVATIVES_BUCKET": "acme-derived"}


def test_the_minimal_configuration() -> None:
    settings = Settings.from_env(GOOD)
    assert settings == Settings("acme-originals", "acme-derived", None, DEFAULT_POLICY)


def test_every_variable() -> None:
    policy = Policy(standard=StandardSet(widths=(320,)))
    settings = Settings.from_env(
        {
            **GOOD,
            "IMGCDN_S3_ENDPOINT": "http://127.0.0.1:5000/",
            "IMGCDN_POLICY": policy.to_json(),
        }
    )
    assert settings.s3_endpoint == "http://127.0.0.1:5000"
    assert settings.policy == policy


@pytest.mark.parametrize(
    ("env", "variable", "says"),
    [
        ({}, "IMGCDN_ORIGINALS_BUCKET", "is not set"),
        ({"IMGCDN_ORIGINALS_BUCKET": "abc"}, "IMGCDN_DERIVATIVES_BUCKET", "is not set"),
        ({**GOOD, "IMGCDN_ORIGINALS_BUCKET": "Acme_Originals"}, "IMGCDN_ORIGINALS_BUCKET", "3-63"),
        ({**GOOD, "IMGCDN_DERIVATIVES_BUCKET": "s3://x"}, "IMGCDN_DERIVATIVES_BUCKET", "a-z"),
        ({**GOOD, "IMGCDN_DERIVATIVES_BUCKET": "10.0.0.1"}, "IMGCDN_DERIVATIVES_BUCKET", "IP"),
        ({**GOOD, "IMGCDN_S3_ENDPOINT": "localhost:5000"}, "IMGCDN_S3_ENDPOINT", "http(s)://"),
        ({**GOOD, "IMGCDN_S3_ENDPOINT": "ftp://h"}, "IMGCDN_S3_ENDPOINT", "http(s)://"),
        ({**GOOD, "IMGCDN_POLICY": "{"}, "IMGCDN_POLICY", "not a valid policy"),
        (
            {**GOOD, "IMGCDN_POLICY": '{"standard": {"widths": [300]}}'},
            "IMGCDN_POLICY",
            "300 is not a width breakpoint",
        ),
        ({**GOOD, "IMGCDN_POLICY": '{"widht": [1]}'}, "IMGCDN_POLICY", "widht"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(
    env: dict[str, str], variable: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert variable in str(caught.value)
    assert says in str(caught.value)
