"""The probe monitor Lambda against moto S3: a log object lands, EMF and flagged lines come out."""

from __future__ import annotations

import copy
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog
from moto import mock_aws

from imgcdn_aws.config import ConfigError
from imgcdn_aws.s3 import s3_client
from imgcdn_ops import probes
from imgcdn_ops.probes import ProbeEventError, ProbeSettings, handler, parse_event

LOG_BUCKET = "imgcdn-logs"
LOG_KEY = "s3/derivatives/2026-11-20-10-20-41-5E0C7A6B1D2F3A4B"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DERIVATIVES_LOG = (FIXTURES / "accesslogs" / "imgcdn-derivatives.log").read_bytes()
ORIGINALS_LOG = (FIXTURES / "accesslogs" / "imgcdn-originals.log").read_bytes()


@pytest.fixture
def event() -> dict[str, Any]:
    """S3's notification of a new server access log object in the log bucket."""
    data: dict[str, Any] = json.loads(
        (FIXTURES / "events" / "s3-put-access-log.json").read_text("utf-8")
    )
    return data


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv(probes.ACCOUNTS_ENV, "123456789012")
    monkeypatch.delenv("IMGCDN_S3_ENDPOINT", raising=False)
    with mock_aws():
        s3_client.cache_clear()
        probes.monitor.cache_clear()
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=LOG_BUCKET)
        yield client
    s3_client.cache_clear()
    probes.monitor.cache_clear()
    structlog.reset_defaults()


