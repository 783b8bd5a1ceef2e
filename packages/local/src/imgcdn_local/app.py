"""The local stack's HTTP face: the distribution's URL space, the gallery, uploads, health.

Every path a request names is read from the ASGI scope's `raw_path`, percent-encoded as the
client sent it and as CloudFront hands it to the Function: `scope["path"]` is already decoded,
and decoding it a second time would turn `a%2541.jpg` into `aA.jpg`.
"""

from __future__ import annotations

import contextlib
import html
import ipaddress
import json
import time
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgcdn_local.headers import delivery_headers
from imgcdn_local.invalidations import InvalidationRefused
from imgcdn_local.stack import Stack, UploadFailed
from imgcore import (
    ContentClass,
    ImageRef,
    InvalidKey,
    Policy,
    build_url,
    parse_derivative_key,
    srcset_entries,
)
from imgcore.keys import parse_public_path
from imgcore.manifest import Manifest
from imgcore.percent import encode_path

__all__ = ["RequestLog", "create_app", "raw_path"]

ADMIN_PREFIX = "/_admin/originals/"

log = structlog.get_logger("imgcdn.local.http")


def raw_path(scope: Scope) -> str:
    """The request's path exactly as sent: percent-encoded, never decoded.

    Bytes outside ASCII (a client that sent raw UTF-8) are percent-encoded, as a browser would
    have; a server that gives no `raw_path` (it is optional in ASGI) gets its decoded path
    re-encoded canonically.
    """
    raw = scope.get("raw_path")
    if raw is None:
        return encode_path(scope["path"])
    raw = bytes(raw).partition(b"?")[0]
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw)


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


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


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

    async def gallery(request: Request) -> Response:
        manifests = await _run(stack.latest)
        return HTMLResponse(_gallery_page(manifests, stack.policy))

    async def image_page(request: Request) -> Response:
        path = raw_path(request.scope).removeprefix("/_image")
        try:
            image_ref, version = parse_public_path(path)
        except InvalidKey as exc:
            return _text(404, str(exc))
        manifest = await _run(stack.manifest, image_ref, version)
        if manifest is None:
            return _text(404, f"no manifest for {image_ref.source_key} version {version} (yet)")
        return HTMLResponse(_image_page(manifest, stack.policy))

    async def health(request: Request) -> Response:
        return JSONResponse(stack.health())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stack.queue.start()
        await _run(stack.resume)
        yield
        stack.queue.stop()

    routes = [
        Route("/", gallery, methods=["GET", "HEAD"]),
        Route("/_health", health, methods=["GET"]),
        Route(ADMIN_PREFIX + "{rest:path}", upload, methods=["PUT"]),
        *_admin_routes(stack),
        Route("/_image/{rest:path}", image_page, methods=["GET"]),
        Route("/{rest:path}", image, methods=["GET", "HEAD"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(RequestLog)])


def _admin_routes(stack: Stack) -> list[Route]:
    """The stack's description and CloudFront's invalidation API, for `imgcdn takedown`."""

    async def describe(request: Request) -> Response:
        if not _is_loopback(request):
            return _text(403, "the admin API answers loopback only")
        return JSONResponse(stack.description)

    async def create_invalidation(request: Request) -> Response:
        if not _is_loopback(request):
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
        if not _is_loopback(request):
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
    if not _is_loopback(request):
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


_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:2rem;background:#fafafa;color:#222}
h1{font-size:1.4rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:1rem}
figure{margin:0;background:#fff;border-radius:8px;overflow:hidden;box-shadow:0 1px 3px #0002}
figure img{display:block;width:100%;height:auto}
figcaption{padding:.5rem .75rem;font-size:.85rem} code{font-size:.8rem}
table{border-collapse:collapse}
td,th{padding:.25rem .75rem;border-bottom:1px solid #ddd;text-align:left}
.failed{color:#a00}
"""


def _figure(m: Manifest, policy: Policy) -> str:
    image_ref = m.image
    if m.status != "complete" or not m.source_width or not m.source_height:
        reason = html.escape(m.failure or "not rendered")
        return (
            f'<figure><figcaption class="failed">{html.escape(m.image_id)}: {reason}'
            "</figcaption></figure>"
        )
    entries = srcset_entries(
        m.tenant,
        m.image_id,
        m.version,
        source_width=m.source_width,
        content_class=m.content_class,
        policy=policy,
    )
    srcset = ", ".join(str(e) for e in entries)
    src = entries[min(1, len(entries) - 1)].url
    color = m.placeholder.color if m.placeholder else "#ddd"
    page = f"/_image{image_ref.public_path(m.version)}"
    return (
        f'<figure><a href="{html.escape(page)}"><img src="{html.escape(src)}" '
        f'srcset="{html.escape(srcset)}" sizes="(max-width: 600px) 100vw, 280px" '
        f'width="{m.source_width}" height="{m.source_height}" loading="lazy" decoding="async" '
        f'alt="{html.escape(m.image_id)}" style="background:{color}"></a>'
        f"<figcaption><b>{html.escape(m.tenant)}</b> / {html.escape(m.image_id)}<br>"
        f"<code>{m.version}</code> · {m.source_width}&times;{m.source_height} · "
        f"{len(m.variants)} variants</figcaption></figure>"
    )


def _gallery_page(manifests: list[Manifest], policy: Policy) -> str:
    figures = "\n".join(_figure(m, policy) for m in manifests)
    empty = (
        "<p>No images yet. Upload one: "
        "<code>uv run imgcdn upload photo.jpg --tenant demo</code></p>"
        if not manifests
        else ""
    )
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>imgcdn local</title>"
        f'<meta name=viewport content="width=device-width,initial-scale=1"><style>{_STYLE}</style>'
        f"<h1>imgcdn — local stack</h1>{empty}<div class=grid>{figures}</div></html>"
    )


def _variant_url(m: Manifest, key: str, policy: Policy) -> str:
    p = parse_derivative_key(key, policy).params
    return build_url(
        m.tenant, m.image_id, m.version, w=p.w, h=p.h, fmt=p.fmt.value, q=p.q,
        content_class=m.content_class, policy=policy,
    )  # fmt: skip


def _image_page(m: Manifest, policy: Policy) -> str:
    rows = "\n".join(
        f"<tr><td><a href='{html.escape(_variant_url(m, v.key, policy))}'>"
        f"{html.escape(v.variant)}</a></td>"
        f"<td>{v.fmt.value}</td><td>{v.width}&times;{v.height}</td><td>{v.bytes:,}</td></tr>"
        for v in m.variants
    )
    meta = json.dumps(m.model_dump(mode="json", exclude={"variants"}), indent=1)
    cls = "ugc (takedown-eligible, 60 s TTL)" if m.content_class is ContentClass.TAKEDOWN else "img"
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(m.image_id)}</title>"
        f"<style>{_STYLE}</style><p><a href='/'>← gallery</a></p>"
        f"<h1>{html.escape(m.tenant)} / {html.escape(m.image_id)}</h1>"
        f"<p>class {cls} · version <code>{m.version}</code> · status {m.status}</p>"
        f"<table><tr><th>variant</th><th>format</th><th>size</th><th>bytes</th></tr>{rows}</table>"
        f"<h2>manifest</h2><pre>{html.escape(meta)}</pre></html>"
    )
