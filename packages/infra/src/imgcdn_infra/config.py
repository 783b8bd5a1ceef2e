"""The deployment's configuration: one validated model, read once from the CDK context.

Every value comes from the context: a JSON object under the key `imgcdn` (cdk.json, or
`-c imgcdn='{...}'`), then flat overrides `-c imgcdn:<dotted.path>=<value>` (the value is read as
JSON when it parses, else as a string), e.g. `-c imgcdn:precompute.reserved_concurrency=20`.
A wrong value fails synth with a `ConfigError` whose message names each offending key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "CONTEXT_KEY",
    "PUBLIC_KEYS_PER_KEY_GROUP",
    "STANDARD_PREFIX",
    "TAKEDOWN_PREFIX",
    "AlarmConfig",
    "BackfillConfig",
    "ConfigError",
    "DomainConfig",
    "FallbackConfig",
    "InfraConfig",
    "PrecomputeConfig",
    "ProbesConfig",
    "PublicKeyConfig",
    "QuotaConfig",
    "ReplicationConfig",
    "RetentionConfig",
    "TakedownConfig",
    "TenantConfig",
    "VerifyConfig",
    "WafConfig",
    "load_config",
    "origin_shield_region_for",
]

CONTEXT_KEY = "imgcdn"
"""The context key of the config object; flat overrides are `imgcdn:<dotted.path>`."""

STANDARD_PREFIX = "img"
"""imgcore's standard content class: the first path segment of every long-lived key."""
TAKEDOWN_PREFIX = "ugc"
"""imgcore's takedown-eligible content class (`ContentClass.TAKEDOWN`). Not a setting: imgcore's
key layout, the generated Function and the Lambdas all fix it, so synth checks that the built
assets' layout agrees (`imgcdn_infra.stack`) rather than letting a deployment choose another."""

# The Origin Shield Region AWS recommends for an origin in each Region ("Choosing the AWS Region
# for Origin Shield", CloudFront Developer Guide). Used only when origin_shield_region is unset.
ORIGIN_SHIELD_FOR_REGION: Mapping[str, str] = {
    "us-east-1": "us-east-1",
    "us-east-2": "us-east-2",
    "us-west-1": "us-west-2",
    "us-west-2": "us-west-2",
    "ca-central-1": "us-east-1",
    "sa-east-1": "sa-east-1",
    "eu-west-1": "eu-west-1",
    "eu-west-2": "eu-west-2",
    "eu-west-3": "eu-west-2",
    "eu-north-1": "eu-west-2",
    "eu-central-1": "eu-central-1",
    "eu-south-1": "eu-central-1",
    "af-south-1": "eu-west-1",
    "me-south-1": "ap-south-1",
    "ap-south-1": "ap-south-1",
    "ap-east-1": "ap-southeast-1",
    "ap-southeast-1": "ap-southeast-1",
    "ap-southeast-2": "ap-southeast-2",
    "ap-northeast-1": "ap-northeast-1",
    "ap-northeast-2": "ap-northeast-2",
    "ap-northeast-3": "ap-northeast-1",
}

_REGION = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"
_TENANT = r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$"
_HOST = r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
_ORIGIN = re.compile(r"^https?://(?:[a-z0-9-]+\.)*[a-z0-9-]+(?::\d{1,5})?$")
_CERTIFICATE_ARN = re.compile(r"^arn:aws:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[0-9a-f-]+$")
_PEM = re.compile(
    r"^-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PUBLIC KEY-----\s*$"
)
# CloudWatch Logs' allowed retention periods, in days.
_LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)  # fmt: skip - one table, not 22 lines

CLOUDFRONT_CACHE_BEHAVIORS_QUOTA = 75
"""CloudFront's default quota of cache behaviours per distribution (adjustable)."""
IAM_INLINE_POLICY_CHARS = 10_240
"""IAM's limit on a role's inline policies together, blanks not counted (not adjustable)."""
# The parts of `_iam_policy_chars`, sized for the precompute role (the larger of the two): per
# `{class}/{tenant}/` prefix, three object ARNs (read originals, own derivatives, tag them) and
# two `s3:prefix` conditions; everything else (log and queue statements, ARNs of 63-character
# names) fits in the fixed part. The takedown role holds less per prefix (two object ARNs, one
# condition) and fits the same fixed part (its audit and distribution ARNs instead of a second
# list statement), so this bound covers it too (tests/infra/test_takedown.py holds it to that).
_POLICY_FIXED_CHARS = 1_700
_POLICY_OBJECT_ARNS = 3
_POLICY_PREFIX_CONDITIONS = 2
_OBJECT_ARN_CHARS = len('"arn:aws-us-gov:s3:::/*",') + 63  # the longest partition name
_PREFIX_CONDITION_CHARS = len('"*",')
_EVENT_SOURCE_MIN_CONCURRENCY = 2  # SQS event sources' MaximumConcurrency: 2-1000

