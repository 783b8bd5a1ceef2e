"""S3 server access logs: a parser of the format, who made each request, what looks like a probe.

The format (Amazon S3 User Guide, "Amazon S3 server access log format"): one request per line,
space-separated fields in a fixed order,

    bucket-owner bucket [time] remote-ip requester request-id operation key "request-uri"
    http-status error-code bytes-sent object-size total-time turn-around-time "referer"
    "user-agent" version-id host-id signature-version cipher-suite authentication-type
    host-header tls-version access-point-arn acl-required ...

where any field may be `-` (unknown, absent or not applicable), the time is bracketed
(`[06/Feb/2019:00:00:38 +0000]`), the request URI, referer and user agent are quoted (and may
hold spaces and escaped quotes), and the key is URL-encoded. AWS appends new fields at the end
from time to time and says parsers must tolerate trailing fields they do not know: they are
kept in `AccessLogRecord.extra`. Older logs stop earlier: every field after the user agent is
optional. A line that does not parse is counted and reported with its reason, never raised.

Who made a request (`Source`), relying on what S3 writes for each caller:

- CloudFront through origin access control (OAC) signs its origin requests as the CloudFront
  service principal; S3 logs them with the requester `svc:cloudfront.amazonaws.com` (and a
  remote IP and user agent of `-`). That requester is the only thing trusted: a `User-Agent:
  Amazon CloudFront` is what CloudFront sends through the older origin access identity or to a
  public bucket, and anyone can send it, so it never makes a request CloudFront's.
- The stack's own Lambdas (precompute, the fallback, operations) call S3 with their execution
  roles, signed in the `Authorization` header: the requester is an assumed-role ARN
  (`arn:aws:sts::<account>:assumed-role/<role>/<session>`). Operations S3 performs itself
  (lifecycle expirations, log delivery) are logged as `S3.<action>.<type>`. Both are expected.
  When the deployment's account ids are given, an IAM principal of another account is not.
  The bucket owner's own canonical id (the console) is internal too.
- Everything else is direct: anonymous requests (requester `-`), pre-signed URLs (authentication
  type `QueryString`, whoever signed them: the buckets serve viewers only through CloudFront),
  and principals of other accounts.

What is flagged (`Flag`), in the logged key and in the path of the request URI, decoded up to
twice so that double encoding cannot hide it: a `..` segment (path traversal, also `%2e%2e`),
an encoded separator (`%2F`, `%5C`, or a double-encoded `%252F`, `%255C`, `%252E`), a
backslash, and control characters (`%00`-`%1F`, `%7F`).
"""

from __future__ import annotations

import gzip
import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

__all__ = [
    "CLOUDFRONT_REQUESTER",
    "FIELDS",
    "AccessLogRecord",
    "Classifier",
    "Flag",
    "FlaggedLine",
    "ParseError",
    "ScanSummary",
    "Source",
    "decode_log_bytes",
    "flags",
    "parse_line",
    "scan_lines",
]

CLOUDFRONT_REQUESTER = "svc:cloudfront.amazonaws.com"
"""The requester S3 logs for CloudFront's origin-access-control requests."""

