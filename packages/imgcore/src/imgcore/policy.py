"""The policy as data: breakpoints, quality ladder, formats, limits, the standard variant set."""

from __future__ import annotations

import itertools
import json
import math
import re
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache
from typing import Literal, NamedTuple, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AUTO",
    "DEFAULT_POLICY",
    "TAKEDOWN_BOUND_SECONDS",
    "CacheTtls",
    "DefaultQuality",
    "Encoding",
    "InputFormat",
    "Limits",
    "OutputFormat",
    "Policy",
    "Ratio",
    "StandardSet",
]

AUTO: Literal["auto"] = "auto"
"""The requested format that the edge resolves from `Accept` (R3); never part of a key."""


class OutputFormat(StrEnum):
    """A concrete output format: what a derivative key names and a response carries."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    AVIF = "avif"

    @property
    def media_type(self) -> str:
        """The `Content-Type` of this format."""
        return f"image/{self.value}"

    @property
    def has_alpha(self) -> bool:
        """Whether this format can carry transparency."""
        return self is not OutputFormat.JPEG

    @property
    def lossy(self) -> bool:
        """Whether `q` means anything for this format (PNG output is lossless)."""
        return self is not OutputFormat.PNG


class InputFormat(StrEnum):
    """A format an original may arrive in; the policy admits a subset (R16)."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    GIF = "gif"
    AVIF = "avif"
    HEIC = "heic"
    TIFF = "tiff"
    # Loaders that can reach files or the network: recognised, never admitted (R16).
    SVG = "svg"
    PDF = "pdf"


_Frozen = ConfigDict(frozen=True, extra="forbid")


class Ratio(NamedTuple):
    """One rung of the aspect-ratio ladder: `a:b` as written, and as whole numbers."""

    text: str
    """As the policy writes it, e.g. `16:9` or `1.91:1`."""
    width: int
    """`a` scaled to a whole number (1.91:1 is 191:100)."""
    height: int
    """`b` on the same scale."""

    @property
    def value(self) -> float:
        """Width over height."""
        return self.width / self.height

    def height_for(self, width: int) -> int:
        """The height of a `width`-wide box of this ratio, rounded half up, at least 1."""
        return max(1, (2 * width * self.height + self.width) // (2 * self.width))


_DECIMAL = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,2})?")


@lru_cache(maxsize=16)
def _parse_ratios(texts: tuple[str, ...]) -> tuple[Ratio, ...]:
    rungs = []
    for text in texts:
        a, sep, b = text.partition(":")
        try:
            if not sep or not all(_DECIMAL.fullmatch(part) for part in (a, b)):
                raise ValueError(text)
            fa, fb = Fraction(a), Fraction(b)
            if fa <= 0 or fb <= 0:
                raise ValueError(text)
        except (ValueError, ZeroDivisionError):
            msg = f"ratio {text!r} is not valid; allowed: 'a:b' with a, b > 0, e.g. 16:9 or 1.91:1"
            raise ValueError(msg) from None
        whole = fa / fb
        rungs.append(Ratio(text, whole.numerator, whole.denominator))
    return tuple(rungs)


TAKEDOWN_BOUND_SECONDS = 60
"""R9: takedown-eligible content is served at most this long after it is taken down."""

# Formats that are sniffed (so a refusal can name them) but can never be admitted: see
# `Policy.input_formats`.
_BLOCKED_INPUTS = frozenset({InputFormat.SVG, InputFormat.PDF})