Region = Annotated[str, StringConstraints(pattern=_REGION)]
_Strict = ConfigDict(frozen=True, extra="forbid")


class ConfigError(ValueError):
    """The context holds a value the app cannot deploy; the message names every bad key."""


class PublicKeyConfig(BaseModel):
    """One CloudFront public key a tenant signs URLs with (several overlap during rotation)."""

    model_config = _Strict

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    """A stable name for the key (part of the CloudFormation logical id, so keep it fixed)."""
    pem: str
    """The RSA public key, PEM (`-----BEGIN PUBLIC KEY-----`)."""

    @field_validator("pem")
    @classmethod
    def _check_pem(cls, value: str) -> str:
        if not _PEM.match(value):
            msg = (
                "must be a PEM public key (-----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----)"
            )
            raise ValueError(msg)
        return value


PUBLIC_KEYS_PER_KEY_GROUP = 5
"""CloudFront's quota "Public keys in a single key group" (docs: cloudfront-limits.html); a
deploy over it fails late with TooManyPublicKeysInKeyGroup, so the config refuses it first."""


class TenantConfig(BaseModel):
    """One tenant: its key prefixes, and optionally signed URLs and hotlink protection (R17)."""

    model_config = _Strict

    name: Annotated[str, StringConstraints(pattern=_TENANT)]
    """The tenant id of the key layout: 1-32 of `a-z 0-9 -`, alphanumeric at both ends."""
    signed_urls: tuple[PublicKeyConfig, ...] = ()
    """Public keys of this tenant's trusted key group; empty means its URLs need no signature."""
    referers: tuple[Annotated[str, StringConstraints(pattern=_HOST)], ...] = ()
    """Hosts allowed to embed this tenant's images (WAF rule; needs `waf.enabled`)."""
    allow_empty_referer: bool = True
    """Whether requests without a `Referer` (direct visits, privacy settings) are allowed."""

    @field_validator("signed_urls")
    @classmethod
    def _unique_key_ids(cls, value: tuple[PublicKeyConfig, ...]) -> tuple[PublicKeyConfig, ...]:
        ids = [key.id for key in value]
        if len(ids) != len(set(ids)):
            msg = f"key ids must be unique; got {ids}"
            raise ValueError(msg)
        if len(ids) > PUBLIC_KEYS_PER_KEY_GROUP:
            extra = ", ".join(repr(i) for i in ids[PUBLIC_KEYS_PER_KEY_GROUP:])
            msg = (
                f"{len(ids)} public keys, over CloudFront's quota of {PUBLIC_KEYS_PER_KEY_GROUP} "
                f"per key group: key {extra} is one too many; allowed: at most "
                f"{PUBLIC_KEYS_PER_KEY_GROUP} (retire a key no URL is signed with any more, see "
                "docs/deploy.md, Rotating signing keys)"
            )
            raise ValueError(msg)
        return value


RENDER_MEMORY_MB = 1024
"""One render's stated peak memory: imgcore's `Limits.max_render_bytes` (1 GiB) in MB. The CDK
app imports no other workspace package, so tests/infra holds the two equal."""
RUNTIME_MEMORY_MB = 256
"""The Python runtime, libvips, boto3 and the handler's modules (~60-100 MB resident), plus an
answer's buffers (a 6 MB body and its base64 form)."""
MIN_RENDER_MEMORY_MB = RENDER_MEMORY_MB + RUNTIME_MEMORY_MB
"""The least memory a function that renders may have: it renders one original at a time
(the fallback one per invocation, precompute the records of a batch in turn)."""


