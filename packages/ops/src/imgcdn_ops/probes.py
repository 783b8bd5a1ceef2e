"""The probe monitor Lambda: scan each new S3 server access log object, publish what came direct.

The originals and derivatives buckets deliver their server access logs to the log bucket under
`s3/originals/` and `s3/derivatives/`; an `ObjectCreated` notification on `s3/` invokes
`handler` (asynchronously: a raised error is retried by Lambda). For each log object it reads
the object, parses every line (`imgcdn_ops.accesslogs`), and writes:

- one EMF line per bucket the log is about (dimension `Bucket`), namespace `imgcdn`:
  `DirectRequests` (requests that came neither through CloudFront nor from the stack's own
  roles), `DirectErrors` (those answered 4xx/5xx: expired pre-signed URLs, probes that S3
  refused) and `FlaggedKeys` (requests whose key or path looks like a probe: traversal,
  encoded separators, control characters; any source); zeros included, so the alarms always
  have data;
- one EMF line without dimensions: `LogObjects` (1) and `UnparsedLines`;
- a JSON log line `probe_flagged` per flagged request, and `log_object_scanned` per object
  with its counts and the top direct keys and sources.

Environment (resolved once per process):

- `IMGCDN_PROBES_ACCOUNTS` (optional): comma-separated account ids whose IAM principals are the
  stack's own (the CDK app sets the stack's account); unset: every IAM principal that signs
  with a header counts as internal.
- `IMGCDN_S3_ENDPOINT` (optional): an S3-compatible endpoint URL (moto); AWS itself when unset.

Object keys in S3 notifications are URL-encoded the way HTML forms are (`+` is a space).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote_plus

import structlog

from imgcdn_aws.config import ConfigError, parse_endpoint
from imgcdn_aws.emf import Metrics, Unit
from imgcdn_aws.logs import configure_logging
from imgcdn_ops.accesslogs import Classifier, ScanSummary, decode_log_bytes, scan_lines
from imgcore import InputTooLarge
from imgcore.storage import NotFound, StoredObject

__all__ = [
    "ACCOUNTS_ENV",
    "MAX_LOG_OBJECT_BYTES",
    "ObjectReader",
    "ProbeEventError",
    "ProbeMonitor",
    "ProbeSettings",
    "handler",
    "monitor",
    "parse_event",
]

ACCOUNTS_ENV = "IMGCDN_PROBES_ACCOUNTS"
S3_ENDPOINT_ENV = "IMGCDN_S3_ENDPOINT"
MAX_LOG_OBJECT_BYTES = 64 * 1024 * 1024
"""S3 delivers access logs in objects of kilobytes to a few megabytes; anything far larger is
not a log object and is reported, not read."""
TOP = 5
"""Direct keys and sources named in each object's log line."""
_ACCOUNT = re.compile(r"\d{12}")

log = structlog.get_logger("imgcdn.probes")


class ProbeEventError(ValueError):
    """The event is not an S3 notification."""


class ObjectReader(Protocol):
    """Reads one whole object (the `get` of `imgcore.storage.ObjectStore`)."""

    def get(
        self, key: str, *, max_bytes: int | None = None, version_id: str | None = None
    ) -> StoredObject:
        """The object's bytes; raises `NotFound`, `InputTooLarge` or `StorageFault`."""
        ...


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """The monitor's configuration (see the module docstring)."""

    accounts: frozenset[str] = frozenset()
    s3_endpoint: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProbeSettings:
        """Resolve the settings from the environment.

        Raises:
            ConfigError: A variable is invalid; the message names it.
        """
        env = os.environ if environ is None else environ
        accounts = frozenset(a.strip() for a in env.get(ACCOUNTS_ENV, "").split(",") if a.strip())
        bad = sorted(a for a in accounts if not _ACCOUNT.fullmatch(a))
        if bad:
            msg = f"{ACCOUNTS_ENV} holds {bad}; allowed: 12-digit AWS account ids, comma-separated"
            raise ConfigError(msg)
        endpoint = env.get(S3_ENDPOINT_ENV, "").strip()
        return cls(
            accounts=accounts,
            s3_endpoint=parse_endpoint(endpoint, S3_ENDPOINT_ENV) if endpoint else None,
        )