FIELDS: tuple[str, ...] = (
    "bucket_owner",
    "bucket",
    "time",
    "remote_ip",
    "requester",
    "request_id",
    "operation",
    "key",
    "request_uri",
    "http_status",
    "error_code",
    "bytes_sent",
    "object_size",
    "total_time_ms",
    "turn_around_time_ms",
    "referer",
    "user_agent",
    "version_id",
    "host_id",
    "signature_version",
    "cipher_suite",
    "authentication_type",
    "host_header",
    "tls_version",
    "access_point_arn",
    "acl_required",
)
"""The documented fields, in log order."""
_QUOTED = r'("(?:.*?)"|-)'
_LINE = re.compile(
    # owner, bucket, [time], remote IP, requester, request id, operation, key
    r"(\S+) (\S+) \[([^\]]*)\] (\S+) (\S+) (\S+) (\S+) (\S+) "
    # "request-URI" (lazy: it ends at the first quote the six bare fields after it allow)
    + _QUOTED
    # status, error code, bytes sent, object size, total time, turn-around time
    + r" (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) "
    # "referer", then "user-agent" (greedy: it ends at the last quote, since every field
    # after it is bare), then the optional trailing fields: the oldest documented format
    # ends with the user agent, newer ones append bare fields
    + _QUOTED
    + r' ("(?:.*)"|-)(?: ([^"]*))?'
)
_ESCAPE = re.compile(r'\\(["\\])')
MAX_LINE_CHARS = 65_536
"""Longer lines are refused unparsed (S3 lines are a few hundred characters; the request URI is
bounded by S3's 8 KB request line)."""
_TYPED = frozenset(
    {"time", "http_status", "bytes_sent", "object_size", "total_time_ms", "turn_around_time_ms"}
)
_TIME_FORMAT = "%d/%b/%Y:%H:%M:%S %z"
_STATUS = re.compile(r"\d{3}")
_IAM_PRINCIPAL = re.compile(r"arn:aws[a-z-]*:(?:sts|iam)::(\d{12}):")
_ENCODED_SEPARATOR = re.compile(r"%(?:25)*(?:2f|5c)", re.IGNORECASE)
_DOUBLE_ENCODED = re.compile(r"%25(?:25)*(?:2f|5c|2e)", re.IGNORECASE)
MAX_KEPT = 1000
"""Flagged lines and parse errors kept in a summary (all of them are counted)."""


class ParseError(ValueError):
    """A log line is not in the S3 server access log format; the message says where."""


class Source(StrEnum):
    """Who made a request (see the module docstring for what each relies on)."""

    CLOUDFRONT = "cloudfront"
    INTERNAL = "internal"
    DIRECT = "direct"


class Flag(StrEnum):
    """Why a request looks like a probe."""

    PATH_TRAVERSAL = "path-traversal"
    ENCODED_SEPARATOR = "encoded-separator"
    DOUBLE_ENCODING = "double-encoding"
    BACKSLASH = "backslash"
    CONTROL_CHARACTER = "control-character"


@dataclass(frozen=True, slots=True)
class AccessLogRecord:
    """One request, as S3 logged it; `None` wherever the log has `-` or stops early.

    Attributes:
        key: The object key as logged (URL-encoded); see `decoded_key`.
        request_uri: The request line, e.g. `GET /bucket/key?x=1 HTTP/1.1`.
        extra: Trailing fields newer than this parser, in order.
    """

    bucket_owner: str | None
    bucket: str | None
    time: datetime
    remote_ip: str | None
    requester: str | None
    request_id: str | None
    operation: str | None
    key: str | None
    request_uri: str | None
    http_status: int | None
    error_code: str | None
    bytes_sent: int | None
    object_size: int | None
    total_time_ms: int | None
    turn_around_time_ms: int | None
    referer: str | None
    user_agent: str | None
    version_id: str | None = None
    host_id: str | None = None
    signature_version: str | None = None
    cipher_suite: str | None = None
    authentication_type: str | None = None
    host_header: str | None = None
    tls_version: str | None = None
    access_point_arn: str | None = None
    acl_required: str | None = None
    extra: tuple[str, ...] = ()

    @property
    def decoded_key(self) -> str | None:
        """The key decoded once (`%XX` escapes; a `+` stays a plus), or None."""
        return None if self.key is None else unquote(self.key, errors="replace")

    @property
    def uri_path(self) -> str | None:
        """The path of the request URI, still encoded as sent, without the query."""
        if self.request_uri is None:
            return None
        parts = self.request_uri.split(" ")
        target = parts[1] if len(parts) >= 2 else parts[0]
        return target.split("?", 1)[0]

    @property
    def presigned(self) -> bool:
        """Whether the request was authenticated by a query string (a pre-signed URL)."""
        if self.authentication_type == "QueryString":
            return True
        # Older lines have no authentication type: SigV4 (`X-Amz-Signature=`) and SigV2
        # (`Signature=`) pre-signed URLs both carry the signature in the query.
        query = (self.request_uri or "").split(" ")[1:2]
        return bool(query) and "Signature=" in query[0].partition("?")[2]


