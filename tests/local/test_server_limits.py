"""The local server: request heads bounded as CloudFront bounds them; every path the Function's."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn

from imgcdn_local.server import MAX_REQUEST_HEAD_BYTES, MAX_URL_BYTES, build_stack, server_config
from imgcdn_local.stack import function_error
from imgcore import DEFAULT_POLICY, InvalidRequest, rewrite

V = "0123456789abcdef"


def exchange(port: int, head: bytes, chunks: int = 0, chunk: bytes = b"") -> tuple[int, bytes]:
    """Send `head` (then `chunks` more of `chunk`, while the server listens); status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        try:
            conn.sendall(head)
            for _ in range(chunks):
                conn.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-send: the answer was written first
        answer = b""
        while True:
            try:
                part = conn.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            answer += part
    status_line, _, rest = answer.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), body


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers, "", ""]
    return "\r\n".join(lines).encode()


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The stack's app served in this process, configured as `imgcdn dev` serves it."""
    server = uvicorn.Server(server_config(build_stack(tmp_path_factory.mktemp("data"))))
    sock = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(600):  # started: set once the socket accepts (no timing asserted)
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=30)


def test_request_heads_past_cloudfronts_limits_are_refused_and_others_served(port: int) -> None:
    assert exchange(port, get("/_health"))[0] == 200
    # At the URL limit: the Function answers (an unknown path is its 400), not the server.
    at_limit = "/img/acme/x/" + V + "?utm=" + "a" * (MAX_URL_BYTES - len("/img/acme/x/?utm=") - 16)
    assert len(at_limit) == MAX_URL_BYTES
    assert exchange(port, get(at_limit))[0] != 414
    status, body = exchange(port, get(at_limit + "a"))
    assert status == 414
    assert body.startswith(b"URL is 8,193 bytes; allowed: a URL of at most 8,192 bytes")
    status, body = exchange(port, get("/_health", "X-Big: " + "b" * MAX_REQUEST_HEAD_BYTES))
    assert status == 431
    assert b"request line and headers are" in body
    assert exchange(port, get("/_health"))[0] == 200  # the server is still up


def test_a_header_that_never_ends_is_refused_without_reading_it_all(port: int) -> None:
    head = b"GET /_health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Flood: "
    # 64 MB offered; the server answers and closes after tens of kilobytes.
    status, body = exchange(port, head, chunks=1024, chunk=b"f" * 65536)
    assert status == 431
    assert b"request headers are over 20,480 bytes" in body


@pytest.mark.parametrize("encoded", ["%0A", "%0D", "%0D%0A", "%0d%0a"])
def test_a_line_break_in_the_path_gets_the_functions_answer(port: int, encoded: str) -> None:
    path = f"/img/acme/x{encoded}y.jpg/{V}"
    with pytest.raises(InvalidRequest) as caught:
        rewrite(path, "", None, DEFAULT_POLICY)
    _, expected = function_error(caught.value, DEFAULT_POLICY)
    status, body = exchange(port, get(path))
    assert status == 400
    assert body == expected
