"""The local stack's HTTP face: the distribution's URL space, the console, uploads, health.

Paths are read raw (see `imgcdn_local.scope.raw_path`); the console's pages and JSON endpoints
are `imgcdn_local.console`'s routes, matched before the distribution's catch-all.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgcdn_local.console import console_routes
from imgcdn_local.headers import delivery_headers
from imgcdn_local.invalidations import InvalidationRefused
from imgcdn_local.scope import is_loopback, raw_path
from imgcdn_local.stack import Stack, UploadFailed
from imgcore import ImageRef, InvalidKey, Policy
from imgcore.keys import parse_public_path
from imgcore.manifest import Manifest

__all__ = ["RequestLog", "create_app", "raw_path"]

ADMIN_PREFIX = "/_admin/originals/"

log = structlog.get_logger("imgcdn.local.http")


class RequestLog:
    """ASGI middleware: one `request` line per answer (method, path, status, X-Cache, ms)."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap `app`."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request through the app and log its answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer: MutableMapping[str, Any] = {"status": 500, "x_cache": None}

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"x-cache":
                        answer["x_cache"] = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            log.info(
                "request",
                method=scope["method"],
                path=raw_path(scope),
                query=query or None,
                status=answer["status"],
                x_cache=answer["x_cache"],
                ms=round((time.perf_counter() - started) * 1000, 2),
            )


def create_app(stack: Stack) -> Starlette:
    """The ASGI app over `stack`."""

    async def image(request: Request) -> Response:
        # Any path outside the local pages is the distribution's: the Function answers it, with
        # its 400 for a path that names no image, as CloudFront's default behaviour does.
        result = await stack.fetch(
            raw_path(request.scope),
            request.scope.get("query_string", b"").decode("latin-1"),
            request.headers.get("accept"),
            f"{request.url.scheme}://{request.url.netloc}",
            request.client.host if request.client else None,
        )
        headers = {
            **result.headers,
            "x-cache": result.cache,
            **delivery_headers(request.headers.get("origin")),
        }
        if request.method == "HEAD":
            # A HEAD says how long the GET's body is, as CloudFront and S3 do (not 0).
            headers["content-length"] = str(len(result.body))
            return Response(b"", status_code=result.status, headers=headers)
        return Response(result.body, status_code=result.status, headers=headers)

    async def upload(request: Request) -> Response:
        try:
            image_ref, data = await _admit_upload(request, stack.policy)
        except _Refused as exc:
            return _text(exc.status, str(exc))
        result = await _run(stack.upload, data, image_ref)
        if request.query_params.get("wait") == "1":
            try:
                manifest = await _run(_wait_for_render, stack, image_ref, result)
            except UploadFailed as exc:
                return _text(422, str(exc))
            except TimeoutError as exc:
                return _text(504, str(exc))
            result["status"] = manifest.status
            result["failure"] = manifest.failure
            result["variants"] = len(manifest.variants)
        return JSONResponse(result, status_code=201)

    async def health(request: Request) -> Response:
        return JSONResponse(stack.health())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stack.queue.start()
        await _run(stack.resume)
        yield
        stack.queue.stop()

    routes = [
        *console_routes(stack, _run),
        Route("/_health", health, methods=["GET"]),
        Route(ADMIN_PREFIX + "{rest:path}", upload, methods=["PUT"]),
        *_admin_routes(stack),
        Route("/{rest:path}", image, methods=["GET", "HEAD"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(RequestLog)])


def _admin_routes(stack: Stack) -> list[Route]:
    """The stack's description and CloudFront's invalidation API, for `imgcdn takedown`."""

    async def describe(request: Request) -> Response:
        if not is_loopback(request):
            return _text(403, "the admin API answers loopback only")
        return JSONResponse(stack.description)

    async def create_invalidation(request: Request) -> Response:
        if not is_loopback(request):
            return _text(403, "the admin API answers loopback only")
        try:
            body = json.loads(await request.body())
            paths, reference = body["paths"], body["reference"]
            inv_id, status = stack.invalidations.create(paths, reference)
        except (json.JSONDecodeError, KeyError, TypeError):
            allowed = '{"paths": ["/img/tenant/id/*", ...], "reference": "..."}'
            return _text(400, f"InvalidArgument: the body must be JSON; allowed: {allowed}")
        except InvalidationRefused as exc:
            return _text(exc.status, str(exc))
        return JSONResponse({"id": inv_id, "status": status, "paths": paths}, status_code=201)

    async def get_invalidation(request: Request) -> Response:
        if not is_loopback(request):
            return _text(403, "the admin API answers loopback only")
        inv_id = request.path_params["inv_id"]
        try:
            return JSONResponse({"id": inv_id, "status": stack.invalidations.status(inv_id)})
        except InvalidationRefused as exc:
            return _text(exc.status, str(exc))

    return [
        Route("/_admin/stack", describe, methods=["GET"]),
        Route("/_admin/invalidations", create_invalidation, methods=["POST"]),
        Route("/_admin/invalidations/{inv_id}", get_invalidation, methods=["GET"]),
    ]


async def _run(fn: Any, *args: Any) -> Any:
    import anyio.to_thread  # noqa: PLC0415 - starlette's own dependency, loaded with it

    return await anyio.to_thread.run_sync(fn, *args)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _admit_upload(request: Request, policy: Policy) -> tuple[ImageRef, bytes]:
    """The image an admin upload names and its bytes; raises `_Refused` with the answer."""
    if not is_loopback(request):
        raise _Refused(403, "uploads are accepted from loopback only")
    path = raw_path(request.scope)
    if not path.startswith(ADMIN_PREFIX):
        raise _Refused(400, f"upload path {path!r} must start with {ADMIN_PREFIX} unencoded")
    try:
        image_ref = _image_from_admin_path(path.removeprefix(ADMIN_PREFIX.rstrip("/")))
    except InvalidKey as exc:
        raise _Refused(400, str(exc)) from None
    limit = policy.limits.max_input_bytes
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise _Refused(413, f"original is over {limit:,} bytes; allowed: at most {limit:,}")
    if not data:
        raise _Refused(400, "the request body is empty; send the original's bytes")
    return image_ref, bytes(data)


def _wait_for_render(stack: Stack, image: ImageRef, upload: dict[str, Any]) -> Manifest:
    return stack.wait_until_rendered(
        image, upload["version"], 300.0, version_id=upload["version_id"], etag=upload["etag"]
    )


def _text(status: int, message: str) -> Response:
    return Response(
        message + "\n", status_code=status, media_type="text/plain; charset=utf-8",
        headers={"cache-control": "no-store"},
    )  # fmt: skip


def _image_from_admin_path(path: str) -> ImageRef:
    """`/{class}/{tenant}/{id}` (encoded, as in a public path) -> the image."""
    image_ref, _ = parse_public_path(path + "/0000000000000000")
    return image_ref