def _unquote_field(value: str) -> str:
    """A quoted field's text: the quotes removed, `\\"` and `\\\\` unescaped; `-` stays bare."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return _ESCAPE.sub(r"\1", value[1:-1])
    return value


def _diagnose(line: str) -> str:
    """Why a line that does not match the layout does not (for the report)."""
    if len(line) > MAX_LINE_CHARS:
        return f"the line is {len(line):,} characters; allowed: at most {MAX_LINE_CHARS:,}"
    if "[" in line and "]" not in line[line.index("[") :]:
        return "unterminated [time] field; the line is cut short"
    quotes = len(re.findall(r'(?<!\\)"', line))
    if quotes % 2:
        return "unterminated quoted field; the line is cut short"
    if quotes < 6:
        return (
            f"{quotes // 2} of the 3 quoted fields (request URI, referer, user agent); the line "
            "is cut short or is not an S3 server access log line"
        )
    return (
        "the fields do not follow the S3 server access log layout (owner bucket [time] IP "
        'requester request-id operation key "request-URI" status error bytes size time '
        'turn-around "referer" "user-agent" ...)'
    )


def _optional(value: str) -> str | None:
    return None if value == "-" else value


def _number(value: str, name: str) -> int | None:
    if value == "-":
        return None
    if not value.isdigit():
        msg = f"{name} is {value!r}; expected a whole number or '-'"
        raise ParseError(msg)
    return int(value)


def parse_line(line: str) -> AccessLogRecord:
    """Parse one log line.

    Args:
        line: One line of an S3 server access log, with or without its newline.

    Returns:
        The record; trailing fields newer than `FIELDS` are kept in `extra`.

    Raises:
        ParseError: The line is cut short, has an unterminated quote or bracket, or a field
            does not hold what the format says (time, status, IP address, numbers).
    """
    text_line = line.rstrip("\r\n")
    match = _LINE.fullmatch(text_line) if len(text_line) <= MAX_LINE_CHARS else None
    if match is None:
        raise ParseError(_diagnose(text_line))
    *head, tail = match.groups()
    raw = [_unquote_field(value) for value in head] + (tail.split(" ") if tail else [])
    named = dict(zip(FIELDS, raw, strict=False))
    try:
        time = datetime.strptime(named["time"], _TIME_FORMAT)
    except ValueError:
        msg = f"time is {named['time']!r}; expected [dd/Mon/yyyy:HH:MM:SS +zzzz]"
        raise ParseError(msg) from None
    remote_ip = _optional(named["remote_ip"])
    if remote_ip is not None:
        try:
            ipaddress.ip_address(remote_ip)
        except ValueError:
            msg = f"remote IP is {remote_ip!r}; expected an IPv4 or IPv6 address or '-'"
            raise ParseError(msg) from None
    status = named["http_status"]
    if status != "-" and not _STATUS.fullmatch(status):
        msg = f"HTTP status is {status!r}; expected three digits or '-'"
        raise ParseError(msg)
    text: dict[str, Any] = {
        name: _optional(value) for name, value in named.items() if name not in _TYPED
    }
    return AccessLogRecord(
        **text,
        time=time,
        http_status=None if status == "-" else int(status),
        bytes_sent=_number(named["bytes_sent"], "bytes sent"),
        object_size=_number(named["object_size"], "object size"),
        total_time_ms=_number(named["total_time_ms"], "total time"),
        turn_around_time_ms=_number(named["turn_around_time_ms"], "turn-around time"),
        extra=tuple(raw[len(FIELDS) :]),
    )


def _decodings(value: str) -> list[str]:
    """`value` as given, decoded once, and decoded twice (without duplicates)."""
    once = unquote(value, errors="replace")
    twice = unquote(once, errors="replace")
    return list(dict.fromkeys((value, once, twice)))


def flags(record: AccessLogRecord) -> tuple[Flag, ...]:
    """Why the request's key or URI path looks like a probe (empty: nothing found)."""
    found: set[Flag] = set()
    for raw in (record.key, record.uri_path):
        if not raw:
            continue
        if _ENCODED_SEPARATOR.search(raw):
            found.add(Flag.ENCODED_SEPARATOR)
        if _DOUBLE_ENCODED.search(raw):
            found.add(Flag.DOUBLE_ENCODING)
        for text in _decodings(raw):
            if ".." in re.split(r"[/\\]", text):
                found.add(Flag.PATH_TRAVERSAL)
            if "\\" in text:
                found.add(Flag.BACKSLASH)
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
                found.add(Flag.CONTROL_CHARACTER)
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class Classifier:
    """Decides who made a request (see the module docstring).

    Attributes:
        accounts: The deployment's AWS account ids; an IAM principal of any other account is
            direct. Empty: every IAM principal signing with a header counts as internal.
    """

    accounts: frozenset[str] = frozenset()

    def source(self, record: AccessLogRecord) -> Source:
        """The `Source` of one request."""
        if record.requester == CLOUDFRONT_REQUESTER:
            return Source.CLOUDFRONT
        return Source.INTERNAL if self._internal(record) else Source.DIRECT

    def _internal(self, record: AccessLogRecord) -> bool:
        if record.operation is not None and record.operation.startswith("S3."):
            return True  # S3's own lifecycle and log-delivery actions
        requester = record.requester
        if requester is None or record.presigned:
            return False
        if requester == record.bucket_owner:
            return True  # the account owner's canonical id (the console, root credentials)
        # Anything else that is not an IAM ARN (another canonical id, another service
        # principal) is not one of the stack's roles.
        principal = _IAM_PRINCIPAL.match(requester)
        return principal is not None and (not self.accounts or principal[1] in self.accounts)