class PrecomputeConfig(BaseModel):
    """The S3-event worker: sizing, batching and retries."""

    model_config = _Strict

    memory_mb: int = Field(default=3008, ge=MIN_RENDER_MEMORY_MB, le=10240)
    """Memory (and so CPU share); 3008 MB gives ~2 vCPUs, which AVIF encoding uses. At least
    `MIN_RENDER_MEMORY_MB` (1280): one render's bound plus the runtime."""
    timeout_seconds: int = Field(default=300, ge=10, le=900)
    """Per invocation; the queue's visibility timeout is 6x this (see `visibility_timeout`)."""
    reserved_concurrency: int | None = Field(default=None, ge=3, le=1000)
    """Caps concurrent renders of uploads and backfill together; None: unreserved."""
    event_source_max_concurrency: int | None = Field(default=None, ge=2, le=1000)
    """Concurrent invocations the upload queue may start (SQS event sources allow 2-1000).

    None: with `reserved_concurrency`, what the backfill leaves of it
    (`reserved_concurrency - backfill.max_concurrency`); without, no cap. With a reservation the
    queue's share stays below it, so a running backfill can never throttle queue invocations
    (a throttled batch counts as a receive and would walk uploads towards the DLQ).
    """
    batch_size: int = Field(default=4, ge=1, le=10)
    """SQS messages per invocation; failures are reported per item."""
    max_batching_window_seconds: int = Field(default=0, ge=0, le=300)
    max_receive_count: int = Field(default=5, ge=1, le=1000)
    """Deliveries before a message moves to the DLQ (R18: nothing is lost)."""

    @property
    def visibility_timeout_seconds(self) -> int:
        """6x the timeout plus the batching window: AWS's rule for SQS event sources.

        A message stays invisible while a batch is retried after throttling, so the queue never
        hands the same message to a second worker while the first still holds it.
        """
        return 6 * self.timeout_seconds + self.max_batching_window_seconds


class FallbackConfig(BaseModel):
    """The transformer behind the Function URL (runs on misses only)."""

    model_config = _Strict

    memory_mb: int = Field(default=2048, ge=MIN_RENDER_MEMORY_MB, le=10240)
    """At least `MIN_RENDER_MEMORY_MB` (1280): one render's bound plus the runtime."""
    timeout_seconds: int = Field(default=30, ge=5, le=120)
    """Also CloudFront's origin read timeout; 120 s is the default quota for it."""
    reserved_concurrency: int | None = Field(default=None, ge=1, le=1000)
    """Caps concurrent on-the-fly renders during a miss storm; None: unreserved."""


class WafConfig(BaseModel):
    """The optional web ACL: per-IP rate limit, IP reputation list, per-tenant referer rules."""

    model_config = _Strict

    enabled: bool = False
    rate_limit: int = Field(default=2000, ge=10, le=2_000_000_000)
    """Requests per IP in any 5-minute window before WAF blocks that IP."""
    ip_reputation: bool = True
    """Add AWS's managed Amazon IP reputation list."""


class DomainConfig(BaseModel):
    """A custom domain: alternate names and an ACM certificate that lives in us-east-1."""

    model_config = _Strict

    names: tuple[Annotated[str, StringConstraints(pattern=_HOST)], ...] = Field(min_length=1)
    certificate_arn: str

    @field_validator("certificate_arn")
    @classmethod
    def _check_certificate(cls, value: str) -> str:
        match = _CERTIFICATE_ARN.match(value)
        if match is None:
            msg = (
                "must be an ACM certificate ARN (arn:aws:acm:us-east-1:<account>:certificate/<id>)"
            )
            raise ValueError(msg)
        if match["region"] != "us-east-1":
            msg = (
                f"the certificate is in {match['region']}; CloudFront only uses ACM certificates "
                "from us-east-1"
            )
            raise ValueError(msg)
        return value


_RATE = re.compile(r"^rate\((?P<value>[1-9]\d*) (?P<unit>minutes?|hours?|days?)\)$")
_CRON = re.compile(r"^cron\((?P<fields>[^()]+)\)$")
# EventBridge's cron fields, in order, with the characters each may hold.
_CRON_FIELDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("minutes", re.compile(r"^[0-9,*/-]+$")),
    ("hours", re.compile(r"^[0-9,*/-]+$")),
    ("day-of-month", re.compile(r"^(?:[0-9,*/LW-]+|\?)$")),
    ("month", re.compile(r"^[0-9A-Za-z,*/-]+$")),
    ("day-of-week", re.compile(r"^(?:[0-9A-Za-z,*L#-]+|\?)$")),
    ("year", re.compile(r"^[0-9,*/-]+$")),
)
_SCHEDULE_ALLOWED = (
    "allowed: an EventBridge schedule expression, rate(<n> <unit>) with unit minute, hour or "
    "day (singular for 1, plural above: rate(1 hour), rate(6 hours)), or cron(<minutes> <hours> "
    "<day-of-month> <month> <day-of-week> <year>) with ? in exactly one of the two day fields "
    "(cron(0 6 * * ? *)); or null to turn the check off"
)