class Limits(BaseModel):
    """What an original may weigh before it is decoded, and what an output may become (R16)."""

    model_config = _Frozen

    max_input_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    """50 MiB: the largest real camera JPEGs are ~25 MB; beyond that is not a photo upload."""
    max_input_pixels: int = Field(default=100_000_000, gt=0)
    """100 MP: a 48 MP phone photo fits twice; a decompression bomb (65535x65535 PNG) does not."""
    max_frames: int = Field(default=300, gt=0)
    """Frames/pages an original may declare in its header. 300 is 10 s of a 30 fps GIF, longer
    than the animations a page shows; only the first frame is rendered, but the GIF and WebP
    loaders walk every frame to count them, so a bigger count only costs time."""
    max_output_pixels: int = Field(default=4096 * 4096, gt=0)
    """16.8 MP (4096x4096, 50 MB of 8-bit RGB): bounds the memory of one resize and encode.
    `transform` refuses a request whose output would be larger; `render_variants` fits such a
    variant down to the largest size of the same aspect within it, so a tall original (a
    1200x15000 infographic, which no width breakpoint shrinks) still gets its whole set."""
    max_decode_bytes: int = Field(default=384 * 1024 * 1024, gt=0)
    """384 MiB: what a loader may hold at once for an original, estimated from its header before
    any pixel is decoded (`SourceInfo.decode_bytes`). Declared pixels alone do not bound
    memory: a 40 KB GIF or a 90-byte animated WebP can declare a 100 MP canvas that the loader
    fills as RGBA (~0.45 GB measured), while a 100 MP baseline JPEG or plain PNG streams in a few
    MB. Loaders that hold the whole image (GIF and animated WebP canvases, interlaced PNG,
    progressive JPEG coefficients, AVIF/HEIC, TIFF, still WebP) are charged their measured bytes
    per pixel; streaming ones nothing beyond the output. 384 MiB admits a 48 MP progressive phone
    JPEG (~144 MB), a 64 MP interlaced PNG and a 24 MP AVIF (~360 MB measured); it refuses the
    100 MP GIF and WebP canvases."""
    max_render_bytes: int = Field(default=1024 * 1024 * 1024, gt=0)
    """1 GiB: the stated peak memory of one `transform` or `render_variants` call above the
    process's baseline. It is not measured per call: it follows from `max_decode_bytes` (the
    loader), `max_output_pixels` (the largest image held, ~67 MB as RGBA) and the encoders at
    that size (AVIF with alpha ~0.45 GB for 16.8 MP; `render_variants` keeps at most the master
    and one cascade step besides the image being encoded). `tests/imgcore/test_memory.py` holds
    each crafted worst case under it in a subprocess. Deployments size a render process from it:
    the fallback Lambda and the precompute worker render one original at a time, so their memory
    is this plus the runtime; the local stack renders at most `imgcdn_local.stack.RENDER_SLOTS`
    at once."""

    @model_validator(mode="after")
    def _check_memory(self) -> Self:
        if self.max_decode_bytes >= self.max_render_bytes:
            msg = (
                f"max_decode_bytes ({self.max_decode_bytes:,}) must be below max_render_bytes "
                f"({self.max_render_bytes:,}): a render holds the decode and its outputs"
            )
            raise ValueError(msg)
        return self


class DefaultQuality(BaseModel):
    """The quality used when a request has no `q`; each value must be a rung of the ladder."""

    model_config = _Frozen

    jpeg: int = 80
    webp: int = 80
    avif: int = 60
    """AVIF at 60 looks like JPEG at 80 in half the bytes."""

    def for_format(self, fmt: OutputFormat) -> int | None:
        """The default `q` of `fmt`, or None for a lossless format."""
        match fmt:
            case OutputFormat.JPEG:
                return self.jpeg
            case OutputFormat.WEBP:
                return self.webp
            case OutputFormat.AVIF:
                return self.avif
            case OutputFormat.PNG:
                return None


class Encoding(BaseModel):
    """Encoder settings: the size/latency trade-off of each output format."""

    model_config = _Frozen

    avif_effort: int = Field(default=2, ge=0, le=9)
    """libvips heifsave effort (0 fastest, 9 smallest). AVIF dominates CPU."""
    webp_effort: int = Field(default=4, ge=0, le=6)
    """libvips webpsave effort; 4 is libwebp's own default balance."""
    jpeg_progressive: bool = True
    """Progressive JPEG: smaller above ~10 KB and renders early on slow links."""
    png_effort: int = Field(default=6, ge=1, le=9)
    """zlib compression level for PNG output."""
    background: tuple[int, int, int] = (255, 255, 255)
    """Colour that alpha is flattened onto when the output format has no alpha channel."""


class StandardSet(BaseModel):
    """The variants that precompute renders for every upload: widths x formats at default q."""

    model_config = _Frozen

    widths: tuple[int, ...] = (160, 320, 480, 640, 960, 1280, 1920, 2560)
    formats: tuple[OutputFormat, ...] = (OutputFormat.AVIF, OutputFormat.WEBP, OutputFormat.JPEG)


