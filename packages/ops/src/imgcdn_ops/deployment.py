"""Where a takedown acts: a deployed stack (S3 + CloudFront) or a running local stack.

The Lambda and `imgcdn takedown` build the same ports here, from the environment or the
command line (explicit values beat the environment):

| variable | meaning |
|---|---|
| `IMGCDN_ORIGINALS_BUCKET` | the originals bucket |
| `IMGCDN_DERIVATIVES_BUCKET` | the derivatives bucket |
| `IMGCDN_AUDIT_BUCKET` | the audit bucket (versioned, Object Lock) |
| `IMGCDN_REPLICA_BUCKET` | the originals' replica in another Region, when replication is on |
| `IMGCDN_DISTRIBUTION_ID` | the CloudFront distribution to invalidate |
| `IMGCDN_TENANTS` | the deployment's tenants, comma-separated (an unknown one is refused) |
| `IMGCDN_RENDER_WINDOW_SECONDS` | the fallback's timeout plus a margin (default 35) |
| `IMGCDN_S3_ENDPOINT` | an S3-compatible endpoint (tests, MinIO) |

A local stack (`imgcdn dev`) describes itself at `GET /_admin/stack`: its store folders (or its
S3 endpoint and buckets), its render window, and its invalidation endpoint, which answers like
CloudFront's (`HttpInvalidator`).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgcdn_aws.config import ConfigError, parse_bucket, parse_endpoint
from imgcdn_ops.invalidation import InvalidationBusy, Invalidator
from imgcdn_ops.takedown import DEFAULT_RENDER_WINDOW_S, TakedownService
from imgcore.errors import InvalidKey
from imgcore.keys import validate_tenant
from imgcore.policy import DEFAULT_POLICY, Policy
from imgcore.storage import LocalStore

__all__ = [
    "AUDIT_BUCKET",
    "DISTRIBUTION_ID",
    "RENDER_WINDOW",
    "TENANTS",
    "Deployment",
    "HttpInvalidator",
    "LocalStackError",
    "local_deployment",
]

ORIGINALS_BUCKET = "IMGCDN_ORIGINALS_BUCKET"
DERIVATIVES_BUCKET = "IMGCDN_DERIVATIVES_BUCKET"
AUDIT_BUCKET = "IMGCDN_AUDIT_BUCKET"
REPLICA_BUCKET = "IMGCDN_REPLICA_BUCKET"
DISTRIBUTION_ID = "IMGCDN_DISTRIBUTION_ID"
TENANTS = "IMGCDN_TENANTS"
RENDER_WINDOW = "IMGCDN_RENDER_WINDOW_SECONDS"
S3_ENDPOINT = "IMGCDN_S3_ENDPOINT"


class LocalStackError(Exception):
    """The local stack cannot be reached or answered something unexpected."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """The ports of one takedown target."""

    service: TakedownService
    invalidator: Invalidator
    tenants: frozenset[str] | None
    render_window_s: float
    where: str
    """For messages: `distribution E123 (bucket names)` or the local stack's URL."""
    poll_interval_s: float = 5.0
    """Between status reads: CloudFront takes seconds to minutes; the local stack, a moment."""


