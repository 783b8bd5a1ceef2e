"""`imgcdn upload` when the stack dies mid-batch: what was stored is reported, in words."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgcdn_local.cli import connection_failure
from imgcore.cli import main

STORED = {
    "tenant": "acme",
    "image_id": "a.jpg",
    "version": "0123456789abcdef",
    "bytes": 3,
    "url": "http://x/img/acme/a.jpg/0123456789abcdef",
    "example": "http://x/img/acme/a.jpg/0123456789abcdef?w=320",
    "page": "http://x/_admin/images/acme/a.jpg",
}


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += conn.recv(65536)


@pytest.fixture
def dying_stack() -> Iterator[str]:
    """A stack on 127.0.0.1 that stores the first upload and dies during the second."""
    server = socket.create_server(("127.0.0.1", 0))
    answered = threading.Event()

    def run() -> None:
        with server:
            health, _ = server.accept()  # `imgcdn upload` checks the stack answers first
            with health:
                health.recv(65536)
                health.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            first, _ = server.accept()
            with first:
                _read_request(first)
                body = json.dumps(STORED).encode()
                first.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
            second, _ = server.accept()
            with second:
                _read_request(second)  # received, then the process "dies": no answer at all
            answered.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    thread.join(timeout=30)
    assert answered.is_set()


def _files(tmp_path: Path) -> list[str]:
    paths = []
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / name).write_bytes(b"abc")
        paths.append(str(tmp_path / name))
    return paths


def test_a_stack_dying_mid_batch_reports_what_was_stored(
    dying_stack: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = _files(tmp_path)
    status = main(["upload", "--tenant", "acme", "--no-wait", "--url", dying_stack, a, b, c])
    out, err = capsys.readouterr()
    assert status == 2
    assert "None" not in out + err
    assert "acme/a.jpg  version 0123456789abcdef" in out
    assert f"stored before the failure: 1 of 3 files (listed above); {b}: not confirmed" in out
    assert f"not sent: {c}" in out
    assert err.strip() == (
        f"imgcdn upload: {b}: no answer from the local stack at {dying_stack} "
        "(RemoteDisconnected: Remote end closed connection without response)"
    )


def test_the_json_report_says_the_same(
    dying_stack: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = _files(tmp_path)
    args = ["upload", "--json", "--tenant", "acme", "--no-wait", "--url", dying_stack, a, b, c]
    assert main(args) == 2
    report = json.loads(capsys.readouterr().out)
    assert [u["image_id"] for u in report["uploads"]] == ["a.jpg"]
    assert report["failed"] == {"path": b, "maybe_stored": True}
    assert report["not_sent"] == [c]


def test_a_stack_that_is_not_running_stores_nothing_and_says_how_to_start_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed below: nothing listens there
    a, b, _ = _files(tmp_path)
    assert main(["upload", "--tenant", "acme", "--url", f"http://127.0.0.1:{port}", a, b]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # refused before the first file is sent: nothing is in doubt
    assert err.startswith(f"imgcdn upload: cannot reach the local stack at http://127.0.0.1:{port}")
    assert "Connection refused" in err
    assert err.strip().endswith("check --url, or start: imgcdn dev")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (http.client.RemoteDisconnected("Remote end closed"), "RemoteDisconnected: Remote end"),
        (http.client.IncompleteRead(b"abc", 10), "the answer stopped after 3 bytes"),
        (urllib.error.URLError(ConnectionResetError(104, "Connection reset")), "Connection reset"),
        (urllib.error.URLError("timed out"), "timed out"),
        (OSError(), "OSError"),
        (OSError(None, None), "OSError"),
        (ConnectionResetError(), "ConnectionResetError"),
    ],
)
def test_a_connection_failure_is_described_in_words(exc: BaseException, words: str) -> None:
    described = connection_failure(exc)
    assert described.startswith(words)
    assert "None" not in described