class CacheTtls(BaseModel):
    """`Cache-Control` max-ages, the same from precompute, fallback and edge (R9, R11, R13)."""

    model_config = _Frozen

    immutable: int = Field(default=31_536_000, gt=0)
    """One year for versioned standard content: a version never changes (R7)."""
    takedown: int = Field(default=60, gt=0, le=60)
    """Takedown-eligible content: at most 60 s at the edge and in browsers (R9)."""
    client_error: int = Field(default=10, ge=0, le=300)
    """4xx answers: short, explicit, so a fixed mistake is visible within seconds (R13)."""
    immutable_stale_while_revalidate: int = Field(default=86_400, ge=0)
    """Standard content past its max-age is served while the edge refetches it in the
    background: safe, since a versioned URL's bytes never change (R7)."""
    immutable_stale_if_error: int = Field(default=604_800, ge=0)
    """Standard content past its max-age is served for this long while the origin answers 5xx
    or cannot be reached: a week rides out a regional outage, and the bytes are still right."""
    takedown_stale_if_error: int = Field(default=0, ge=0, le=59)
    """Takedown-eligible content past its max-age, served while the origin fails. A takedown
    deletes the objects and the edge answers from the origin within `takedown` seconds, even if
    the invalidation lags (R10); a stale copy would outlive that bound while the origin fails, so
    `takedown + takedown_stale_if_error` may not pass 60 s (R9) and the default is none."""

    @model_validator(mode="after")
    def _check_takedown_bound(self) -> Self:
        total = self.takedown + self.takedown_stale_if_error
        if total > TAKEDOWN_BOUND_SECONDS:
            msg = (
                f"takedown ({self.takedown}) + takedown_stale_if_error "
                f"({self.takedown_stale_if_error}) is {total} s; takedown-eligible content may "
                f"be served at most {TAKEDOWN_BOUND_SECONDS} s after a takedown, stale or not "
                "(R9): lower one of them"
            )
            raise ValueError(msg)
        return self

    @property
    def immutable_stale(self) -> int:
        """The longest a standard object is kept past its max-age (either stale window)."""
        return max(self.immutable_stale_while_revalidate, self.immutable_stale_if_error)