def _tenants(value: str, name: str) -> frozenset[str]:
    tenants = [t.strip() for t in value.split(",") if t.strip()]
    try:
        return frozenset(validate_tenant(t) for t in tenants)
    except InvalidKey as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _window(value: str, name: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 900:
        msg = f"{name}={value!r} is not a number of seconds; allowed: 0-900"
        raise ConfigError(msg)
    return seconds


def aws_deployment(
    *,
    originals_bucket: str | None = None,
    derivatives_bucket: str | None = None,
    audit_bucket: str | None = None,
    replica_bucket: str | None = None,
    distribution_id: str | None = None,
    tenants: Sequence[str] | None = None,
    render_window_s: float | None = None,
    environ: Mapping[str, str] | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> Deployment:
    """The ports of a deployed stack, from arguments, else the environment.

    Raises:
        ConfigError: A value is missing or invalid; the message names the option and variable.
    """
    from imgcdn_aws.cloudfront import CloudFrontInvalidator  # noqa: PLC0415 - boto3 loads here
    from imgcdn_aws.s3 import S3Store  # noqa: PLC0415

    env = os.environ if environ is None else environ

    def required(given: str | None, name: str, flag: str) -> str:
        value = (given or env.get(name, "")).strip()
        if not value:
            msg = f"{flag} is not given and {name} is not set; it must name the stack's resource"
            raise ConfigError(msg)
        return value

    originals = parse_bucket(
        required(originals_bucket, ORIGINALS_BUCKET, "--originals-bucket"), ORIGINALS_BUCKET
    )
    derivatives = parse_bucket(
        required(derivatives_bucket, DERIVATIVES_BUCKET, "--derivatives-bucket"),
        DERIVATIVES_BUCKET,
    )
    audit = parse_bucket(required(audit_bucket, AUDIT_BUCKET, "--audit-bucket"), AUDIT_BUCKET)
    distribution = required(distribution_id, DISTRIBUTION_ID, "--distribution-id")
    replica_name = (replica_bucket or env.get(REPLICA_BUCKET, "")).strip()
    replica = parse_bucket(replica_name, REPLICA_BUCKET) if replica_name else None
    raw_endpoint = env.get(S3_ENDPOINT, "").strip()
    endpoint = parse_endpoint(raw_endpoint, S3_ENDPOINT) if raw_endpoint else None
    known = (
        frozenset(tenants)
        if tenants
        else (_tenants(env[TENANTS], TENANTS) if env.get(TENANTS, "").strip() else None)
    )
    window = (
        render_window_s
        if render_window_s is not None
        else (
            _window(env[RENDER_WINDOW], RENDER_WINDOW)
            if env.get(RENDER_WINDOW, "").strip()
            else DEFAULT_RENDER_WINDOW_S
        )
    )
    service = TakedownService(
        S3Store(originals, endpoint_url=endpoint),
        S3Store(derivatives, endpoint_url=endpoint),
        S3Store(audit, endpoint_url=endpoint),
        policy=policy,
        replica=None if replica is None else S3Store(replica, endpoint_url=endpoint),
    )
    return Deployment(
        service,
        CloudFrontInvalidator(distribution, busy=InvalidationBusy),
        known,
        window,
        f"distribution {distribution} (originals {originals}, derivatives {derivatives})",
    )


class HttpInvalidator:
    """The local stack's invalidation endpoint, which answers like CloudFront's API."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        """Talk to the stack at `url` (`http://127.0.0.1:8080`)."""
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310 - the user's own stack URL
        request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace").strip()
            if exc.code in (429, 503):
                raise InvalidationBusy(detail) from None
            msg = f"the local stack answered {exc.code} to {method} {path}: {detail}"
            raise LocalStackError(msg) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            msg = (
                f"cannot reach the local stack at {self.url} ({reason}); start it with: imgcdn dev"
            )
            raise LocalStackError(msg) from None
        return answer

    def create(self, paths: Sequence[str], reference: str) -> str:
        """Start one invalidation (see `Invalidator`)."""
        answer = self._call(
            "POST", "/_admin/invalidations", {"paths": list(paths), "reference": reference}
        )
        return str(answer["id"])

    def status(self, invalidation_id: str) -> str:
        """`InProgress` or `Completed`."""
        return str(self._call("GET", f"/_admin/invalidations/{invalidation_id}")["status"])

    def describe(self) -> dict[str, Any]:
        """The stack's own description (`GET /_admin/stack`)."""
        return self._call("GET", "/_admin/stack")


def local_deployment(url: str, *, render_window_s: float | None = None) -> Deployment:
    """The ports of a running local stack, as it describes itself.

    Raises:
        LocalStackError: It cannot be reached, or describes stores this command cannot open.
    """
    http = HttpInvalidator(url)
    info = http.describe()
    stores = info.get("stores", {})
    policy = Policy.model_validate(info["policy"]) if "policy" in info else DEFAULT_POLICY
    if stores.get("kind") == "local":
        originals: Any = LocalStore(Path(stores["originals"]), versioned=True)
        derivatives: Any = LocalStore(Path(stores["derivatives"]))
        audit: Any = LocalStore(Path(stores["audit"]), versioned=True)
    elif stores.get("kind") == "s3":
        from imgcdn_aws.s3 import S3Store  # noqa: PLC0415 - boto3 loads only for S3

        endpoint = stores["endpoint"]
        originals = S3Store(stores["originals"], endpoint_url=endpoint)
        derivatives = S3Store(stores["derivatives"], endpoint_url=endpoint)
        audit = S3Store(stores["audit"], endpoint_url=endpoint)
    else:
        msg = f"the local stack at {url} describes stores this command cannot open: {stores}"
        raise LocalStackError(msg)
    window = (
        render_window_s
        if render_window_s is not None
        else float(info.get("render_window_seconds", DEFAULT_RENDER_WINDOW_S))
    )
    tenants = info.get("tenants")
    return Deployment(
        TakedownService(originals, derivatives, audit, policy=policy),
        http,
        frozenset(tenants) if tenants else None,
        window,
        f"the local stack at {url}",
        poll_interval_s=0.25,
    )
