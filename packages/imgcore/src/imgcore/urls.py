"""Public URLs and `srcset` for other services: only canonical URLs on the policy's breakpoints."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from imgcore.errors import InvalidRequest
from imgcore.keys import ContentClass, ImageRef, validate_version
from imgcore.params import (
    Fit,
    Gravity,
    _breakpoints_text,
    _choice,
    _dpr_text,
    _number_text,
    _quality_text,
    _requested_format,
    snap_box,
    snap_dpr,
    snap_height,
    snap_quality,
    snap_width,
)
from imgcore.policy import AUTO, DEFAULT_POLICY, OutputFormat, Policy

__all__ = [
    "PARAM_CHECKS",
    "SrcsetEntry",
    "build_url",
    "density_srcset",
    "srcset",
    "srcset_entries",
]


# --- per-parameter checks: what a caller may pass, turned into what the edge would keep ------
#
# One function per query parameter, keyed by its name in `imgcore.params.PARAM_NAMES` (a test
# holds the two to the same names): it takes the caller's value, raises `InvalidRequest` (with
# the parameter as `field`) for anything the canonicalizer would not accept, and returns the
# canonical value. A new parameter is a new entry here and a line in `_canonical_query`.


def _whole_number(name: str, value: object, allowed: str) -> int:
    # bool is an int; a float (even 320.0, NaN or inf) is not a number of pixels the edge takes.
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name} must be an int (got {value!r} of type {type(value).__name__}); {allowed}"
        raise InvalidRequest(msg, field=name)
    return value


def _check_width(value: object, policy: Policy) -> int:
    # The width as asked (at least 1): with a height, the box snaps both together.
    allowed = _breakpoints_text("w", policy.widths)
    width = _whole_number("w", value, allowed)
    snap_width(width, policy)  # refuses what the edge refuses, with its message
    return width


def _check_height(value: object, policy: Policy) -> int:
    allowed = _breakpoints_text("h", policy.heights)
    height = _whole_number("h", value, allowed)
    snap_height(height, policy)
    return height


def _check_dpr(value: object, policy: Policy) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"dpr must be a finite number (got {value!r}); {_dpr_text(policy)}"
        raise InvalidRequest(msg, field="dpr")
    return snap_dpr(f"{float(value):f}", policy)


def _check_word(name: str, words: list[str]) -> Callable[[object, Policy], str]:
    def check(value: object, policy: Policy) -> str:
        if not isinstance(value, str):
            msg = f"{name} must be a str (got {value!r}); allowed: {', '.join(words)}"
            raise InvalidRequest(msg, field=name)
        return _choice(name, value, words)

    return check


def _check_format(value: object, policy: Policy) -> OutputFormat | str:
    if not isinstance(value, str):
        names = ", ".join([*(f.value for f in policy.output_formats), AUTO])
        msg = f"fmt must be a str (got {value!r} of type {type(value).__name__}); allowed: {names}"
        raise InvalidRequest(msg, field="fmt")
    return _requested_format(value, policy)


def _check_quality(value: object, policy: Policy) -> int:
    return snap_quality(_whole_number("q", value, _quality_text(policy)), policy)


PARAM_CHECKS: Final[Mapping[str, Callable[[object, Policy], object]]] = {
    "w": _check_width,
    "h": _check_height,
    "dpr": _check_dpr,
    "fit": _check_word("fit", list(Fit)),
    "g": _check_word("g", list(Gravity)),
    "fmt": _check_format,
    "q": _check_quality,
}
"""The builder's check of each query parameter, by name (see above)."""


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        msg = f"{name} must be a str (got {value!r} of type {type(value).__name__})"
        raise InvalidRequest(msg, field="path")
    return value


def _content_class(value: object) -> ContentClass:
    if isinstance(value, ContentClass):
        return value
    classes = {c.value: c for c in ContentClass}
    if isinstance(value, str) and value in classes:
        return classes[value]
    msg = f"content_class {value!r} is not a content class; allowed: {', '.join(classes)}"
    raise InvalidRequest(msg, field="path")