def parse_event(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (bucket, decoded key) of each created object in an S3 notification.

    Records of other events are skipped; an `s3:TestEvent` has none.

    Raises:
        ProbeEventError: The event is not an S3 notification.
    """
    if isinstance(event, Mapping) and event.get("Event") == "s3:TestEvent":
        return []
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list) or not records:
        msg = "event has no Records; expected an S3 ObjectCreated notification"
        raise ProbeEventError(msg)
    found = []
    for record in records:
        try:
            name = str(record["eventName"])
            bucket = record["s3"]["bucket"]["name"]
            raw_key = record["s3"]["object"]["key"]
        except (KeyError, TypeError) as exc:
            msg = f"S3 record lacks {exc}; expected eventName, s3.bucket.name and s3.object.key"
            raise ProbeEventError(msg) from None
        if not name.removeprefix("s3:").startswith("ObjectCreated:"):
            continue
        if not isinstance(bucket, str) or not isinstance(raw_key, str) or not raw_key:
            msg = f"S3 record names bucket {bucket!r} and key {raw_key!r}; expected strings"
            raise ProbeEventError(msg)
        found.append((bucket, unquote_plus(raw_key, errors="replace")))
    return found


class ProbeMonitor:
    """Scans log objects and reports direct and flagged requests as metrics and logs."""

    def __init__(
        self,
        reader: Callable[[str], ObjectReader],
        *,
        metrics: Metrics,
        classifier: Classifier,
    ) -> None:
        """Read objects through `reader(bucket)`, write EMF to `metrics`.

        Args:
            reader: A store for a bucket name (the log bucket in practice).
            metrics: Where EMF lines go.
            classifier: Who-made-it rules.
        """
        self._reader = reader
        self._metrics = metrics
        self._classifier = classifier

    def scan_object(self, bucket: str, key: str) -> ScanSummary | None:
        """Scan one log object and publish its metrics; None if it could not be read.

        Raises:
            StorageFault: S3 failed in a way a retry may cure (Lambda retries the event).
        """
        where = f"s3://{bucket}/{key}"
        try:
            stored = self._reader(bucket).get(key, max_bytes=MAX_LOG_OBJECT_BYTES)
            text = decode_log_bytes(stored.data)
        except NotFound:
            log.warning("log_object_gone", object=where)
            return None
        except (InputTooLarge, OSError) as exc:
            log.error("log_object_unreadable", object=where, error=str(exc))
            self._metrics.emit({"UnreadableLogObjects": (1, Unit.COUNT)})
            return None
        summary = scan_lines(text.splitlines(), where=where, classifier=self._classifier)
        self._publish(summary)
        for flagged in summary.flagged:
            log.warning("probe_flagged", **flagged.as_dict())
        for error in summary.errors[:TOP]:
            log.warning("log_line_unparsed", **error)
        log.info(
            "log_object_scanned",
            object=where,
            lines=summary.lines,
            records=summary.records,
            unparsed=summary.error_count,
            by_source={str(k): v for k, v in summary.by_source.items()},
            direct=summary.direct,
            direct_errors=summary.direct_errors,
            direct_by_status=dict(summary.direct_by_status),
            top_direct_keys=summary.direct_keys.most_common(TOP),
            top_direct_sources=summary.direct_sources.most_common(TOP),
            flagged=summary.flagged_count,
        )
        return summary

    def _publish(self, summary: ScanSummary) -> None:
        for bucket in summary.buckets():
            self._metrics.emit(
                {
                    "DirectRequests": (summary.direct_by_bucket[bucket], Unit.COUNT),
                    "DirectErrors": (summary.direct_errors_by_bucket[bucket], Unit.COUNT),
                    "FlaggedKeys": (summary.flagged_by_bucket[bucket], Unit.COUNT),
                },
                dimensions={"Bucket": bucket},
            )
        self._metrics.emit(
            {"LogObjects": (1, Unit.COUNT), "UnparsedLines": (summary.error_count, Unit.COUNT)}
        )


@functools.cache
def monitor() -> ProbeMonitor:
    """The process-wide monitor, built from the environment on first use."""
    from imgcdn_aws.s3 import S3Store  # noqa: PLC0415 - boto3 loads once, in the Lambda only

    settings = ProbeSettings.from_env()
    configure_logging(json=True)

    @functools.cache
    def reader(bucket: str) -> ObjectReader:
        return S3Store(bucket, endpoint_url=settings.s3_endpoint)

    return ProbeMonitor(
        reader, metrics=Metrics(), classifier=Classifier(accounts=settings.accounts)
    )


def handler(event: Mapping[str, Any], context: Any) -> dict[str, int]:
    """Scan the log objects an S3 notification names (see the module docstring).

    Returns:
        Counts for the invocation: objects scanned, direct and flagged requests.

    Raises:
        ProbeEventError: The event is not an S3 notification.
        StorageFault: A log object could not be read for a reason a retry may cure.
    """
    scanner = monitor()
    request_id = getattr(context, "aws_request_id", None)
    totals = {"objects": 0, "direct": 0, "flagged": 0, "unparsed": 0}
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        for bucket, key in parse_event(event):
            with structlog.contextvars.bound_contextvars(key=key):
                summary = scanner.scan_object(bucket, key)
            if summary is None:
                continue
            totals["objects"] += 1
            totals["direct"] += summary.direct
            totals["flagged"] += summary.flagged_count
            totals["unparsed"] += summary.error_count
    return totals


if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:  # pragma: no cover - the Lambda init phase
    monitor()