class Policy(BaseModel):
    """Everything that decides which derivatives exist and how they are made.

    One frozen value: imgcore applies it, the CloudFront Function and the CDK cache policy are
    generated from its JSON (R5), and changing a breakpoint or the ladder is a cache-key
    migration (R1).
    """

    model_config = _Frozen

    widths: tuple[int, ...] = (160, 320, 480, 640, 960, 1280, 1920, 2560)
    """Width breakpoints; a requested `w` snaps up to the next one, never past the last (R2)."""
    heights: tuple[int, ...] = (160, 320, 480, 640, 960, 1280, 1920, 2560)
    """Height breakpoints, snapped like widths, for a request that names only a height."""
    ratios: tuple[str, ...] = (
        "9:16",
        "2:3",
        "3:4",
        "4:5",
        "1:1",
        "5:4",
        "4:3",
        "3:2",
        "16:9",
        "1.91:1",
        "2:1",
        "21:9",
    )
    """The aspect ratios a request with both `w` and `h` keeps, in increasing order: the
    requested `w/h` snaps to the nearest (in log scale), the width to its breakpoint, and the
    height follows. Each rung is a shape products ask for: 1:1 avatars and grids, 4:5 and 9:16
    portrait feeds and stories, 2:3 and 3:4 portrait photos and product shots, 5:4 and 4:3
    classic photo and tablet frames, 3:2 camera frames and product cards, 16:9 video and hero
    banners, 1.91:1 Open Graph link cards, 2:1 wide social cards, 21:9 ultra-wide banners.
    Neighbours are 5-25 % apart, so a request lands within 12 % of its ratio; 12 rungs times
    8 widths is 96 boxes per format, fit and quality, which keeps the key space bounded."""
    dprs: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)
    """Device-pixel-ratio ladder: `dpr` snaps up to one of these and multiplies `w` and `h`
    before they snap, so `w=320&dpr=2` is the same key as `w=640`. 3 is the densest phone
    screen; past it nobody can see the difference."""
    qualities: tuple[int, ...] = (40, 50, 60, 70, 80, 90)
    """The quality ladder: a requested `q` (1-100) snaps up to the next rung, clamped at the top."""
    default_quality: DefaultQuality = DefaultQuality()
    output_formats: tuple[OutputFormat, ...] = (
        OutputFormat.AVIF,
        OutputFormat.WEBP,
        OutputFormat.JPEG,
        OutputFormat.PNG,
    )
    """Formats a request may name (`jpg` is accepted as an alias of `jpeg`)."""
    default_format: OutputFormat | Literal["auto"] = AUTO
    """What a request without `fmt` gets: `auto` negotiates from `Accept`."""
    auto_preference: tuple[OutputFormat, ...] = (OutputFormat.AVIF, OutputFormat.WEBP)
    """`fmt=auto` picks the first of these that `Accept` names explicitly with q > 0 (R3)."""
    auto_fallback: OutputFormat = OutputFormat.JPEG
    """`fmt=auto` for clients that name none of the above; PNG keeps alpha for such clients."""
    input_formats: tuple[InputFormat, ...] = (
        InputFormat.JPEG,
        InputFormat.PNG,
        InputFormat.WEBP,
        InputFormat.GIF,
        InputFormat.AVIF,
    )
    """Original formats admitted. SVG and PDF cannot be listed: their libvips loaders can read
    files or the network, so imgcore blocks them for the whole process at import (R16), and a
    policy naming them would promise decodes that cannot happen. HEIC needs a libvips whose
    libheif has an HEVC decoder, which the pyvips-binary wheel lacks."""
    limits: Limits = Limits()
    metadata: Literal["strip", "keep-icc"] = "strip"
    """Output metadata: `strip` removes EXIF, GPS, XMP, IPTC and ICC (pixels are sRGB, which is
    what browsers assume for untagged images); `keep-icc` also embeds the sRGB profile."""
    animation: Literal["first-frame", "reject"] = "first-frame"
    """Animated originals (GIF, WebP): render the first frame as a still, or refuse them."""
    encoding: Encoding = Encoding()
    standard: StandardSet = StandardSet()
    ttl: CacheTtls = CacheTtls()

    @model_validator(mode="after")
    def _check(self) -> Self:
        self._check_ladders()
        self._check_formats()
        return self

    @property
    def ratio_ladder(self) -> tuple[Ratio, ...]:
        """The ratio ladder, parsed (see `ratios`)."""
        return _parse_ratios(self.ratios)

    @property
    def ratio_thresholds(self) -> tuple[float, ...]:
        """Between each pair of neighbouring rungs, the geometric mean of their values rounded
        to 4 decimals (short in the Function, exact in both languages): a ratio below
        `thresholds[i]` snaps to rung `i` or lower (see `imgcore.params`)."""
        values = [r.value for r in self.ratio_ladder]
        return tuple(round(math.sqrt(a * b), 4) for a, b in itertools.pairwise(values))

    def _check_ladders(self) -> None:
        ratios = [r.value for r in self.ratio_ladder]
        if not ratios or ratios != sorted(set(ratios)) or len(ratios) > 24:
            msg = (
                f"ratios must be 1-24 distinct rungs in increasing order of width/height; "
                f"got {list(self.ratios)}"
            )
            raise ValueError(msg)
        dprs = list(self.dprs)
        if not dprs or dprs != sorted(set(dprs)) or dprs[0] <= 0 or dprs[-1] > 8:
            msg = f"dprs must be a non-empty, strictly increasing list in (0, 8]; got {dprs}"
            raise ValueError(msg)
        for name in ("widths", "heights", "qualities"):
            values: tuple[int, ...] = getattr(self, name)
            if not values or list(values) != sorted(set(values)):
                msg = f"{name} must be a non-empty, strictly increasing list; got {list(values)}"
                raise ValueError(msg)
        for name, top in (("widths", 16383), ("heights", 16383), ("qualities", 100)):
            values = getattr(self, name)
            if values[0] < 1 or values[-1] > top:
                msg = f"{name} must lie in 1..{top}; got {list(values)}"
                raise ValueError(msg)
        for fmt in OutputFormat:
            q = self.default_quality.for_format(fmt)
            if q is not None and q not in self.qualities:
                msg = (
                    f"default_quality.{fmt.value}={q} is not a rung of the quality ladder "
                    f"{list(self.qualities)}"
                )
                raise ValueError(msg)
        for w in self.standard.widths:
            if w not in self.widths:
                msg = f"standard width {w} is not a width breakpoint {list(self.widths)}"
                raise ValueError(msg)

    def _check_formats(self) -> None:
        blocked = [f.value for f in self.input_formats if f in _BLOCKED_INPUTS]
        if blocked:
            admissible = ", ".join(f.value for f in InputFormat if f not in _BLOCKED_INPUTS)
            msg = (
                f"input_formats names {', '.join(blocked)}: their libvips loaders can read local "
                "files and the network, so imgcore blocks them in every process at import "
                f"(R16) and no tenant can opt in; allowed: {admissible}"
            )
            raise ValueError(msg)
        if not self.output_formats:
            msg = "output_formats must name at least one format"
            raise ValueError(msg)
        named = [
            *(("auto_preference", f) for f in self.auto_preference),
            ("auto_fallback", self.auto_fallback),
            *(("standard.formats", f) for f in self.standard.formats),
        ]
        if self.default_format != AUTO:
            named.append(("default_format", OutputFormat(self.default_format)))
        for field, fmt in named:
            if fmt not in self.output_formats:
                allowed = ", ".join(f.value for f in self.output_formats)
                msg = f"{field} names {fmt.value}, which is not one of output_formats ({allowed})"
                raise ValueError(msg)

    def to_json(self) -> str:
        """The policy as canonical JSON (sorted keys), for the JS Function and the CDK app."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


DEFAULT_POLICY = Policy()
"""The defaults every package uses unless a deployment says otherwise."""