def _stdout_json(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def _emf(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "_aws" in line]


def test_a_new_log_object_publishes_direct_and_flagged_counts_per_bucket(
    s3: Any, event: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    s3.put_object(Bucket=LOG_BUCKET, Key=LOG_KEY, Body=DERIVATIVES_LOG)
    totals = handler(event, None)
    # 6 lines: 2 through CloudFront, 1 from a Lambda's role, 3 direct (all refused), 2 of them
    # flagged (a traversal and a double-encoded separator).
    assert totals == {"objects": 1, "direct": 3, "flagged": 2, "unparsed": 0}
    lines = _stdout_json(capsys)
    per_bucket, per_object = _emf(lines)
    directive = per_bucket["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "imgcdn"
    assert directive["Dimensions"] == [["Bucket"]]
    assert {m["Name"] for m in directive["Metrics"]} == {
        "DirectRequests",
        "DirectErrors",
        "FlaggedKeys",
    }
    assert per_bucket["Bucket"] == "imgcdn-derivatives"
    assert (per_bucket["DirectRequests"], per_bucket["DirectErrors"]) == (3, 3)
    assert per_bucket["FlaggedKeys"] == 2
    assert per_object["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]
    assert (per_object["LogObjects"], per_object["UnparsedLines"]) == (1, 0)

    flagged = [line for line in lines if line.get("event") == "probe_flagged"]
    assert [f["key"] for f in flagged] == [
        "img/acme/%2e%2e/%2e%2e/etc/passwd",
        "img/acme/cat%252Fv1%252Fw320.webp",
    ]
    assert flagged[0]["reasons"] == ["path-traversal"]
    assert flagged[0]["remote_ip"] == "2001:db8:85a3::8a2e:370:7334"
    assert flagged[0]["level"] == "warning"
    assert flagged[0]["key"] == "img/acme/%2e%2e/%2e%2e/etc/passwd"
    assert set(flagged[1]["reasons"]) == {"encoded-separator", "double-encoding"}
    (scanned,) = [line for line in lines if line.get("event") == "log_object_scanned"]
    assert scanned["object"] == f"s3://{LOG_BUCKET}/{LOG_KEY}"
    assert scanned["by_source"] == {"cloudfront": 2, "internal": 1, "direct": 3}
    assert scanned["direct_by_status"] == {"403": 2, "404": 1}


def test_a_gzip_log_object_with_a_bad_line_is_scanned_and_the_line_counted(
    s3: Any, event: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    body = gzip.compress(ORIGINALS_LOG + b"cut short [20/Nov/2026:10:15\n")
    s3.put_object(Bucket=LOG_BUCKET, Key=LOG_KEY, Body=body)
    assert handler(event, None) == {"objects": 1, "direct": 2, "flagged": 0, "unparsed": 1}
    lines = _stdout_json(capsys)
    per_bucket, per_object = _emf(lines)
    assert per_bucket["Bucket"] == "imgcdn-originals"
    assert (per_bucket["DirectRequests"], per_bucket["DirectErrors"]) == (2, 2)
    assert per_bucket["FlaggedKeys"] == 0
    assert per_object["UnparsedLines"] == 1
    (unparsed,) = [line for line in lines if line.get("event") == "log_line_unparsed"]
    assert unparsed["line"] == 3
    assert "unterminated [time]" in unparsed["error"]


def test_the_stack_account_setting_makes_a_foreign_role_direct(
    s3: Any, event: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = DERIVATIVES_LOG.splitlines()[1].replace(b"123456789012", b"210987654321")
    s3.put_object(Bucket=LOG_BUCKET, Key=LOG_KEY, Body=foreign + b"\n")
    assert handler(event, None)["direct"] == 1
    (per_bucket, _) = _emf(_stdout_json(capsys))
    assert per_bucket["DirectRequests"] == 1
    assert per_bucket["DirectErrors"] == 0


def test_a_log_object_removed_before_it_is_read_is_skipped(
    s3: Any, event: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert handler(event, None) == {"objects": 0, "direct": 0, "flagged": 0, "unparsed": 0}
    lines = _stdout_json(capsys)
    assert _emf(lines) == []
    assert [line["event"] for line in lines] == ["log_object_gone"]


def test_a_corrupt_gzip_object_is_reported_not_raised(
    s3: Any, event: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    s3.put_object(Bucket=LOG_BUCKET, Key=LOG_KEY, Body=gzip.compress(ORIGINALS_LOG)[:30])
    assert handler(event, None)["objects"] == 0
    lines = _stdout_json(capsys)
    (emf,) = _emf(lines)
    assert emf["UnreadableLogObjects"] == 1
    assert any(line.get("event") == "log_object_unreadable" for line in lines)


def test_event_keys_are_decoded_the_way_s3_encodes_them(event: dict[str, Any]) -> None:
    encoded = copy.deepcopy(event)
    encoded["Records"][0]["s3"]["object"]["key"] = "s3/derivatives/odd+name%2B1%C3%A9"
    assert parse_event(encoded) == [(LOG_BUCKET, "s3/derivatives/odd name+1é")]


def test_events_other_than_object_created_are_skipped(event: dict[str, Any]) -> None:
    removed = copy.deepcopy(event)
    removed["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert parse_event(removed) == []
    assert parse_event({"Event": "s3:TestEvent", "Service": "Amazon S3"}) == []


@pytest.mark.parametrize(
    "bad",
    [{}, {"Records": []}, {"Records": [{"eventName": "ObjectCreated:Put"}]}, {"Records": "x"}],
)
def test_an_event_that_is_not_an_s3_notification_raises(bad: dict[str, Any]) -> None:
    with pytest.raises(ProbeEventError, match="expected"):
        parse_event(bad)


def test_settings_name_the_bad_variable() -> None:
    settings = ProbeSettings.from_env({probes.ACCOUNTS_ENV: "123456789012, 210987654321"})
    assert settings.accounts == {"123456789012", "210987654321"}
    assert ProbeSettings.from_env({}).accounts == frozenset()
    with pytest.raises(ConfigError, match=r"IMGCDN_PROBES_ACCOUNTS holds \['12345'\]"):
        ProbeSettings.from_env({probes.ACCOUNTS_ENV: "12345"})
    with pytest.raises(ConfigError, match="IMGCDN_S3_ENDPOINT"):
        ProbeSettings.from_env({"IMGCDN_S3_ENDPOINT": "ftp://x"})


def test_a_storage_fault_is_raised_so_lambda_retries_then_dead_letters() -> None:
    from imgcdn_aws.emf import Metrics
    from imgcdn_ops.accesslogs import Classifier
    from imgcore.storage import StorageFault, StoredObject

    class Faulty:
        def get(
            self, key: str, *, max_bytes: int | None = None, version_id: str | None = None
        ) -> StoredObject:
            raise StorageFault(f"S3 {LOG_BUCKET}/{key}: SlowDown")

    out = io.StringIO()
    monitor = probes.ProbeMonitor(
        lambda _bucket: Faulty(), metrics=Metrics(out), classifier=Classifier()
    )
    with pytest.raises(StorageFault, match="SlowDown"):
        monitor.scan_object(LOG_BUCKET, LOG_KEY)
    assert out.getvalue() == ""