def _cron_problem(fields: list[str]) -> str | None:
    if len(fields) != len(_CRON_FIELDS):
        return f"cron takes {len(_CRON_FIELDS)} fields, one space apart; got {len(fields)}"
    for value, (name, pattern) in zip(fields, _CRON_FIELDS, strict=True):
        if not pattern.match(value):
            return f"the {name} field {value!r} is not valid"
    if (fields[2] == "?") == (fields[4] == "?"):
        return "exactly one of day-of-month and day-of-week must be ?"
    return None


def _schedule_problem(expression: str) -> str | None:
    """What is wrong with an EventBridge schedule expression, or None when it is well formed."""
    rate = _RATE.match(expression)
    if rate is not None:
        plural = rate["unit"].endswith("s")
        if (rate["value"] == "1") == plural:
            return "the unit is singular for 1 and plural above 1"
        return None
    cron = _CRON.match(expression)
    if cron is None:
        return "not a rate(...) or cron(...) expression"
    return _cron_problem(cron["fields"].split(" "))


class VerifyConfig(BaseModel):
    """The scheduled drift check: a Lambda compares the live distribution with this stack.

    Off by default; `schedule` turns it on (`-c imgcdn:verify.schedule="rate(1 hour)"`). Each run
    writes the EMF metric `DriftedFields`; an alarm notifies the alarm topic when it is above 0,
    and another when the check itself fails.
    """

    model_config = _Strict

    schedule: str | None = None
    """EventBridge schedule expression of the check (`rate(1 hour)`, `cron(0 6 * * ? *)`)."""

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str | None) -> str | None:
        if value is None:
            return value
        problem = _schedule_problem(value)
        if problem is not None:
            msg = f"{problem}; {_SCHEDULE_ALLOWED}"
            raise ValueError(msg)
        return value


class AlarmConfig(BaseModel):
    """Alarm thresholds; every alarm notifies one SNS topic (optionally an e-mail address)."""

    model_config = _Strict

    dlq_depth: int = Field(default=0, ge=0)
    """Alarm when more than this many messages wait in the DLQ."""
    precompute_errors: int = Field(default=0, ge=0)
    """Alarm when the worker fails more than this many whole invocations in 5 minutes."""
    precompute_transient_errors: int = Field(default=5, ge=0)
    """Alarm when more than this many events fail and are retried in 5 minutes (EMF
    `TransientErrors`: storage faults, throttles; with partial batch responses these are not
    Lambda errors, and each retry walks the message towards the DLQ)."""
    precompute_render_failures: int = Field(default=10, ge=0)
    """Alarm when more than this many originals cannot be rendered in 5 minutes (EMF
    `RenderFailures`: undecodable or out-of-policy uploads, recorded and not retried)."""
    precompute_poisoned_messages: int = Field(default=0, ge=0)
    """Alarm when more than this many queue messages are not S3 notifications (EMF
    `PoisonedMessages`), in 5 minutes: something else writes to the upload queue."""
    fallback_5xx_percent: float = Field(default=1.0, gt=0, le=100)
    """Alarm when more than this share of Function URL requests answer 5xx (5-minute windows)."""
    fallback_invocations_per_minute: int = Field(default=100, ge=1)
    """Alarm when the fallback runs more often than this: pre-compute is not covering traffic."""
    fallback_p99_ms: int | None = Field(default=None, ge=100)
    """Alarm when the fallback's p99 duration passes this (5-minute windows); None: 80 % of
    `fallback.timeout_seconds`, the point where renders are close to CloudFront giving up."""
    backlog_age_seconds: int | None = Field(default=None, ge=60, le=345_600)
    """Alarm when the oldest upload in the queue is older than this (SQS
    `ApproximateAgeOfOldestMessage`); None: one visibility timeout, so one retried message
    does not page but a second retry, or a queue that is not drained, does."""
    cloudfront_5xx_percent: float = Field(default=1.0, gt=0, le=100)
    """Alarm when more than this share of viewer requests get a 5xx (CloudFront `5xxErrorRate`,
    5-minute windows). CloudFront's metrics live in us-east-1: outside it, this alarm and the
    next go to a small stack there, with its own topic."""
    additional_metrics: bool = False
    """Turn on the distribution's additional metrics (a CloudFront monitoring subscription,
    priced per distribution and month) and alarm on the cache hit ratio."""
    cache_hit_ratio_percent: float = Field(default=80.0, gt=0, lt=100)
    """With `additional_metrics`: alarm when the cache hit ratio stays below this for 15
    minutes (the design aims above 90 %; a launch's cold misses dip below it for minutes)."""
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None


