"""The local stack's HTTP face: the distribution's URL space, the gallery, uploads, health."""

from __future__ import annotations

import contextlib
import html
import ipaddress
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from imgcdn_local.stack import Stack
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

__all__ = ["create_app"]

ADMIN_PREFIX = "/_admin/originals/"


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def create_app(stack: Stack) -> Starlette:
    """The ASGI app over `stack`."""

    async def image(request: Request) -> Response:
        result = await stack.fetch(
            request.url.path, request.url.query, request.headers.get("accept")
        )
        headers = {**result.headers, "x-cache": result.cache}
        body = b"" if request.method == "HEAD" else result.body
        return Response(body, status_code=result.status, headers=headers)

    async def upload(request: Request) -> Response:
        if not _is_loopback(request):
            return _text(403, "uploads are accepted from loopback only")
        path = request.url.path.removeprefix(ADMIN_PREFIX.rstrip("/"))
        try:
            image_ref = _image_from_admin_path(path)
        except InvalidKey as exc:
            return _text(400, str(exc))
        limit = stack.policy.limits.max_input_bytes
        data = bytearray()
        async for chunk in request.stream():
            data.extend(chunk)
            if len(data) > limit:
                return _text(413, f"original is over {limit:,} bytes; allowed: at most {limit:,}")
        if not data:
            return _text(400, "the request body is empty; send the original's bytes")
        result = await _run(stack.upload, bytes(data), image_ref)
        if request.query_params.get("wait") == "1":
            try:
                manifest = await _run(
                    stack.wait_until_rendered, image_ref, result["version"], 300.0
                )
            except TimeoutError as exc:
                return _text(504, str(exc))
            result["status"] = manifest.status
            result["failure"] = manifest.failure
            result["variants"] = len(manifest.variants)
        return JSONResponse(result, status_code=201)

    async def gallery(request: Request) -> Response:
        manifests = await _run(stack.latest)
        return HTMLResponse(_gallery_page(manifests))

    async def image_page(request: Request) -> Response:
        path = request.url.path.removeprefix("/_image")
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
        stack.resume_pending()
        yield
        stack.queue.stop()

    routes = [
        Route("/", gallery, methods=["GET", "HEAD"]),
        Route("/_health", health, methods=["GET"]),
        Route(ADMIN_PREFIX + "{rest:path}", upload, methods=["PUT"]),
        Route("/_image/{rest:path}", image_page, methods=["GET"]),
        Route("/img/{rest:path}", image, methods=["GET", "HEAD"]),
        Route("/ugc/{rest:path}", image, methods=["GET", "HEAD"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _run(fn: Any, *args: Any) -> Any:
    import anyio.to_thread  # noqa: PLC0415 - starlette's own dependency, loaded with it

    return await anyio.to_thread.run_sync(fn, *args)


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


def _figure(m: Manifest) -> str:
    image_ref = m.image
    if m.status != "complete" or not m.source_width or not m.source_height:
        reason = html.escape(m.failure or "not rendered")
        return (
            f'<figure><figcaption class="failed">{html.escape(m.image_id)}: {reason}'
            "</figcaption></figure>"
        )
    entries = srcset_entries(
        m.tenant, m.image_id, m.version, source_width=m.source_width, content_class=m.content_class
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


def _gallery_page(manifests: list[Manifest]) -> str:
    figures = "\n".join(_figure(m) for m in manifests)
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
