"""`imgcdn logs scan`: the readable report, --json, gzip and folders, and one-line errors."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imgcore.cli import main

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "accesslogs"


@pytest.fixture
def downloaded(tmp_path: Path) -> Path:
    """A folder as `aws s3 sync s3://<log bucket>/s3/ .` leaves it (one object gzipped)."""
    folder = tmp_path / "logs"
    (folder / "derivatives").mkdir(parents=True)
    (folder / "originals").mkdir()
    shutil.copy(LOGS / "imgcdn-derivatives.log", folder / "derivatives" / "2026-11-20-10-20-41")
    data = (LOGS / "imgcdn-originals.log").read_bytes()
    (folder / "originals" / "2026-11-20-10-21-07.gz").write_bytes(gzip.compress(data))
    return folder


def test_text_report_names_statuses_keys_sources_and_flags(
    downloaded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["logs", "scan", str(downloaded)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("scanned 2 file(s): 8 lines, 8 requests, 0 unparsed\n")
    assert "through CloudFront 2   internal 1   direct 5 (5 answered 4xx/5xx)   flagged 2" in out
    assert "direct requests by status\n  4  403\n  1  404\n" in out
    assert "  2  img/acme/cat\n" in out
    assert "  2  arn:aws:iam::123456789012:user/uploader\n" in out
    assert "[path-traversal]" in out
    assert "img/acme/cat%252Fv1%252Fw320.webp  [double-encoding, encoded-separator]" in out


def test_json_report_is_the_summary(downloaded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "scan", str(downloaded), "--json", "--top", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["files"] == 2
    assert result["by_source"] == {"cloudfront": 2, "internal": 1, "direct": 5}
    assert result["direct"]["by_status"] == {"403": 4, "404": 1}
    assert result["direct"]["by_bucket"] == {"imgcdn-derivatives": 3, "imgcdn-originals": 2}
    assert len(result["direct"]["top_keys"]) == 2
    assert result["flagged"]["lines"] == 2
    assert result["unparsed"] == 0


def test_fail_on_findings_sets_the_exit_status(
    downloaded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["logs", "scan", str(downloaded), "--fail-on-findings"]) == 1
    clean = downloaded / "clean.log"
    clean.write_text((LOGS / "imgcdn-derivatives.log").read_text().splitlines()[0] + "\n")
    capsys.readouterr()
    assert main(["logs", "scan", str(clean), "--fail-on-findings"]) == 0
    assert "no direct or flagged requests" in capsys.readouterr().out


def test_the_account_option_makes_foreign_roles_direct(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lambda_line = (LOGS / "imgcdn-derivatives.log").read_text().splitlines()[1]
    log = tmp_path / "one.log"
    log.write_text(lambda_line + "\n")
    assert main(["logs", "scan", str(log), "--json", "--account", "123456789012"]) == 0
    assert json.loads(capsys.readouterr().out)["by_source"]["internal"] == 1
    assert main(["logs", "scan", str(log), "--json", "--account", "210987654321"]) == 0
    assert json.loads(capsys.readouterr().out)["by_source"]["direct"] == 1


def test_bad_lines_are_reported_beside_the_good_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "mixed.log"
    good = (LOGS / "imgcdn-originals.log").read_text()
    log.write_text(good + 'truncated "GET /img\n')
    assert main(["logs", "scan", str(log)]) == 0
    out = capsys.readouterr().out
    assert "2 requests, 1 unparsed" in out
    assert f"{log}:3: unterminated quoted field; the line is cut short" in out


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"\x1f\x8b\x08\x00garbage", "cannot be read"),
        (b"<html>not a log</html>\n", "no line is an S3 server access log line (line 1:"),
    ],
)
def test_a_file_that_is_no_access_log_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, error: str
) -> None:
    bad = tmp_path / "bad.log.gz"
    bad.write_bytes(content)
    assert main(["logs", "scan", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imgcdn logs: {bad}: ")
    assert error in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["missing.log"], "missing.log: no such file or directory"),
        (["{empty}"], "the directory holds no file"),
        (["x", "--top", "0"], "--top is 0; allowed: 1 or more"),
        (["x", "--account", "acme"], "--account 'acme' is not an AWS account id"),
    ],
)
def test_usage_errors_say_what_is_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], error: str
) -> None:
    (tmp_path / "empty").mkdir()
    args = [a.replace("{empty}", str(tmp_path / "empty")) for a in args]
    assert main(["logs", "scan", *args]) == 2
    err = capsys.readouterr().err
    assert error in err
    assert err.count("\n") == 1


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00cut")
    imgcdn = Path(sys.executable).with_name("imgcdn")
    done = subprocess.run(
        [str(imgcdn), "logs", "scan", str(bad)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"imgcdn logs: {bad}: cannot be read")
