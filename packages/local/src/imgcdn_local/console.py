"""The dev console served by `imgcdn dev`: gallery, image pages, URL playground, live stats.

The pages are rendered here, on the server, from the manifests; the static script in
`console_static/` adds what needs a browser: uploads with progress, the playground's form, the
live stats and the takedown button. The script talks to the small JSON endpoints below, and the
playground builds its form from `GET /_console/api/params`, which lists `imgcore`'s parameter
names with the policy's values for each, so a parameter added to the contract shows up on its
own. Uploads go to the same `PUT /_admin/originals/...?wait=1` that `imgcdn upload` uses.
"""

from __future__ import annotations

import html
import inspect
import json
import mimetypes
import threading
import time
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from imgcdn_local.console_takedown import TakedownRefused, take_down_here
from imgcdn_local.scope import is_loopback, raw_path
from imgcdn_local.stack import Stack
from imgcore import (
    ContentClass,
    ImageRef,
    InvalidKey,
    InvalidRequest,
    Policy,
    build_url,
    parse_derivative_key,
    rewrite,
    srcset_entries,
)
from imgcore.keys import parse_public_path
from imgcore.manifest import Manifest
from imgcore.params import PARAM_NAMES

__all__ = [
    "console_routes",
    "console_stats",
    "gallery_page",
    "image_page",
    "param_choices",
    "playground_answer",
]

STATIC = files("imgcdn_local") / "console_static"
STATIC_PREFIX = "/_console/static/"
API_PREFIX = "/_console/api/"
_STATIC_NAMES = frozenset({"console.css", "console.js", "favicon.ico"})
_CARD_SIZES = "(max-width: 600px) 100vw, 280px"


def param_choices(policy: Policy) -> list[dict[str, Any]]:
    """Each query parameter of the contract, in canonical order, with the policy's values.

    A parameter the policy has no list of values for is offered as free text: the rewrite
    still checks it, so the playground shows the Function's 400 for a bad value.
    """
    formats = ["auto", *(f.value for f in policy.output_formats)]
    known: dict[str, tuple[str, list[Any]]] = {
        "w": ("width in pixels, snapped up to a breakpoint", list(policy.widths)),
        "h": ("height in pixels, snapped up to a breakpoint", list(policy.heights)),
        "fmt": ("output format; auto picks from the Accept header", formats),
        "q": ("quality, snapped up to the ladder (ignored for PNG)", list(policy.qualities)),
    }
    described = []
    for name in PARAM_NAMES:
        help_text, values = known.get(name, ("see the policy", []))
        described.append({"name": name, "help": help_text, "values": values})
    return described


def _accept_options(policy: Policy) -> list[dict[str, str]]:
    """The Accept headers that resolve `fmt=auto` to each format the policy can pick."""
    options = [{"accept": f"image/{f.value}", "resolves": f.value} for f in policy.auto_preference]
    options.append({"accept": "*/*", "resolves": policy.auto_fallback.value})
    return options


def _canonical_url(
    path: str, chosen: dict[str, str], base_url: str, policy: Policy
) -> tuple[str, ImageRef, str]:
    """The canonical URL for the chosen parameters, as `imgcore.build_url` writes it."""
    image, version = parse_public_path(path)
    accepted = inspect.signature(build_url).parameters
    kwargs: dict[str, Any] = {}
    rest: list[tuple[str, str]] = []
    for name, value in chosen.items():
        if name not in accepted:
            rest.append((name, value))
            continue
        kwargs[name] = _typed(value, str(accepted[name].annotation))
    url = build_url(
        image.tenant,
        image.image_id,
        version,
        base_url=base_url,
        content_class=image.content_class,
        policy=policy,
        **kwargs,
    )
    if rest:
        url += ("&" if "?" in url else "?") + urlencode(rest)
    return url, image, version


def _typed(value: str, annotation: str) -> Any:
    """`value` as the number `build_url` takes for that parameter, when it is one."""
    for kind in (int, float):
        if kind.__name__ in annotation:
            try:
                return kind(value)
            except ValueError:
                continue
    return value


def playground_answer(
    stack: Stack, path: str, chosen: dict[str, str], base_url: str
) -> dict[str, Any]:
    """What the playground shows: the canonical URL and, per Accept, the rewritten URI and key.

    Raises:
        InvalidRequest: The path or a value is outside the policy (the Function's 400).
        InvalidKey: The path names no image.
    """
    query = urlencode(list(chosen.items()))
    rewrites = []
    for option in _accept_options(stack.policy):
        derivative = rewrite(path, query, option["accept"], stack.policy)
        rewrites.append({**option, "uri": derivative.uri, "key": derivative.key})
    url, _, _ = _canonical_url(path, chosen, base_url, stack.policy)
    return {"url": url, "query": query, "rewrites": rewrites}


