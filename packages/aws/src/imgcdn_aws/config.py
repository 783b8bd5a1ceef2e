"""The environment variables both Lambdas share, parsed once at process start.

The precompute worker reads exactly these; the fallback (`imgcdn_edge.config`) reads them with
the same parsers and adds its own bounds.

| variable | required | meaning |
|---|---|---|
| `IMGCDN_ORIGINALS_BUCKET` | yes | bucket the originals are uploaded to (`{class}/{tenant}/{id}`) |
| `IMGCDN_DERIVATIVES_BUCKET` | yes | bucket the derivatives and manifests are written to |
| `IMGCDN_S3_ENDPOINT` | no | an S3-compatible endpoint URL (moto, MinIO); AWS itself when unset |
| `IMGCDN_POLICY` | no | the policy as JSON (`imgcdn policy`); imgcore's default when unset |

A bad value fails at start with a message that names the variable and says what is allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import ValidationError

from imgcore.policy import DEFAULT_POLICY, Policy

__all__ = ["ConfigError", "Settings", "parse_bucket", "parse_endpoint", "parse_policy"]

ORIGINALS_BUCKET = "IMGCDN_ORIGINALS_BUCKET"
DERIVATIVES_BUCKET = "IMGCDN_DERIVATIVES_BUCKET"
S3_ENDPOINT = "IMGCDN_S3_ENDPOINT"
POLICY = "IMGCDN_POLICY"

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4 = re.compile(r"\d+\.\d+\.\d+\.\d+")


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


def parse_bucket(value: str, name: str) -> str:
    """Check an S3 bucket name.

    Raises:
        ConfigError: The name breaks S3's naming rules; the message names `name`.
    """
    if not _BUCKET.fullmatch(value) or ".." in value or _IPV4.fullmatch(value):
        msg = (
            f"{name}={value!r} is not an S3 bucket name; allowed: 3-63 characters of a-z, 0-9, "
            "'.' and '-', starting and ending with a letter or digit, not an IP address"
        )
        raise ConfigError(msg)
    return value


def parse_endpoint(value: str, name: str) -> str:
    """Check an endpoint URL.

    Raises:
        ConfigError: Not an absolute http(s) URL without path, query or credentials.
    """
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.username
    ):
        msg = f"{name}={value!r} is not an endpoint URL; allowed: http(s)://host[:port]"
        raise ConfigError(msg)
    return value.rstrip("/")


def parse_policy(value: str, name: str) -> Policy:
    """Parse a policy from JSON.

    Raises:
        ConfigError: Not JSON, or not a valid policy; the message names `name` and the fields.
    """
    try:
        return Policy.model_validate_json(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(policy)'}: {e['msg']}" for e in exc.errors()
        )
        msg = f"{name} is not a valid policy JSON (see `imgcdn policy`): {problems}"
        raise ConfigError(msg) from None


@dataclass(frozen=True, slots=True)
class Settings:
    """The deployment both Lambdas share: the two buckets, the S3 endpoint and the policy."""

    originals_bucket: str
    derivatives_bucket: str
    s3_endpoint: str | None = None
    policy: Policy = DEFAULT_POLICY

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Resolve the settings from environment variables (see the module docstring).

        Raises:
            ConfigError: A variable is missing or invalid; the message names it.
        """
        env = os.environ if environ is None else environ

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                msg = f"{name} is not set; it must name an S3 bucket"
                raise ConfigError(msg)
            return value

        endpoint = env.get(S3_ENDPOINT, "").strip()
        policy = env.get(POLICY, "").strip()
        return cls(
            originals_bucket=parse_bucket(required(ORIGINALS_BUCKET), ORIGINALS_BUCKET),
            derivatives_bucket=parse_bucket(required(DERIVATIVES_BUCKET), DERIVATIVES_BUCKET),
            s3_endpoint=parse_endpoint(endpoint, S3_ENDPOINT) if endpoint else None,
            policy=parse_policy(policy, POLICY) if policy else DEFAULT_POLICY,
        )
