"""Wiring and serving: stores, the real precompute worker and fallback, uvicorn."""

from __future__ import annotations

import errno
import os
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import structlog
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from imgcdn_aws.logs import configure_logging
from imgcdn_aws.s3 import S3Store
from imgcdn_local.app import create_app
from imgcdn_local.cache import EdgeCache
from imgcdn_local.queue import PrecomputeQueue
from imgcdn_local.signed import KeyGroups
from imgcdn_local.stack import Fallback, Stack
from imgcdn_local.state import forget_stack, record_stack
from imgcdn_precompute.batch import BatchProcessor
from imgcdn_precompute.service import PrecomputeService
from imgcore import DEFAULT_POLICY, ImgcoreError, Policy
from imgcore.storage import LocalStore, ObjectStore

__all__ = [
    "LOCAL_BUCKETS",
    "MAX_REQUEST_HEAD_BYTES",
    "MAX_URL_BYTES",
    "EdgeBoundedProtocol",
    "build_stack",
    "routable",
    "serve",
    "server_config",
]

LOCAL_BUCKETS = ("imgcdn-local-originals", "imgcdn-local-derivatives")
LOCAL_AUDIT_BUCKET = "imgcdn-local-audit"
LOCAL_RENDER_WINDOW_S = 5.0
"""How long after an original is gone `imgcdn takedown` waits before its sweep, here: a render
on this machine takes well under a second to a few seconds (the deployed stack's window is the
fallback Lambda's timeout plus a margin, which bounds a render there)."""
"""Bucket names: real ones with --s3-endpoint, labels in the events with a local folder."""

log = structlog.get_logger("imgcdn.local")


class StackStartError(ImgcoreError):
    """The stack cannot start for a reason the user can fix; the message says how."""

    http_status = 400
    permanent = True


@dataclass(frozen=True, slots=True)
class Stores:
    """The two stores of a stack, and where they are (for `GET /_admin/stack`)."""

    originals: ObjectStore
    derivatives: ObjectStore
    description: dict[str, str]
    audit: ObjectStore


def _stores(data_dir: Path, s3_endpoint: str | None) -> Stores:
    if s3_endpoint is None:
        folders = {n: str((data_dir / n).resolve()) for n in ("originals", "derivatives", "audit")}
        return Stores(
            LocalStore(data_dir / "originals", versioned=True),
            LocalStore(data_dir / "derivatives"),
            {"kind": "local", **folders},
            LocalStore(data_dir / "audit", versioned=True),  # created now, written by takedowns
        )
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - S3 only

    originals, derivatives, audit = (
        S3Store(b, endpoint_url=s3_endpoint) for b in (*LOCAL_BUCKETS, LOCAL_AUDIT_BUCKET)
    )
    try:
        _create_buckets(originals, derivatives, audit)
    except (BotoCoreError, ClientError) as exc:
        msg = (
            f"--s3-endpoint {s3_endpoint}: {exc}; allowed: the URL of a running S3-compatible "
            "server (e.g. moto_server's http://127.0.0.1:5000), or no --s3-endpoint for folders"
        )
        raise StackStartError(msg) from None
    described = {
        "kind": "s3",
        "endpoint": s3_endpoint,
        "originals": originals.bucket,
        "derivatives": derivatives.bucket,
        "audit": audit.bucket,
    }
    return Stores(originals, derivatives, described, audit)


def _create_buckets(originals: S3Store, derivatives: S3Store, audit: S3Store) -> None:
    for store in (originals, derivatives, audit):
        existing = {b["Name"] for b in store.client.list_buckets().get("Buckets", [])}
        if store.bucket not in existing:
            store.client.create_bucket(Bucket=store.bucket)
    for store in (originals, audit):
        store.client.put_bucket_versioning(
            Bucket=store.bucket, VersioningConfiguration={"Status": "Enabled"}
        )


def _fallback(stores: Stores, policy: Policy) -> Fallback:
    from imgcdn_edge.handler import build_handler  # noqa: PLC0415 - loads libvips

    return build_handler(originals=stores.originals, derivatives=stores.derivatives, policy=policy)