class _StoredTally:
    """Stored variants and bytes, recounted at most once a second (a listing is not free)."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._lock = threading.Lock()
        self._at = 0.0
        self._value = {"variants": 0, "bytes": 0, "manifests": 0}

    def get(self) -> dict[str, int]:
        with self._lock:
            if time.monotonic() - self._at > 1.0:
                tally = {"variants": 0, "bytes": 0, "manifests": 0}
                for info in self._stack.derivatives.list():
                    if info.key.endswith("/manifest.json"):
                        tally["manifests"] += 1
                    else:
                        tally["variants"] += 1
                        tally["bytes"] += info.size
                self._value, self._at = tally, time.monotonic()
            return dict(self._value)


def console_stats(stack: Stack, stored: dict[str, int]) -> dict[str, Any]:
    """The numbers the console's stats bar shows, from the stack's counters."""
    health = stack.health()
    requests = sum(health["by_status"].values())
    looked_up = health["hits"] + health["misses"]
    renders = health["precompute_renders"] + health["fallback_invocations"]
    render_ms = health["precompute_ms"] + health["fallback_ms"]
    return {
        "requests": requests,
        "hits": health["hits"],
        "misses": health["misses"],
        "hit_ratio": round(health["hits"] / looked_up, 4) if looked_up else None,
        "renders": renders,
        "precompute_renders": health["precompute_renders"],
        "fallback_renders": health["fallback_invocations"],
        "render_ms_total": round(render_ms, 1),
        "render_ms_mean": round(render_ms / renders, 1) if renders else None,
        "stored_variants": stored["variants"],
        "stored_bytes": stored["bytes"],
        "manifests": stored["manifests"],
        "queue_depth": health["queue_depth"],
        "dead_letters": health["dead_letters"],
        "uploads": health["uploads"],
        "by_status": health["by_status"],
    }


def console_routes(stack: Stack, run: Any) -> list[Route]:
    """The console's pages, static files and JSON endpoints; `run` runs a blocking call."""
    tally = _StoredTally(stack)

    async def gallery(request: Request) -> Response:
        manifests = await run(stack.latest)
        return HTMLResponse(gallery_page(manifests, stack.policy))

    async def cards(request: Request) -> Response:
        manifests = await run(stack.latest)
        return HTMLResponse(_cards(manifests, stack.policy), headers={"cache-control": "no-store"})

    async def image(request: Request) -> Response:
        path = raw_path(request.scope).removeprefix("/_image")
        try:
            image_ref, version = parse_public_path(path)
        except InvalidKey as exc:
            return _text(404, str(exc))
        manifest = await run(stack.manifest, image_ref, version)
        if manifest is None:
            return _text(404, f"no manifest for {image_ref.source_key} version {version} (yet)")
        return HTMLResponse(image_page(manifest, stack.policy))

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC_NAMES:
            return _text(404, f"no console file {name!r}; allowed: {sorted(_STATIC_NAMES)}")
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        body = (STATIC / name).read_bytes()
        return Response(body, media_type=media_type, headers={"cache-control": "no-cache"})

    async def favicon(request: Request) -> Response:
        body = (STATIC / "favicon.ico").read_bytes()
        return Response(body, media_type="image/x-icon", headers={"cache-control": "max-age=86400"})

    async def params(request: Request) -> Response:
        return JSONResponse(
            {
                "params": param_choices(stack.policy),
                "accept": _accept_options(stack.policy),
                "policy": stack.policy.model_dump(mode="json"),
            }
        )

    async def playground(request: Request) -> Response:
        path = request.query_params.get("path", "")
        chosen = {
            name: value
            for name in PARAM_NAMES
            if (value := request.query_params.get(name, "")) != ""
        }
        base_url = f"{request.url.scheme}://{request.url.netloc}"
        try:
            answer = playground_answer(stack, path, chosen, base_url)
        except (InvalidRequest, InvalidKey) as exc:
            field = getattr(exc, "field", None) or "path"
            # Answered 200: the page shows the Function's refusal as the playground's result.
            return JSONResponse({"error": str(exc), "field": field})
        return JSONResponse(answer)

    async def stats(request: Request) -> Response:
        stored = await run(tally.get)
        return JSONResponse(console_stats(stack, stored), headers={"cache-control": "no-store"})

    async def takedown(request: Request) -> Response:
        if not is_loopback(request):
            return _text(403, "takedowns are accepted from loopback only")
        # JSON only, and only from the console's own pages: another site open in the same
        # browser can send a simple cross-origin POST to 127.0.0.1, but never with this type.
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _text(415, "the body must be sent as application/json")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return _text(403, f"takedowns are accepted from this console only, not {origin}")
        try:
            body = json.loads(await request.body())
            report = await run(take_down_here, stack, body)
        except (json.JSONDecodeError, TypeError, AttributeError):
            allowed = '{"target": "TENANT/ID", "class": "img|ugc", "reason": "...", "actor": "..."}'
            return _text(400, f"the body must be JSON; allowed: {allowed}")
        except TakedownRefused as exc:
            return _text(400, str(exc))
        return JSONResponse(report)

    return [
        Route("/", gallery, methods=["GET", "HEAD"]),
        Route("/favicon.ico", favicon, methods=["GET", "HEAD"]),
        Route(STATIC_PREFIX + "{name}", static, methods=["GET", "HEAD"]),
        Route("/_console/cards", cards, methods=["GET"]),
        Route(API_PREFIX + "params", params, methods=["GET"]),
        Route(API_PREFIX + "url", playground, methods=["GET"]),
        Route(API_PREFIX + "stats", stats, methods=["GET"]),
        Route(API_PREFIX + "takedown", takedown, methods=["POST"]),
        Route("/_image/{rest:path}", image, methods=["GET"]),
    ]


