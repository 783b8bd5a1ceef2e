"""The fallback's configuration, resolved once at process start from the environment.

| variable | required | meaning |
|---|---|---|
| `IMGCDN_ORIGINALS_BUCKET` | yes | bucket of the originals (`{class}/{tenant}/{id}`, versioned) |
| `IMGCDN_DERIVATIVES_BUCKET` | yes | bucket of the derivatives and manifests (the S3 primary) |
| `IMGCDN_S3_ENDPOINT` | no | an S3-compatible endpoint URL (moto, MinIO); AWS itself when unset |
| `IMGCDN_POLICY` | no | the policy as JSON (`imgcdn policy`); imgcore's default when unset |
| `IMGCDN_MAX_RESPONSE_BYTES` | no | largest base64 body answered directly (default 6,029,312) |
| `IMGCDN_DEADLINE_MARGIN_MS` | no | ms kept back from the timeout to answer 503 (1500; >= 1500) |

The bucket, endpoint and policy variables mean exactly what they mean to the precompute worker
(the same parsers). A bad value fails at start with a message that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from imgcdn_aws.config import ConfigError, Settings
from imgcore import DEFAULT_POLICY, Policy

__all__ = [
    "DEFAULT_DEADLINE_MARGIN_MS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "LAMBDA_RESPONSE_LIMIT",
    "MIN_DEADLINE_MARGIN_MS",
    "ConfigError",
    "FallbackLimits",
    "FallbackSettings",
]

ORIGINALS_BUCKET = "IMGCDN_ORIGINALS_BUCKET"
DERIVATIVES_BUCKET = "IMGCDN_DERIVATIVES_BUCKET"
S3_ENDPOINT = "IMGCDN_S3_ENDPOINT"
POLICY = "IMGCDN_POLICY"
MAX_RESPONSE_BYTES = "IMGCDN_MAX_RESPONSE_BYTES"
DEADLINE_MARGIN_MS = "IMGCDN_DEADLINE_MARGIN_MS"

LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
"""Lambda's cap on a buffered response payload (the JSON document, base64 body included)."""
DEFAULT_MAX_RESPONSE_BYTES = LAMBDA_RESPONSE_LIMIT - 256 * 1024
"""The base64 body the fallback still answers directly; 256 KiB stay free for the JSON and
headers around it. Anything larger is stored and answered with a redirect (R12)."""
DEFAULT_DEADLINE_MARGIN_MS = 1500
"""Kept back from the remaining invocation time: enough to store nothing and answer 503."""
MIN_DEADLINE_MARGIN_MS = 1500
"""The least margin over S3: one S3 call of the fallback's client stalls at most 1,500 ms
(`imgcdn_aws.s3.INTERACTIVE_CALL_BUDGET_MS`: 0.5 s connect + 1.0 s read, no retry), so a call
still running at the deadline ends before the invocation does and never spills into the next
invocation of a warm environment. The fallback answers at the deadline either way."""


@dataclass(frozen=True, slots=True)
class FallbackLimits:
    """How the fallback bounds its work.

    Attributes:
        max_response_bytes: The largest base64-encoded body answered directly; a larger output
            is stored and answered with a redirect (R12).
        deadline_margin_ms: Milliseconds kept back from the Lambda's remaining time: a
            transform still running then is abandoned with a 503.
    """

    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    deadline_margin_ms: int = DEFAULT_DEADLINE_MARGIN_MS

    def __post_init__(self) -> None:
        if not 1 <= self.max_response_bytes <= LAMBDA_RESPONSE_LIMIT:
            msg = (
                f"max_response_bytes={self.max_response_bytes} is out of range; allowed: "
                f"1-{LAMBDA_RESPONSE_LIMIT:,} (Lambda's response limit)"
            )
            raise ConfigError(msg)
        if not 0 <= self.deadline_margin_ms <= 600_000:
            msg = f"deadline_margin_ms={self.deadline_margin_ms} is out of range; allowed: 0-600000"
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class FallbackSettings:
    """Everything the fallback Lambda needs to know about its deployment, resolved from the
    environment (what `imgcdn_aws.config.Settings` is to the precompute worker; the CDK sizing
    of the function is `imgcdn_infra.config.FallbackConfig`)."""

    originals_bucket: str
    derivatives_bucket: str
    s3_endpoint: str | None = None
    policy: Policy = DEFAULT_POLICY
    limits: FallbackLimits = field(default_factory=FallbackLimits)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FallbackSettings:
        """Resolve the configuration from environment variables (see the module docstring).

        Raises:
            ConfigError: A variable is missing or invalid; the message names it.
        """
        env = os.environ if environ is None else environ

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
                msg = f"{name}={raw!r} is not valid; allowed: a whole number {low}-{high:,}"
                raise ConfigError(msg)
            return int(raw)

        # The variables both Lambdas share are read by one parser (imgcdn_aws.config).
        common = Settings.from_env(env)
        return cls(
            originals_bucket=common.originals_bucket,
            derivatives_bucket=common.derivatives_bucket,
            s3_endpoint=common.s3_endpoint,
            policy=common.policy,
            limits=FallbackLimits(
                max_response_bytes=integer(
                    MAX_RESPONSE_BYTES, DEFAULT_MAX_RESPONSE_BYTES, 1, LAMBDA_RESPONSE_LIMIT
                ),
                deadline_margin_ms=integer(
                    DEADLINE_MARGIN_MS, DEFAULT_DEADLINE_MARGIN_MS, MIN_DEADLINE_MARGIN_MS, 600_000
                ),
            ),
        )