def build_stack(
    data_dir: Path,
    *,
    s3_endpoint: str | None = None,
    policy: Policy = DEFAULT_POLICY,
    base_url: str = "",
    workers: int = 1,
    retry_backoff_s: float = 0.5,
    key_groups: KeyGroups | None = None,
) -> Stack:
    """A stack over `data_dir` (or an S3-compatible endpoint), not yet serving."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stores = _stores(data_dir, s3_endpoint)
    service = PrecomputeService(stores.originals, stores.derivatives, policy=policy)
    processor = BatchProcessor(service, originals_bucket=LOCAL_BUCKETS[0])
    queue = PrecomputeQueue(
        processor, data_dir / "dead-letter", workers=workers, backoff_s=retry_backoff_s
    )
    stack = Stack(
        originals=stores.originals,
        derivatives=stores.derivatives,
        fallback=_fallback(stores, policy),
        queue=queue,
        originals_bucket=LOCAL_BUCKETS[0],
        policy=policy,
        pending_dir=data_dir / "pending",
        cache=EdgeCache(),
        base_url=base_url,
        description={
            "stores": stores.description,
            "render_window_seconds": LOCAL_RENDER_WINDOW_S,
            "policy": policy.model_dump(mode="json"),
        },
        key_groups=key_groups,
        audit=stores.audit,
    )
    queue.set_on_done(stack.message_done)
    return stack


MAX_URL_BYTES = 8_192
"""CloudFront's longest URL (path and query): a longer request line is answered 414."""
MAX_REQUEST_HEAD_BYTES = 20_480
"""CloudFront's longest request without its body (request line and headers): else 431."""
_HEAD_READ_BOUND = 2 * MAX_REQUEST_HEAD_BYTES
"""Bytes of a request head read before refusing it unparsed: bounds the memory of one head
(the exact sizes are checked once the head is complete; this only stops a head that never is)."""


class EdgeBoundedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing request heads CloudFront would refuse.

    A URL over `MAX_URL_BYTES` is answered 414 and a head over `MAX_REQUEST_HEAD_BYTES` 431,
    before the app sees them; a head that keeps growing is refused after `_HEAD_READ_BOUND`
    bytes instead of being buffered whole (a 64 MB header once was). The connection closes
    after a refusal, as the request's end is unknown.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        """As uvicorn's protocol."""
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._in_head = True
        self._head_read = 0
        self._refused = False

    def on_message_begin(self) -> None:
        """A new request: its head is counted from here."""
        super().on_message_begin()
        self._in_head, self._head_read = True, 0

    def data_received(self, data: bytes) -> None:
        """Parse as uvicorn does, refusing a head that grows past the read bound."""
        if self._refused:
            return
        super().data_received(data)
        if self._in_head and not self._refused:
            self._head_read += len(data)
            if len(self.url) > MAX_URL_BYTES:
                self._refuse(414, f"URL is over {MAX_URL_BYTES:,} bytes")
            elif self._head_read > _HEAD_READ_BOUND:
                self._refuse(431, f"request headers are over {MAX_REQUEST_HEAD_BYTES:,} bytes")

    def on_headers_complete(self) -> None:
        """Check the head's exact size, then hand the request on as uvicorn does."""
        self._in_head = False
        method = self.parser.get_method()
        url_bytes = len(self.url)
        # "GET /path?query HTTP/1.1\r\n", then "name: value\r\n" per header, then "\r\n".
        head = len(method) + url_bytes + 12
        head += sum(len(name) + len(value) + 4 for name, value in self.headers) + 2
        if url_bytes > MAX_URL_BYTES:
            self._refuse(414, f"URL is {url_bytes:,} bytes")
        elif head > MAX_REQUEST_HEAD_BYTES:
            self._refuse(431, f"request line and headers are {head:,} bytes")
        else:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """Drop the body of a refused request."""
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        """Nothing more for a refused request."""
        if not self._refused:
            super().on_message_complete()

    def _refuse(self, status: int, what: str) -> None:
        self._refused = True
        limits = (
            f"allowed: a URL of at most {MAX_URL_BYTES:,} bytes and a request line with headers "
            f"of at most {MAX_REQUEST_HEAD_BYTES:,} bytes (CloudFront's limits)"
        )
        body = f"{what}; {limits}\n".encode("ascii")
        reason = {414: b"URI Too Long", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n" % (status, reason)
            + b"content-type: text/plain; charset=utf-8\r\n"
            + b"cache-control: no-store\r\n"
            + b"content-length: %d\r\n" % len(body)
            + b"connection: close\r\n\r\n"
            + body
        )
        log.warning("request_refused", status=status, reason=what)
        self.transport.close()