class ReplicationConfig(BaseModel):
    """Cross-Region replication of the originals: the only data that cannot be re-rendered."""

    model_config = _Strict

    region: Region
    """Where the replica bucket lives; must differ from the deployment's Region."""
    storage_class: Literal["STANDARD", "STANDARD_IA", "GLACIER_IR"] = "STANDARD_IA"
    """The replicas' S3 storage class: a copy read only after a Region is lost, so infrequent
    access by default (30-day minimum, a per-GB charge when the failover reads it)."""


class BackfillConfig(BaseModel):
    """The Distributed Map that renders a catalogue prefix with the precompute worker."""

    model_config = _Strict

    max_concurrency: int = Field(default=20, ge=1, le=10000)
    """Child workflows (worker invocations) running at once."""
    items_per_batch: int = Field(default=5, ge=1, le=100)
    """Originals per worker invocation; keep `items x render time` well inside the timeout."""
    tolerated_failure_percent: float = Field(default=0, ge=0, le=100)


class RetentionConfig(BaseModel):
    """How long logs and superseded objects are kept."""

    model_config = _Strict

    log_days: int = 90
    """CloudWatch Logs retention of the Lambdas and the state machine."""
    access_log_days: int = Field(default=90, ge=1)
    """S3 and CloudFront access logs in the log bucket."""
    derivatives_noncurrent_days: int = Field(default=7, ge=1)
    """Overwritten or deleted derivatives (noncurrent S3 versions) expire after this many days."""
    superseded_derivatives_days: int = Field(default=30, ge=1, le=3650)
    """Derivatives of an image's older versions expire once precompute has tagged them
    `imgcdn-superseded=true` (when a newer version of the original becomes current) and they are
    at least this many days old.

    S3 counts lifecycle days from when an object was written, not from when it was tagged: a
    derivative rendered this long ago goes at the next lifecycle run after it is superseded, a
    younger one when it reaches this age. Until then old versioned URLs are plain S3 hits; after,
    a miss on one gets 404 from S3 and the fallback re-renders it for as long as that version
    of the original still exists (edge caches keep serving what they hold until its TTL).
    """
    originals_noncurrent_days: int | None = Field(default=None, ge=1)
    """Noncurrent versions of originals; None keeps them (a takedown deletes all versions)."""

    @field_validator("log_days")
    @classmethod
    def _check_log_days(cls, value: int) -> int:
        if value not in _LOG_RETENTION_DAYS:
            msg = f"must be one of CloudWatch Logs' retention periods {list(_LOG_RETENTION_DAYS)}"
            raise ValueError(msg)
        return value


class TakedownConfig(BaseModel):
    """The takedown queue (+ DLQ), the worker that erases one image per message, its audit bucket.

    Requests arrive on the queue (`imgcdn takedown --submit`, or `aws sqs send-message`); each is
    one erasure (R10): originals and derivatives deleted, wildcard invalidations issued, an audit
    record written to a bucket that refuses deletes.
    """

    model_config = _Strict

    enabled: bool = True
    """Deploy the queue, the worker, the audit bucket and the DLQ alarm."""
    audit_retention_days: int = Field(default=2557, ge=1, le=36500)
    """Days each audit record is locked (S3 Object Lock, governance mode), then expired.

    7 years (2557 days, as CloudWatch Logs counts them) by default: an erasure may be questioned
    by a regulator or in court for years after it ran, and the common civil limitation periods
    (3 to 6 years, counted from the end of a year) end inside it. S3 allows at most 100 years.
    """
    reserved_concurrency: int = Field(default=2, ge=2, le=15)
    """Takedowns running at once (also the queue's event-source maximum concurrency).

    CloudFront keeps at most 15 wildcard invalidation paths in progress per distribution and
    each takedown issues several, so more workers would only throttle one another; SQS event
    sources start at least 2.
    """


class QuotaConfig(BaseModel):
    """The account's adjustable AWS quotas that the tenant list is checked against."""

    model_config = _Strict

    cache_behaviors_per_distribution: int = Field(
        default=CLOUDFRONT_CACHE_BEHAVIORS_QUOTA, ge=1, le=1000
    )
    """CloudFront's "cache behaviors per distribution" (75 unless you had it raised)."""