def _canonical_query(
    w: object,
    h: object,
    fmt: object,
    q: object,
    policy: Policy,
    *,
    dpr: object = None,
    fit: object = None,
    g: object = None,
) -> str:
    pairs: list[tuple[str, str]] = []
    width = None if w is None else int(str(PARAM_CHECKS["w"](w, policy)))
    height = None if h is None else int(str(PARAM_CHECKS["h"](h, policy)))
    density = 1.0 if dpr is None else float(str(PARAM_CHECKS["dpr"](dpr, policy)))
    chosen_fit = Fit.COVER if fit is None else Fit(str(PARAM_CHECKS["fit"](fit, policy)))
    chosen_g = Gravity.CENTER if g is None else Gravity(str(PARAM_CHECKS["g"](g, policy)))
    width, height = snap_box(width, height, policy, density)
    if width is not None:
        pairs.append(("w", str(width)))
    if height is not None:
        pairs.append(("h", str(height)))
    if width is not None and height is not None:
        if chosen_fit is not Fit.COVER:
            pairs.append(("fit", chosen_fit.value))
        elif chosen_g is not Gravity.CENTER:
            pairs.append(("g", chosen_g.value))
    requested = PARAM_CHECKS["fmt"](fmt, policy) if fmt is not None else policy.default_format
    if requested != policy.default_format:
        pairs.append(("fmt", str(requested)))
    lossless = requested != AUTO and not OutputFormat(str(requested)).lossy
    if q is not None:
        snapped = PARAM_CHECKS["q"](q, policy)  # checked even where PNG then drops it
        if not lossless:
            pairs.append(("q", str(snapped)))
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
        InvalidRequest: A value is outside the policy or of the wrong type (a float or bool
            width, an unknown content class), with `field` naming it; InvalidKey for a bad
            tenant, id or version.
    """
    for name, text in (("tenant", tenant), ("image_id", image_id), ("version", version)):
        _check_text(name, text)
    ref = ImageRef(tenant, image_id, _content_class(content_class))
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
    chosen = sorted(
        {snap_width(_check_width(w, policy), policy) for w in (widths or policy.standard.widths)}
    )
    if source_width is not None and (
        isinstance(source_width, bool) or not isinstance(source_width, int) or source_width < 1
    ):
        msg = f"source_width must be an int of at least 1 (got {source_width!r})"
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


def density_srcset(
    tenant: str,
    image_id: str,
    version: str,
    *,
    w: int | None = None,
    h: int | None = None,
    fit: str | None = None,
    g: str | None = None,
    fmt: str | None = None,
    q: int | None = None,
    base_url: str = "",
    content_class: ContentClass | str = ContentClass.STANDARD,
    policy: Policy = DEFAULT_POLICY,
) -> str:
    """A density-described `srcset` for an image shown at a fixed CSS size: one candidate per
    rung of the policy's `dprs` (`1x`, `1.5x`, `2x`, `3x`), built with `dpr` folded into the box.

    Rungs whose box snaps to the same URL as a smaller rung are left out (past the largest
    breakpoint every density asks for the same pixels), so the browser never downloads one
    image under two names.

    Returns:
        `"{url} 1x, {url} 1.5x, ..."`; the `1x` URL is what `build_url` gives for `w` and `h`.
    """
    candidates: list[str] = []
    seen: set[str] = set()
    for density in policy.dprs:
        url = build_url(
            tenant,
            image_id,
            version,
            w=w,
            h=h,
            dpr=density,
            fit=fit,
            g=g,
            fmt=fmt,
            q=q,
            base_url=base_url,
            content_class=content_class,
            policy=policy,
        )
        if url not in seen:
            seen.add(url)
            candidates.append(f"{url} {_number_text(density)}x")
    return ", ".join(candidates)