def routable(app: ASGIApp) -> ASGIApp:
    """`app` with every path routable, so the viewer-request rules answer it, not the router.

    The routes match the decoded `path` with `.*`, which stops at a line feed: a path with
    `%0A` fell through to a bare 404 where the Function answers 400. Handlers read `raw_path`
    (as sent), so the decoded path is only routed; line feeds in it are routed as `%0A` text.
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "\n" in scope.get("path", ""):
            scope = {**scope, "path": scope["path"].replace("\n", "%0A")}
        await app(scope, receive, send)

    return wrapped


def server_config(stack: Stack) -> uvicorn.Config:
    """How `serve` runs `stack`'s app: bounded request heads, every path routed, quiet logs."""
    return uvicorn.Config(
        routable(create_app(stack)),
        http=EdgeBoundedProtocol,
        log_level="warning",
        access_log=False,  # imgcdn_local.app.RequestLog writes one structured line per request
        timeout_graceful_shutdown=10,
        lifespan="on",
    )


class _Server(uvicorn.Server):
    """uvicorn's server, ending with status 0 after a graceful stop on SIGINT/SIGTERM.

    uvicorn re-raises the captured signal once it has shut down, so the process would die of
    it; for a command a person stops with Ctrl-C, a clean stop is a success.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def serve(
    *,
    host: str,
    port: int,
    data_dir: Path,
    s3_endpoint: str | None = None,
    workers: int = 1,
    log_json: bool | None = None,
    key_groups: KeyGroups | None = None,
) -> int:
    """Run the stack until SIGINT/SIGTERM; returns the exit status.

    `log_json` None: JSON lines on stdout unless stderr is a terminal, then readable text there.
    """
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    configure_logging(json=not sys.stderr.isatty() if log_json is None else log_json)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    _bind(sock, host, port)  # bound here so that --port 0 still prints the real URL
    bound_port = sock.getsockname()[1]
    shown = host if ":" not in host else f"[{host}]"
    base_url = f"http://{shown}:{bound_port}"
    try:
        stack = build_stack(
            data_dir,
            s3_endpoint=s3_endpoint,
            base_url=base_url,
            workers=workers,
            key_groups=key_groups,
        )
    except BaseException:
        sock.close()
        raise
    server = _Server(server_config(stack))
    where = s3_endpoint or str(data_dir.resolve())
    print(f"imgcdn dev: serving {base_url}/ (data: {where}); Ctrl-C stops", flush=True)  # noqa: T201
    # `imgcdn upload` finds this stack from the data folder's stack.json: name it if not default.
    data_hint = "" if data_dir == Path(".imgcdn") else f" --data {shlex.quote(str(data_dir))}"
    print(f"imgcdn dev: upload with: imgcdn upload PHOTO.jpg --tenant demo{data_hint}", flush=True)  # noqa: T201
    # uvicorn handles SIGINT/SIGTERM: it stops accepting, finishes requests, runs lifespan end.
    record_stack(data_dir, base_url)  # so that `imgcdn upload` finds it without --url
    try:
        server.run(sockets=[sock])
    finally:
        forget_stack(data_dir)
    print("imgcdn dev: stopped", flush=True)  # noqa: T201
    return 0


def _bind(sock: socket.socket, host: str, port: int) -> None:
    """Bind `sock`, or say in one line why not and what to do instead."""
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            msg = (
                f"port {port} on {host} is already in use (another imgcdn dev?); "
                "pick another with --port N, or --port 0 for any free port"
            )
        elif exc.errno == errno.EACCES:
            msg = f"port {port} on {host} needs privileges; allowed: --port 1024-65535, or 0"
        else:
            msg = f"cannot listen on {host}:{port} ({exc.strerror or exc}); check --host and --port"
        raise StackStartError(msg) from None
