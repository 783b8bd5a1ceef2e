"""Public URLs and `srcset` for other services: only canonical URLs on the policy's breakpoints."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from imgcore.errors import InvalidRequest
from imgcore.keys import ContentClass, ImageRef, validate_version
from imgcore.params import (
    Fit,
    Gravity,
    _choice,
    _requested_format,
    snap_box,
    snap_dpr,
    snap_height,
    snap_quality,
    snap_width,
)
from imgcore.policy import AUTO, DEFAULT_POLICY, OutputFormat, Policy

__all__ = ["SrcsetEntry", "build_url", "srcset", "srcset_entries"]


def _canonical_query(
    w: int | None,
    h: int | None,
    fmt: str | None,
    q: int | None,
    policy: Policy,
    *,
    dpr: float | None = None,
    fit: str | None = None,
    g: str | None = None,
) -> str:
    pairs: list[tuple[str, str]] = []
    if w is not None:
        snap_width(w, policy)  # the checks and messages of a single width
    if h is not None:
        snap_height(h, policy)
    density = 1.0 if dpr is None else snap_dpr(repr(float(dpr)).removesuffix(".0"), policy)
    width, height = snap_box(w, h, policy, density)
    chosen_fit = Fit(_choice("fit", fit, list(Fit))) if fit is not None else Fit.COVER
    chosen_g = Gravity(_choice("g", g, list(Gravity))) if g is not None else Gravity.CENTER
    if width is not None:
        pairs.append(("w", str(width)))
    if height is not None:
        pairs.append(("h", str(height)))
    if width is not None and height is not None:
        if chosen_fit is not Fit.COVER:
            pairs.append(("fit", chosen_fit.value))
        elif chosen_g is not Gravity.CENTER:
            pairs.append(("g", chosen_g.value))
    requested = _requested_format(fmt, policy) if fmt is not None else policy.default_format
    if requested != policy.default_format:
        pairs.append(("fmt", str(requested)))
    lossless = requested != AUTO and not OutputFormat(requested).lossy
    if q is not None and not lossless:
        pairs.append(("q", str(snap_quality(q, policy))))
    return "&".join(f"{name}={value}" for name, value in pairs)


def build_url(
    tenant: str,
    image_id: str,
    version: str,
    *,
    w: int | None = None,
    h: int | None = None,
    fmt: str | None = None,
    q: int | None = None,
    dpr: float | None = None,
    fit: str | None = None,
    g: str | None = None,
    base_url: str = "",
    content_class: ContentClass | str = ContentClass.STANDARD,
    policy: Policy = DEFAULT_POLICY,
) -> str:
    """The public URL of one derivative, in canonical form.

    Values are snapped exactly as the edge would snap them (287 -> 320), parameters come in the
    canonical order, a format equal to the policy's default and a `q` that PNG ignores are
    omitted: two callers asking for the same bytes always get the same URL, so they share one
    cache entry. Nothing else (no library version, no timestamp) ever enters the URL.

    Args:
        tenant: The tenant id.
        image_id: The image id (encoded here; pass it raw).
        version: The original's version.
        w: Wanted width in pixels (snapped up to a breakpoint).
        h: Wanted height in pixels (snapped up); with `w`, a cover crop.
        fmt: `jpeg`, `png`, `webp`, `avif` or `auto` (None means the policy's default).
        q: Wanted quality 1-100 (snapped up to the ladder).
        dpr: Device pixel ratio: multiplies `w` and `h` (snapped up to the policy's ladder);
            it never appears in the URL, which names the pixels it asks for.
        fit: `cover` (the default), `contain` or `pad`; kept only with both `w` and `h`.
        g: Gravity of a cover crop: `center` (the default), `attention` or `entropy`.
        base_url: Scheme and host to prepend, e.g. `https://img.example.com`.
        content_class: Standard or takedown-eligible (`ugc`).
        policy: The policy whose breakpoints apply.

    Returns:
        `{base_url}/{class}/{tenant}/{id}/{version}[?{canonical query}]`.

    Raises:
        InvalidRequest: A value is outside the policy (InvalidKey for a bad id or version).
    """
    ref = ImageRef(tenant, image_id, ContentClass(content_class))
    path = ref.public_path(validate_version(version))
    query = _canonical_query(w, h, fmt, q, policy, dpr=dpr, fit=fit, g=g)
    return f"{base_url.rstrip('/')}{path}{'?' + query if query else ''}"


@dataclass(frozen=True, slots=True)
class SrcsetEntry:
    """One candidate of a `srcset`: its URL and the width in pixels it really has."""

    url: str
    width: int

    def __str__(self) -> str:
        return f"{self.url} {self.width}w"


def srcset_entries(
    tenant: str,
    image_id: str,
    version: str,
    *,
    source_width: int | None = None,
    widths: Iterable[int] | None = None,
    fmt: str | None = None,
    q: int | None = None,
    base_url: str = "",
    content_class: ContentClass | str = ContentClass.STANDARD,
    policy: Policy = DEFAULT_POLICY,
) -> list[SrcsetEntry]:
    """The candidates of a width-described `srcset`, smallest first.

    Args:
        tenant: The tenant id.
        image_id: The image id.
        version: The original's version.
        source_width: The original's displayed width, when known: breakpoints above it would
            all return the same pixels, so only the first of them is kept, described with the
            width it really has (never upscaled).
        widths: Breakpoints to offer (each snapped); default: the policy's standard widths,
            which precompute has already rendered.
        fmt: Output format (default: the policy's default, normally `auto`).
        q: Quality (snapped).
        base_url: Scheme and host to prepend.
        content_class: Standard or takedown-eligible.
        policy: The policy whose breakpoints apply.

    Returns:
        One entry per distinct output width.

    Raises:
        InvalidRequest: A value is outside the policy.
    """
    chosen = sorted({snap_width(w, policy) for w in (widths or policy.standard.widths)})
    if source_width is not None and source_width < 1:
        msg = f"source_width must be at least 1 (got {source_width})"
        raise InvalidRequest(msg)
    entries: list[SrcsetEntry] = []
    for w in chosen:
        real = w if source_width is None else min(w, source_width)
        if entries and entries[-1].width == real:
            break
        url = build_url(
            tenant,
            image_id,
            version,
            w=w,
            fmt=fmt,
            q=q,
            base_url=base_url,
            content_class=content_class,
            policy=policy,
        )
        entries.append(SrcsetEntry(url, real))
    return entries


def srcset(
    tenant: str,
    image_id: str,
    version: str,
    *,
    source_width: int | None = None,
    widths: Iterable[int] | None = None,
    fmt: str | None = None,
    q: int | None = None,
    base_url: str = "",
    content_class: ContentClass | str = ContentClass.STANDARD,
    policy: Policy = DEFAULT_POLICY,
) -> str:
    """A `srcset` attribute value of canonical URLs (see `srcset_entries` for the arguments).

    Returns:
        `"{url} 160w, {url} 320w, ..."`.
    """
    return ", ".join(
        str(entry)
        for entry in srcset_entries(
            tenant,
            image_id,
            version,
            source_width=source_width,
            widths=widths,
            fmt=fmt,
            q=q,
            base_url=base_url,
            content_class=content_class,
            policy=policy,
        )
    )