class ProbesConfig(BaseModel):
    """The probe monitor: a Lambda over the buckets' S3 access logs, and its two alarms.

    Direct requests are the ones that came neither through CloudFront (OAC) nor from the stack's
    own roles: browsers with expired pre-signed URLs, scanners, probes. Each alarm counts over
    5 minutes of log objects *delivered* (S3 delivers access logs late, typically within an
    hour), not of requests made.
    """

    model_config = _Strict

    enabled: bool = True
    direct_requests_threshold: int = Field(default=10, ge=0)
    """Alarm when more than this many direct requests are logged in 5 minutes."""
    flagged_threshold: int = Field(default=0, ge=0)
    """Alarm when more than this many requests with a probe-like key (path traversal, encoded
    separators, control characters) are logged in 5 minutes."""
    memory_mb: int = Field(default=512, ge=128, le=10240)
    timeout_seconds: int = Field(default=120, ge=10, le=900)
    reserved_concurrency: int | None = Field(default=None, ge=1, le=1000)
    """Caps concurrent log scans; None: unreserved."""


def _iam_policy_chars(tenant_names: tuple[str, ...], prefixes: tuple[str, ...]) -> int:
    """An upper bound of the largest Lambda role's inline policy, in IAM's non-blank characters.

    Every S3 name is taken at its longest (63 characters); `tests/infra` holds the bound to the
    synthesized policies.
    """
    size = _POLICY_FIXED_CHARS
    for tenant in tenant_names:
        for cls in prefixes:
            prefix = len(f"{cls}/{tenant}/")
            size += _POLICY_OBJECT_ARNS * (
                _OBJECT_ARN_CHARS + prefix
            ) + _POLICY_PREFIX_CONDITIONS * (_PREFIX_CONDITION_CHARS + prefix)
    return size