def _text(status: int, message: str) -> Response:
    return Response(
        message + "\n", status_code=status, media_type="text/plain; charset=utf-8",
        headers={"cache-control": "no-store"},
    )  # fmt: skip


def _page(title: str, body: str, *, page: str, data: dict[str, Any] | None = None) -> str:
    """The console's HTML shell around `body`: head, navigation and the live stats bar."""
    payload = html.escape(json.dumps(data or {}), quote=True)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)} · imgcdn</title>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        '<link rel=icon href="/favicon.ico">'
        f'<link rel=stylesheet href="{STATIC_PREFIX}console.css">'
        f'<script defer src="{STATIC_PREFIX}console.js"></script></head>'
        f'<body data-page="{page}" data-console="{payload}">'
        '<header><a class=brand href="/">imgcdn <span>local</span></a>'
        '<dl id=stats aria-live=polite aria-label="stack statistics"></dl></header>'
        f"<main>{body}</main></body></html>"
    )


def _card(m: Manifest, policy: Policy) -> str:
    image_ref = m.image
    page = f"/_image{image_ref.public_path(m.version)}"
    caption = (
        f"<b>{html.escape(m.tenant)}</b> / {html.escape(m.image_id)}"
        + (" <span class=tag>ugc</span>" if m.content_class is ContentClass.TAKEDOWN else "")
        + f"<br><code>{m.version}</code>"
    )
    if m.status != "complete" or not m.source_width or not m.source_height:
        reason = html.escape(m.failure or "not rendered")
        return (
            f'<figure class="card failed"><div class=thumb><span>rejected</span></div>'
            f"<figcaption>{caption}<br><span class=reason>{reason}</span></figcaption></figure>"
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
    style = ""
    if m.placeholder:
        style = f"background:{m.placeholder.color} url('{m.placeholder.lqip}') center/cover"
    total = sum(v.bytes for v in m.variants)
    return (
        f'<figure class=card><a class=thumb href="{html.escape(page)}" '
        f'style="{html.escape(style)}"><img src="{html.escape(src)}" '
        f'srcset="{html.escape(srcset)}" sizes="{_CARD_SIZES}" '
        f'width="{m.source_width}" height="{m.source_height}" loading="lazy" decoding="async" '
        f'alt="{html.escape(m.image_id)}"></a>'
        f"<figcaption>{caption} · {m.source_width}&times;{m.source_height}<br>"
        f"{len(m.variants)} variants · {total:,} bytes</figcaption></figure>"
    )


def _cards(manifests: list[Manifest], policy: Policy) -> str:
    if not manifests:
        return (
            "<p class=empty>No images yet. Drop some above, or run "
            "<code>uv run imgcdn upload photo.jpg --tenant demo</code></p>"
        )
    return "\n".join(_card(m, policy) for m in manifests)


def gallery_page(manifests: list[Manifest], policy: Policy) -> str:
    """The gallery: the upload zone and a card per image, newest first."""
    classes = "".join(f"<option>{c.value}</option>" for c in ContentClass)
    upload = (
        "<section id=upload class=drop aria-label=upload>"
        "<p><b>Upload</b>: drop images here or "
        '<label class=button>choose files<input id=files type=file multiple accept="image/*">'
        "</label></p>"
        '<p><label>tenant <input id=tenant value=demo pattern="[a-z0-9-]+" required></label> '
        f"<label>class <select id=cls>{classes}</select></label></p>"
        "<ol id=uploads></ol></section>"
    )
    grid = f"<div id=grid class=grid>{_cards(manifests, policy)}</div>"
    return _page("gallery", f"<h1>Gallery</h1>{upload}{grid}", page="gallery")


def _variant_url(m: Manifest, key: str, policy: Policy) -> str:
    p = parse_derivative_key(key, policy).params
    return build_url(
        m.tenant, m.image_id, m.version, w=p.w, h=p.h, fmt=p.fmt.value, q=p.q,
        content_class=m.content_class, policy=policy,
    )  # fmt: skip


def _snippet(m: Manifest, policy: Policy) -> str:
    """The `<picture>` markup for this image: one `<source>` per preferred format, then `<img>`."""
    common: dict[str, Any] = {
        "source_width": m.source_width,
        "content_class": m.content_class,
        "policy": policy,
    }

    def candidates(fmt: str) -> list[Any]:
        return srcset_entries(m.tenant, m.image_id, m.version, fmt=fmt, **common)

    sources = [
        f'  <source type="image/{f.value}" sizes="100vw"\n          srcset="'
        + ", ".join(str(e) for e in candidates(f.value))
        + '">'
        for f in policy.auto_preference
    ]
    fallback = candidates(policy.auto_fallback.value)
    img = (
        f'  <img src="{fallback[min(1, len(fallback) - 1)].url}" sizes="100vw"\n'
        f'       srcset="{", ".join(str(e) for e in fallback)}"\n'
        f'       width="{m.source_width}" height="{m.source_height}" alt="" loading="lazy">'
    )
    return "<picture>\n" + "\n".join([*sources, img]) + "\n</picture>"


def image_page(m: Manifest, policy: Policy) -> str:
    """One image: its variants, the URL playground, the markup to copy, takedown, manifest."""
    meta = json.dumps(m.model_dump(mode="json"), indent=1)
    cls = "ugc (takedown-eligible, 60 s TTL)" if m.content_class is ContentClass.TAKEDOWN else "img"
    title = f"{m.tenant} / {m.image_id}"
    head = (
        f"<p><a href='/'>← gallery</a></p><h1>{html.escape(title)}</h1>"
        f"<p>class {cls} · version <code>{m.version}</code> · status {m.status}"
        + (f" · {m.source_width}&times;{m.source_height}" if m.source_width else "")
        + f" · original {m.source_bytes:,} bytes</p>"
    )
    if m.status != "complete":
        head += f"<p class=reason>{html.escape(m.failure or 'not rendered')}</p>"
    variants = "\n".join(
        f"<figure class=variant><a class=thumb href='{html.escape(u)}'>"
        f"<img src='{html.escape(u)}' loading=lazy decoding=async alt='{html.escape(v.variant)}' "
        f"width={v.width} height={v.height}></a>"
        f"<figcaption><code>{html.escape(v.variant)}</code><br>{v.fmt.value} · "
        f"{v.width}&times;{v.height} · {v.bytes:,} bytes</figcaption></figure>"
        for v in m.variants
        for u in [_variant_url(m, v.key, policy)]
    )
    sections = [
        head,
        f"<h2>Stored variants ({len(m.variants)})</h2><div class='grid variants'>{variants}</div>",
        "<h2>URL playground</h2><section id=playground><form id=params></form>"
        "<dl id=result></dl><div class=preview><img id=preview alt='playground result'></div>"
        "</section>",
    ]
    if m.status == "complete" and m.source_width:
        sections.append(
            "<h2>Markup</h2><p><button type=button data-copy=snippet>copy</button></p>"
            f"<pre id=snippet>{html.escape(_snippet(m, policy))}</pre>"
        )
    sections += [
        "<h2>Takedown</h2><form id=takedown class=danger>"
        "<label>reason <input name=reason required placeholder='DMCA notice 42'></label> "
        "<label>actor <input name=actor required placeholder='you@example.com'></label> "
        "<button type=submit>take down</button><output id=takedown-result></output></form>",
        f"<h2>Manifest</h2><pre id=manifest>{html.escape(meta)}</pre>",
    ]
    data: dict[str, Any] = {
        "path": m.image.public_path(m.version),
        "target": f"{m.tenant}/{m.image_id}",
        "class": m.content_class.value,
        "initial": {},
    }
    if m.status == "complete" and m.source_width:
        # The playground opens on the gallery card's stored variant, so its first answer is a
        # stored object, not a full-size render.
        entries = srcset_entries(
            m.tenant, m.image_id, m.version, source_width=m.source_width,
            content_class=m.content_class, policy=policy,
        )  # fmt: skip
        data["initial"] = dict(parse_qsl(urlsplit(entries[min(1, len(entries) - 1)].url).query))
    return _page(title, "".join(sections), page="image", data=data)