@dataclass(frozen=True, slots=True)
class FlaggedLine:
    """A request with flags, and where it was found."""

    where: str
    line: int
    reasons: tuple[Flag, ...]
    source: Source
    record: AccessLogRecord

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary of the line (the key as logged: still URL-encoded)."""
        r = self.record
        return {
            "where": self.where,
            "line": self.line,
            "reasons": [str(reason) for reason in self.reasons],
            "source": str(self.source),
            "time": r.time.isoformat(),
            "bucket": r.bucket,
            "remote_ip": r.remote_ip,
            "requester": r.requester,
            "operation": r.operation,
            "key": r.key,
            "request_uri": r.request_uri,
            "http_status": r.http_status,
            "user_agent": r.user_agent,
        }


@dataclass(slots=True)
class ScanSummary:
    """What a set of log lines holds: counts per source, the direct requests, flags, errors.

    `direct_*` counters cover direct requests only (the ones the buckets should never see);
    `flagged` covers every source. At most `MAX_KEPT` flagged lines and parse errors are kept,
    all are counted.
    """

    lines: int = 0
    records: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    by_bucket: Counter[str] = field(default_factory=Counter)
    direct_by_status: Counter[str] = field(default_factory=Counter)
    direct_by_operation: Counter[str] = field(default_factory=Counter)
    direct_by_bucket: Counter[str] = field(default_factory=Counter)
    direct_errors_by_bucket: Counter[str] = field(default_factory=Counter)
    direct_keys: Counter[str] = field(default_factory=Counter)
    direct_sources: Counter[str] = field(default_factory=Counter)
    flagged_by_bucket: Counter[str] = field(default_factory=Counter)
    flagged_count: int = 0
    flagged: list[FlaggedLine] = field(default_factory=list)
    error_count: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def direct(self) -> int:
        """Direct requests seen."""
        return self.by_source[Source.DIRECT]

    @property
    def direct_errors(self) -> int:
        """Direct requests answered with a 4xx or 5xx."""
        return sum(self.direct_errors_by_bucket.values())

    def add_error(self, where: str, line: int, reason: str) -> None:
        """Count a line that did not parse (and keep the first `MAX_KEPT`)."""
        self.error_count += 1
        if len(self.errors) < MAX_KEPT:
            self.errors.append({"where": where, "line": line, "error": reason})

    def add(self, record: AccessLogRecord, source: Source, where: str, line: int) -> None:
        """Count one parsed request."""
        self.records += 1
        self.by_source[source] += 1
        bucket = record.bucket or "-"
        self.by_bucket[bucket] += 1
        if source is Source.DIRECT:
            self.direct_by_status[str(record.http_status or "-")] += 1
            self.direct_by_operation[record.operation or "-"] += 1
            self.direct_by_bucket[bucket] += 1
            if record.http_status is not None and record.http_status >= 400:
                self.direct_errors_by_bucket[bucket] += 1
            self.direct_keys[record.key or "-"] += 1
            self.direct_sources[record.remote_ip or "-"] += 1
            if record.requester is not None:
                self.direct_sources[record.requester] += 1
        reasons = flags(record)
        if reasons:
            self.flagged_count += 1
            self.flagged_by_bucket[bucket] += 1
            if len(self.flagged) < MAX_KEPT:
                self.flagged.append(FlaggedLine(where, line, reasons, source, record))

    def buckets(self) -> list[str]:
        """Every bucket the parsed lines are about, sorted."""
        return sorted(self.by_bucket)

    def as_dict(self, *, top: int = 10) -> dict[str, Any]:
        """A JSON-ready summary with the `top` keys and sources of direct requests."""
        return {
            "lines": self.lines,
            "records": self.records,
            "unparsed": self.error_count,
            "by_source": {str(s): self.by_source[s] for s in Source},
            "direct": {
                "requests": self.direct,
                "errors": self.direct_errors,
                "by_status": dict(sorted(self.direct_by_status.items())),
                "by_operation": dict(self.direct_by_operation.most_common()),
                "by_bucket": dict(sorted(self.direct_by_bucket.items())),
                "top_keys": [
                    {"key": k, "requests": n} for k, n in self.direct_keys.most_common(top)
                ],
                "top_sources": [
                    {"source": s, "requests": n} for s, n in self.direct_sources.most_common(top)
                ],
            },
            "flagged": {
                "lines": self.flagged_count,
                "by_bucket": dict(sorted(self.flagged_by_bucket.items())),
                "shown": [f.as_dict() for f in self.flagged],
            },
            "errors": list(self.errors),
        }


def decode_log_bytes(data: bytes) -> str:
    """The text of a log object or file: gunzipped when gzip, UTF-8 with bad bytes replaced.

    Raises:
        OSError: gzip data that is corrupt or cut short (`gzip.BadGzipFile`, `EOFError` as
            `OSError`).
    """
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except EOFError as exc:
            msg = f"gzip data is cut short ({exc})"
            raise gzip.BadGzipFile(msg) from None
    return data.decode("utf-8", errors="replace")


def scan_lines(
    lines: Iterable[str],
    *,
    where: str,
    summary: ScanSummary | None = None,
    classifier: Classifier | None = None,
) -> ScanSummary:
    """Parse, classify and flag every line into a summary (blank lines are skipped).

    Args:
        lines: The log's lines.
        where: The file or object the lines come from, for reports.
        summary: A summary to add to (several files), or None for a new one.
        classifier: Who-made-it rules; the default trusts every IAM principal's header auth.

    Returns:
        The summary; lines that do not parse are counted in it, never raised.
    """
    summary = ScanSummary() if summary is None else summary
    classifier = classifier or Classifier()
    for number, line in _numbered(lines):
        summary.lines += 1
        try:
            record = parse_line(line)
        except ParseError as exc:
            summary.add_error(where, number, str(exc))
            continue
        summary.add(record, classifier.source(record), where, number)
    return summary


def _numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, line