class InfraConfig(BaseModel):
    """Everything a deployment may choose; defaults make a working, private-by-default stack."""

    model_config = _Strict

    stack_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,100}$")] = (
        "Imgcdn"
    )
    account: Annotated[str, StringConstraints(pattern=r"^\d{12}$")] | None = None
    """Target account; None: the CLI's (`CDK_DEFAULT_ACCOUNT`), or environment-agnostic."""
    region: Region | None = None
    """Target Region; None: the CLI's (`CDK_DEFAULT_REGION`), or environment-agnostic."""
    tenants: tuple[TenantConfig, ...] = Field(min_length=1)
    """Tenants whose prefixes the Lambdas may touch (IAM is scoped per tenant, R17)."""
    cors_origins: tuple[str, ...] = ("*",)
    """`Access-Control-Allow-Origin` values: `*` or `https://host[:port]`; empty: no CORS."""
    architecture: Literal["arm64", "x86_64"] = "arm64"
    """Lambda architecture; the assets must be built for it (`build-assets.sh --arch`)."""
    origin_shield_region: Region | None = None
    """Origin Shield's Region; None: AWS's recommendation for `region`."""
    price_class: Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"] = "PriceClass_All"
    precompute: PrecomputeConfig = PrecomputeConfig()
    fallback: FallbackConfig = FallbackConfig()
    waf: WafConfig = WafConfig()
    domain: DomainConfig | None = None
    alarms: AlarmConfig = AlarmConfig()
    verify: VerifyConfig = VerifyConfig()
    backfill: BackfillConfig = BackfillConfig()
    retention: RetentionConfig = RetentionConfig()
    quotas: QuotaConfig = QuotaConfig()
    replication: ReplicationConfig | None = None
    """Replicate originals to a bucket in another Region (opt-in); see docs/deploy.md."""
    takedown: TakedownConfig = TakedownConfig()
    probes: ProbesConfig = ProbesConfig()

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not _ORIGIN.match(origin):
                msg = f"{origin!r} is not '*' or an origin like https://example.com[:port]"
                raise ValueError(msg)
        if "*" in value and len(value) > 1:
            msg = "'*' already allows every origin; list either '*' or explicit origins"
            raise ValueError(msg)
        return value

    @field_validator("tenants")
    @classmethod
    def _unique_tenants(cls, value: tuple[TenantConfig, ...]) -> tuple[TenantConfig, ...]:
        names = [t.name for t in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            msg = f"tenant names must be unique; repeated: {duplicates}"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _check_quotas(self) -> Self:
        signed = [t.name for t in self.tenants if t.signed_urls]
        # Two per signed tenant, the class-wide takedown behaviour, and the default one.
        behaviors = 2 * len(signed) + 2
        quota = self.quotas.cache_behaviors_per_distribution
        if behaviors > quota:
            msg = (
                f"tenants: {len(signed)} tenants with signed_urls need {behaviors} cache "
                f"behaviours (2 each, plus 2), over CloudFront's quota of {quota} per "
                f"distribution; at most {(quota - 2) // 2} tenants may sign URLs (or raise the "
                "quota with AWS and set quotas.cache_behaviors_per_distribution)"
            )
            raise ValueError(msg)
        names = tuple(t.name for t in self.tenants)
        chars = _iam_policy_chars(names, self.prefixes)
        if chars > IAM_INLINE_POLICY_CHARS:
            msg = (
                f"tenants: {len(names)} tenants make the Lambda roles' inline policy up to "
                f"{chars} characters, over IAM's limit of {IAM_INLINE_POLICY_CHARS} per role "
                "(not adjustable); use fewer tenants (or shorter tenant names) per deployment"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _check_concurrency(self) -> Self:
        reserved = self.precompute.reserved_concurrency
        queue = self.precompute.event_source_max_concurrency
        if reserved is None:
            return self
        backfill = self.backfill.max_concurrency
        if queue is None and reserved - backfill < _EVENT_SOURCE_MIN_CONCURRENCY:
            msg = (
                f"precompute.reserved_concurrency: {reserved} leaves no room for the upload "
                f"queue once backfill.max_concurrency ({backfill}) is taken; the queue's event "
                "source needs at least 2. Raise precompute.reserved_concurrency to at least "
                f"{backfill + 2}, lower backfill.max_concurrency, or set "
                "precompute.event_source_max_concurrency below precompute.reserved_concurrency"
            )
            raise ValueError(msg)
        if queue is not None and queue >= reserved:
            msg = (
                f"precompute.event_source_max_concurrency: {queue} must be less than "
                f"precompute.reserved_concurrency ({reserved}), so that the backfill keeps "
                "reserved_concurrency - event_source_max_concurrency for itself and never "
                "throttles the upload queue"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _check_features(self) -> Self:
        for index, tenant in enumerate(self.tenants):
            if tenant.referers and not self.waf.enabled:
                msg = (
                    f"tenants.{index}.referers: the referer allowlist is a WAF rule; "
                    "set waf.enabled=true or remove the referers"
                )
                raise ValueError(msg)
        unknown = self.region is not None and self.region not in ORIGIN_SHIELD_FOR_REGION
        if self.origin_shield_region is None and unknown:
            msg = (
                f"origin_shield_region: no recommended Origin Shield Region is known for "
                f"{self.region}; set origin_shield_region to the Origin Shield Region "
                "nearest to it"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _check_resilience(self) -> Self:
        timeout_ms = self.fallback.timeout_seconds * 1000
        p99 = self.alarms.fallback_p99_ms
        if p99 is not None and p99 >= timeout_ms:
            msg = (
                f"alarms.fallback_p99_ms: {p99} ms can never be passed: the fallback stops at "
                f"fallback.timeout_seconds ({timeout_ms} ms); choose less than {timeout_ms}"
            )
            raise ValueError(msg)
        if self.replication is not None and self.replication.region == self.region:
            msg = (
                f"replication.region: {self.replication.region} is the deployment's own Region; "
                "a replica must be in another Region to survive the loss of this one"
            )
            raise ValueError(msg)
        return self

    @property
    def fallback_p99_threshold_ms(self) -> int:
        """The fallback duration alarm's threshold: the configured one, else 80 % of the timeout."""
        configured = self.alarms.fallback_p99_ms
        return configured or self.fallback.timeout_seconds * 800

    @property
    def backlog_age_threshold_seconds(self) -> int:
        """The backlog age alarm's threshold: the configured one, else a visibility timeout."""
        configured = self.alarms.backlog_age_seconds
        return configured or self.precompute.visibility_timeout_seconds

    @property
    def queue_concurrency(self) -> int | None:
        """The upload queue's event-source max concurrency; None: uncapped (no reservation)."""
        settings = self.precompute
        if settings.event_source_max_concurrency is not None:
            return settings.event_source_max_concurrency
        if settings.reserved_concurrency is None:
            return None
        return settings.reserved_concurrency - self.backfill.max_concurrency

    @property
    def backfill_concurrency(self) -> int:
        """The Distributed Map's MaxConcurrency: never more than the reservation leaves it."""
        reserved, queue = self.precompute.reserved_concurrency, self.queue_concurrency
        if reserved is None or queue is None:
            return self.backfill.max_concurrency
        return min(self.backfill.max_concurrency, reserved - queue)

    @property
    def prefixes(self) -> tuple[str, str]:
        """The two content-class prefixes: standard and takedown-eligible."""
        return (STANDARD_PREFIX, TAKEDOWN_PREFIX)

    @property
    def tenant_prefixes(self) -> tuple[str, ...]:
        """`{class}/{tenant}/` for every class and tenant: the only keys the Lambdas may touch."""
        return tuple(f"{p}/{t.name}/" for t in self.tenants for p in self.prefixes)

    def resolved_origin_shield_region(self, stack_region: str | None) -> str:
        """The Origin Shield Region: the configured one, else AWS's pick for the stack's Region.

        Raises:
            ConfigError: Neither is known (an environment-agnostic synth without the key).
        """
        if self.origin_shield_region is not None:
            return self.origin_shield_region
        region = self.region or stack_region
        if region is None:
            msg = (
                "origin_shield_region: required when the target Region is unknown (cdk.json "
                "sets none); set the environment variable AWS_REGION (or CDK_DEFAULT_REGION / "
                "AWS_DEFAULT_REGION), or -c imgcdn:region=<region>, or "
                "-c imgcdn:origin_shield_region=<region>"
            )
            raise ConfigError(msg)
        return origin_shield_region_for(region)


def origin_shield_region_for(region: str) -> str:
    """AWS's recommended Origin Shield Region for an origin in `region`.

    Raises:
        ConfigError: The Region is not in the known table.
    """
    try:
        return ORIGIN_SHIELD_FOR_REGION[region]
    except KeyError:
        msg = (
            f"origin_shield_region: no recommended Origin Shield Region is known for {region}; "
            "set origin_shield_region to the Origin Shield Region nearest to it"
        )
        raise ConfigError(msg) from None


def _parse_value(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _set_path(target: dict[str, Any], path: list[str], value: Any, key: str) -> None:
    node: Any = target
    for part in path[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            msg = f"{key}: cannot set {'.'.join(path)}; {part!r} is not an object"
            raise ConfigError(msg)
        child = node.get(part)
        if not isinstance(child, dict | list):
            child = {}
            node[part] = child
        node = child
    last = path[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        msg = f"{key}: cannot set {'.'.join(path)}"
        raise ConfigError(msg)


def _merged(context: Mapping[str, Any]) -> dict[str, Any]:
    base = _parse_value(context.get(CONTEXT_KEY, {}))
    if not isinstance(base, dict):
        msg = f"{CONTEXT_KEY}: must be a JSON object; got {type(base).__name__}"
        raise ConfigError(msg)
    merged: dict[str, Any] = json.loads(json.dumps(base))  # a deep copy that flat keys may edit
    for key in sorted(k for k in context if k.startswith(CONTEXT_KEY + ":")):
        path = key[len(CONTEXT_KEY) + 1 :].split(".")
        if not all(path):
            msg = f"{key}: not a dotted path (expected {CONTEXT_KEY}:<field>[.<field>...])"
            raise ConfigError(msg)
        _set_path(merged, path, _parse_value(context[key]), key)
    return merged


def _describe(error: ValidationError) -> str:
    errors = error.errors()
    # An invalid item also empties its list for the length check: report only the item.
    failed_lists = {item["loc"][:-2] for item in errors if len(item["loc"]) >= 2}
    lines = []
    for item in errors:
        if item["type"] == "too_short" and item["loc"][:-1] in failed_lists:
            continue
        where = ".".join(str(part) for part in (CONTEXT_KEY, *item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        given = item.get("input")
        shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
        lines.append(f"{where}: {message}{shown}")
    return "invalid imgcdn configuration:\n  " + "\n  ".join(lines)


def load_config(context: Mapping[str, Any]) -> InfraConfig:
    """Build the config from CDK context values.

    Args:
        context: The context (`{"imgcdn": {...}, "imgcdn:precompute.memory_mb": "4096"}`).

    Returns:
        The validated config.

    Raises:
        ConfigError: A value is missing or wrong; the message names every bad key.
    """
    try:
        return InfraConfig.model_validate(_merged(context))
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
