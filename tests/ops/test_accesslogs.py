"""The S3 server access log parser, the source classification and the probe flags."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from imgcdn_ops.accesslogs import (
    FIELDS,
    Classifier,
    Flag,
    ParseError,
    Source,
    flags,
    parse_line,
    scan_lines,
)

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "accesslogs"


def _lines(name: str) -> list[str]:
    return (LOGS / name).read_text(encoding="utf-8").splitlines()


# The Amazon S3 User Guide's example log ("Amazon S3 server access log format"): the current
# format, whose lines end with a source-Region field newer than the documented field list, then
# the 2014 example of the same page, when the format ended with the version id.
*AWS_EXAMPLE, AWS_2014 = _lines("aws-example.log")
OWNER = AWS_EXAMPLE[0].split(" ")[0]
HOST_ID = "s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234="
# What S3 logs for CloudFront's origin access control (no remote IP, no user agent); a Lambda's
# assumed role writing a derivative; an anonymous traversal probe from an IPv6 address whose
# user agent holds escaped quotes.
OAC, LAMBDA, TRAVERSAL, *_ = _lines("imgcdn-derivatives.log")
# A browser still holding an expired pre-signed URL (the seed's incident).
EXPIRED_PRESIGNED, _ = _lines("imgcdn-originals.log")


def _line(**fields: str) -> str:
    """A current-format line with some fields replaced (values written as they appear)."""
    values = {
        "bucket_owner": OWNER,
        "bucket": "imgcdn-derivatives",
        "time": "[20/Nov/2026:10:15:06 +0000]",
        "remote_ip": "203.0.113.9",
        "requester": "-",
        "request_id": "1A2B3C4D5E6F7A8B",
        "operation": "REST.GET.OBJECT",
        "key": "img/acme/cat/v1/w320.webp",
        "request_uri": '"GET /img/acme/cat/v1/w320.webp HTTP/1.1"',
        "http_status": "403",
        "error_code": "AccessDenied",
        "bytes_sent": "243",
        "object_size": "-",
        "total_time_ms": "8",
        "turn_around_time_ms": "-",
        "referer": '"-"',
        "user_agent": '"Mozilla/5.0"',
        "version_id": "-",
        "host_id": HOST_ID,
        "signature_version": "-",
        "cipher_suite": "ECDHE-RSA-AES128-GCM-SHA256",
        "authentication_type": "-",
        "host_header": "imgcdn-derivatives.s3.eu-west-1.amazonaws.com",
        "tls_version": "TLSv1.2",
        "access_point_arn": "-",
        "acl_required": "-",
    }
    values.update(fields)
    return " ".join(values[name] for name in FIELDS)


def test_the_aws_example_log_parses_field_by_field() -> None:
    records = [parse_line(line) for line in AWS_EXAMPLE]
    first = records[0]
    assert first.bucket_owner == OWNER
    assert first.bucket == "amzn-s3-demo-bucket1"
    assert first.time == datetime(2019, 2, 6, 0, 0, 38, tzinfo=UTC)
    assert first.remote_ip == "192.0.2.3"
    assert first.operation == "REST.GET.VERSIONING"
    assert first.key is None
    assert first.request_uri == "GET /amzn-s3-demo-bucket1?versioning HTTP/1.1"
    assert (first.http_status, first.error_code, first.bytes_sent) == (200, None, 113)
    assert (first.object_size, first.total_time_ms, first.turn_around_time_ms) == (None, 7, None)
    assert (first.referer, first.user_agent, first.version_id) == (None, "S3Console/0.4", None)
    assert first.host_id == HOST_ID
    assert first.signature_version == "SigV4"
    assert first.authentication_type == "AuthHeader"
    assert first.tls_version == "TLSV1.2"
    assert first.access_point_arn == "arn:aws:s3:us-west-1:123456789012:accesspoint/example-AP"
    assert first.acl_required == "Yes"
    # The trailing field the documented list does not name yet is kept, not an error.
    assert first.extra == ("us-east-1",)
    assert (records[2].http_status, records[2].error_code) == (404, "NoSuchBucketPolicy")
    put = records[3]
    assert (put.key, put.bytes_sent, put.object_size) == ("s3-dg.pdf", None, 4406583)
    assert (put.total_time_ms, put.turn_around_time_ms) == (41754, 28)


def test_an_older_line_without_the_trailing_fields_parses() -> None:
    record = parse_line(AWS_2014)
    assert record.key == "s3-dg.pdf"
    assert record.version_id is None
    assert record.host_id is None
    assert record.authentication_type is None
    assert record.extra == ()


def test_a_line_with_every_field_absent_parses_to_none() -> None:
    record = parse_line(
        _line(
            **{name: "-" for name in FIELDS if name not in {"time"}},
        )
    )
    assert record.http_status is None
    assert record.remote_ip is None
    assert record.requester is None
    assert record.request_uri is None
    assert record.uri_path is None
    assert record.key is None


def test_extra_trailing_fields_are_kept_in_order() -> None:
    record = parse_line(_line() + " eu-west-1 some-future-field")
    assert record.acl_required is None
    assert record.extra == ("eu-west-1", "some-future-field")


def test_escaped_quotes_and_spaces_inside_quoted_fields() -> None:
    record = parse_line(TRAVERSAL)
    assert record.user_agent == 'curl/8.5 "probe" (scanner; +https://scan.example)'
    assert record.remote_ip == "2001:db8:85a3::8a2e:370:7334"
    assert record.host_header == "imgcdn-derivatives.s3.eu-west-1.amazonaws.com"


def test_unescaped_quotes_inside_quoted_fields_are_kept() -> None:
    record = parse_line(
        _line(
            request_uri='"GET /img/a"b.jpg HTTP/1.1"',
            referer='"https://x.example/?q="a b""',
            user_agent='"Mozilla/5.0 "compatible" bot"',
        )
    )
    assert record.request_uri == 'GET /img/a"b.jpg HTTP/1.1'
    assert record.referer == 'https://x.example/?q="a b"'
    assert record.user_agent == 'Mozilla/5.0 "compatible" bot'
    assert record.tls_version == "TLSv1.2"
    assert record.extra == ()


def test_a_backslash_that_escapes_nothing_is_kept() -> None:
    record = parse_line(_line(request_uri='"GET /img/a\\b\\.jpg HTTP/1.1"'))
    assert record.request_uri == "GET /img/a\\b\\.jpg HTTP/1.1"


def test_keys_are_kept_as_logged_and_decoded_on_request() -> None:
    record = parse_line(
        _line(
            key="img/acme/summer%20sale/caf%C3%A9+cr%C3%A8me.jpg",
            request_uri='"GET /img/acme/summer%20sale/caf%C3%A9+cr%C3%A8me.jpg HTTP/1.1"',
        )
    )
    assert record.key == "img/acme/summer%20sale/caf%C3%A9+cr%C3%A8me.jpg"
    assert record.decoded_key == "img/acme/summer sale/café+crème.jpg"
    assert flags(record) == ()


@pytest.mark.parametrize(
    ("line", "error"),
    [
        pytest.param(TRAVERSAL[:250], "unterminated quoted field", id="cut-in-request-uri"),
        pytest.param(AWS_2014.split(' "-"', maxsplit=1)[0], "1 of the 3 quoted fields", id="cut"),
        pytest.param(
            _line(time="[20/Nov/2026:10:15:06 +0000"), r"unterminated \[time\]", id="time"
        ),
        pytest.param(_line(time="[2026-11-20T10:15:06Z]"), "time is", id="time-format"),
        pytest.param(_line(http_status="OK"), "HTTP status is 'OK'", id="status"),
        pytest.param(_line(remote_ip="not-an-ip"), "remote IP is", id="ip"),
        pytest.param(_line(bytes_sent="12kB"), "bytes sent is '12kB'", id="number"),
        pytest.param(_line(user_agent='"a"b'), "do not follow the S3 server access", id="glued"),
        pytest.param(_line(key="two words"), "do not follow the S3 server access", id="shifted"),
        pytest.param("garbage", "0 of the 3 quoted fields", id="not-a-log"),
        pytest.param(_line() + " " + "x" * 70_000, "at most 65,536", id="too-long"),
    ],
)
def test_a_line_that_is_not_the_format_raises_parse_error_saying_why(line: str, error: str) -> None:
    with pytest.raises(ParseError, match=error):
        parse_line(line)


@pytest.mark.parametrize(
    ("line", "source"),
    [
        pytest.param(OAC, Source.CLOUDFRONT, id="oac"),
        pytest.param(LAMBDA, Source.INTERNAL, id="lambda-role"),
        pytest.param(AWS_EXAMPLE[0], Source.INTERNAL, id="bucket-owner-console"),
        pytest.param(EXPIRED_PRESIGNED, Source.DIRECT, id="presigned"),
        pytest.param(TRAVERSAL, Source.DIRECT, id="anonymous"),
        pytest.param(
            _line(user_agent='"Amazon CloudFront"'), Source.DIRECT, id="cloudfront-user-agent"
        ),
        pytest.param(
            _line(requester="svc:s3.amazonaws.com", operation="S3.EXPIRE.OBJECT"),
            Source.INTERNAL,
            id="lifecycle",
        ),
        pytest.param(
            _line(requester="0123456789abcdef" * 4), Source.DIRECT, id="another-canonical-user"
        ),
        pytest.param(
            _line(
                request_uri='"GET /img/a.jpg?AWSAccessKeyId=AKIA&Expires=1&Signature=abc HTTP/1.1"',
                requester="arn:aws:iam::123456789012:user/uploader",
            ),
            Source.DIRECT,
            id="sigv2-presigned-without-auth-type",
        ),
    ],
)
def test_sources(line: str, source: Source) -> None:
    assert Classifier().source(parse_line(line)) is source


def test_an_iam_principal_of_another_account_is_direct_when_accounts_are_known() -> None:
    foreign = parse_line(LAMBDA.replace("123456789012", "210987654321"))
    assert Classifier().source(foreign) is Source.INTERNAL
    assert Classifier(accounts=frozenset({"123456789012"})).source(foreign) is Source.DIRECT
    own = parse_line(LAMBDA)
    assert Classifier(accounts=frozenset({"123456789012"})).source(own) is Source.INTERNAL


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("img/acme/../../etc/passwd", {Flag.PATH_TRAVERSAL}),
        ("img/acme/%2e%2e/%2E%2E/etc/passwd", {Flag.PATH_TRAVERSAL}),
        ("img/acme/%252e%252e/etc", {Flag.PATH_TRAVERSAL, Flag.DOUBLE_ENCODING}),
        ("img/acme/cat%2Fv1%2Fw320.webp", {Flag.ENCODED_SEPARATOR}),
        ("img/acme/cat%5cv1", {Flag.ENCODED_SEPARATOR, Flag.BACKSLASH}),
        ("img/acme/cat%252Fv1", {Flag.ENCODED_SEPARATOR, Flag.DOUBLE_ENCODING}),
        ("img/acme/cat%00.jpg", {Flag.CONTROL_CHARACTER}),
        ("img/acme/cat%0d%0aSet-Cookie:x", {Flag.CONTROL_CHARACTER}),
        ("img/acme/..cat../v1", set()),
        ("img/acme/cat.v1..webp", set()),
    ],
)
def test_flags_of_a_key(key: str, expected: set[Flag]) -> None:
    record = parse_line(_line(key=key, request_uri=f'"GET /{key} HTTP/1.1"'))
    assert set(flags(record)) == expected


def test_an_encoded_separator_seen_only_in_the_request_uri_is_flagged() -> None:
    # S3 decodes the path before it logs the key, so only the request line may show the trick.
    record = parse_line(
        _line(key="img/acme/a/b", request_uri='"GET /img/acme/a%2Fb?x=%2F HTTP/1.1"')
    )
    assert flags(record) == (Flag.ENCODED_SEPARATOR,)


def test_scan_counts_sources_statuses_and_keeps_going_past_bad_lines() -> None:
    lines = [
        OAC,
        OAC,
        LAMBDA,
        EXPIRED_PRESIGNED,
        "",
        TRAVERSAL,
        TRAVERSAL[:250],
        _line(http_status="200", error_code="-", remote_ip="203.0.113.9"),
    ]
    summary = scan_lines(lines, where="test.log")
    assert summary.lines == 7  # the blank line is not one
    assert summary.records == 6
    assert summary.error_count == 1
    assert summary.errors == [
        {
            "where": "test.log",
            "line": 7,
            "error": "unterminated quoted field; the line is cut short",
        }
    ]
    assert summary.by_source == {"cloudfront": 2, "internal": 1, "direct": 3}
    assert summary.direct_by_status == {"403": 2, "200": 1}
    assert summary.direct_errors == 2
    assert summary.direct_by_bucket == {"imgcdn-originals": 1, "imgcdn-derivatives": 2}
    assert summary.direct_errors_by_bucket == {"imgcdn-originals": 1, "imgcdn-derivatives": 1}
    assert summary.direct_by_operation == {"REST.GET.OBJECT": 3}
    assert summary.direct_keys["img/acme/cat"] == 1
    assert summary.direct_sources["arn:aws:iam::123456789012:user/uploader"] == 1
    assert summary.direct_sources["198.51.100.23"] == 1
    assert summary.flagged_count == 1
    (flagged,) = summary.flagged
    assert (flagged.line, flagged.reasons) == (6, (Flag.PATH_TRAVERSAL,))
    assert summary.buckets() == ["imgcdn-derivatives", "imgcdn-originals"]
    result = summary.as_dict(top=1)
    assert result["direct"]["top_keys"] == [{"key": "img/acme/cat", "requests": 1}]
    assert result["flagged"]["shown"][0]["key"] == "img/acme/%2e%2e/%2e%2e/etc/passwd"
    assert result["by_source"] == {"cloudfront": 2, "internal": 1, "direct": 3}
