"""The pixels: admit an original (R16), then decode once and encode derivatives with libvips."""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import pyvips

from imgcore.errors import CorruptInput, ImgcoreError, InputTooLarge, UnsupportedInput
from imgcore.manifest import Placeholder
from imgcore.params import Fit, Gravity, TransformParams
from imgcore.policy import DEFAULT_POLICY, InputFormat, OutputFormat, Policy

__all__ = [
    "ENCODER_MAX_SIDE",
    "Rendered",
    "SourceInfo",
    "placeholder",
    "probe",
    "render_variants",
    "standard_params",
    "transform",
]

# The buffer loader of each input format; one is called only for a format the policy admits.
_LOADERS: Final[dict[InputFormat, str]] = {
    InputFormat.JPEG: "jpegload_buffer",
    InputFormat.PNG: "pngload_buffer",
    InputFormat.WEBP: "webpload_buffer",
    InputFormat.GIF: "gifload_buffer",
    InputFormat.AVIF: "heifload_buffer",
    InputFormat.HEIC: "heifload_buffer",
    InputFormat.TIFF: "tiffload_buffer",
    InputFormat.SVG: "svgload_buffer",
    InputFormat.PDF: "pdfload_buffer",
}

# libvips class names of the loaders above that cannot reach files or the network (checked with
# `pyvips.type_map` over `VipsForeignLoad` on libvips 8.18: GIF's is libnsgif's).
_SAFE_LOADER_CLASSES: Final = (
    "VipsForeignLoadJpegBuffer",
    "VipsForeignLoadPngBuffer",
    "VipsForeignLoadWebpBuffer",
    "VipsForeignLoadNsgifBuffer",
    "VipsForeignLoadHeifBuffer",
    "VipsForeignLoadTiffBuffer",
)

# VIPS_OPERATION_BLOCKED in VipsOperationFlags.
_OPERATION_BLOCKED: Final = 32

ENCODER_MAX_SIDE: Final[dict[OutputFormat, int]] = {
    OutputFormat.JPEG: 65_500,  # libjpeg's JPEG_MAX_DIMENSION
    OutputFormat.PNG: 2**31 - 1,  # the PNG format's own limit
    OutputFormat.WEBP: 16_383,  # libwebp's WEBP_MAX_DIMENSION
    OutputFormat.AVIF: 16_384,  # heifsave with AV1 on libvips 8.18 ("image too large" past it)
}
"""The longest side, in pixels, each output format's encoder can write (tests hold each value
against the encoder: one pixel more fails). The output pixel limit does not bound a side: an
800x20000 original is 16 MP."""

_ICC_FIELD: Final = "icc-profile-data"

# thumbnail_buffer declares a `fail_on` keyword but ignores it (libvips#5195: only the file form
# forwards it to the loader), so the load option goes in the one option string this module uses.
# "error" also stops on truncation: a cut-off upload fails instead of rendering half grey.
_FAIL_ON: Final = "error"
# libjpeg reports a scan that stops early but is closed by an end-of-image marker (a cut upload
# with FF D9 appended, or a 600-byte file that declares 9999x9999) as a warning ("premature end
# of data segment") and fills the rest with grey, so "error" publishes it as whole. JPEG decodes
# stop at the first libjpeg warning instead: the same decode, no extra pass (see
# `_decode_fail_on`). PNG keeps "error": libpng warns on benign, common things (an sRGB profile
# it knows to be slightly off), and it reports a cut stream as an error already.
_JPEG_FAIL_ON: Final = "warning"
_JPEG_SHRINK_MARGIN: Final = 2
"""How many times the output size a DCT-scaled JPEG decode keeps (see `_jpeg_shrink`)."""

# R16, at import: no loader but the safe buffer loaders above can run in this process, whoever
# calls libvips (SVG, PDF, CSV, matrix, raw and vips files stay blocked even for direct calls).
pyvips.block_untrusted_set(True)
pyvips.operation_block_set("VipsForeignLoad", True)
for _name in _SAFE_LOADER_CLASSES:
    pyvips.operation_block_set(_name, False)

# The operation cache keeps recent operations' inputs and outputs alive: each original is used
# once, so a cache hit is impossible and every entry only pins an original's bytes (and the
# pixels of its decode) until it ages out. Off costs nothing measurable per call.
pyvips.cache_set_max(0)

# Thread count is the caller's: a Lambda adapter sets VIPS_CONCURRENCY before importing pyvips.

_BMFF_AVIF: Final = frozenset({b"avif", b"avis"})
_BMFF_HEIC: Final = frozenset(
    {b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_SVG_SNIFF_BYTES: Final = 65_536
# libheif's message for a codec it was built without (HEVC in the pyvips-binary wheel).
_MISSING_CODEC: Final = "has not been built in"
# (magic bytes, offset, format); WebP also needs "RIFF" at offset 0.
_MAGIC: Final = (
    (b"\xff\xd8\xff", 0, InputFormat.JPEG),
    (b"\x89PNG\r\n\x1a\n", 0, InputFormat.PNG),
    (b"GIF87a", 0, InputFormat.GIF),
    (b"GIF89a", 0, InputFormat.GIF),
    (b"WEBP", 8, InputFormat.WEBP),
    (b"II*\x00", 0, InputFormat.TIFF),
    (b"MM\x00*", 0, InputFormat.TIFF),
    (b"II+\x00", 0, InputFormat.TIFF),  # BigTIFF
    (b"MM\x00+", 0, InputFormat.TIFF),
    (b"%PDF", 0, InputFormat.PDF),
)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What an original's header says, read without decoding its pixels.

    Attributes:
        format: The detected input format.
        width: Width as stored, before EXIF orientation.
        height: Height of one frame as stored, before EXIF orientation.
        frames: Frames or pages the header declares (1 for a still).
        orientation: EXIF orientation, 1-8 (1 when absent).
        has_alpha: Whether the image has an alpha channel.
        bands: Number of bands as stored (alpha included).
        interpretation: libvips' interpretation of the stored bands (`srgb`, `b-w`, `cmyk`, ...).
        has_icc_profile: Whether the original embeds an ICC profile (its pixels are then
            converted from that profile to sRGB; untagged pixels are taken as sRGB already).
        decode_bytes: What the loader holds at once to decode it, estimated from the header
            (0 for a loader that streams: baseline JPEG, non-interlaced PNG); admitted against
            `Limits.max_decode_bytes`.
    """

    format: InputFormat
    width: int
    height: int
    frames: int
    orientation: int
    has_alpha: bool
    bands: int
    interpretation: str
    has_icc_profile: bool
    decode_bytes: int = 0

    @property
    def display_size(self) -> tuple[int, int]:
        """`(width, height)` as displayed, after EXIF orientation: what `w` and `h` refer to."""
        if self.orientation >= 5:
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True, slots=True)
class Rendered:
    """One encoded derivative.

    Attributes:
        data: The encoded bytes.
        params: The params it was rendered for.
        width: Output width in pixels.
        height: Output height in pixels.
        ms: Wall-clock milliseconds spent producing this output. From `transform`: everything
            after admission (decode, resize, encode). From `render_variants`: this output's
            resize from the previous step of the cascade (or its crop from the master) and its
            encode; work shared by several outputs is counted once, on the first of them in
            request order, so the values of one set add up to its time after the decode.
    """

    data: bytes
    params: TransformParams
    width: int
    height: int
    ms: float

    @property
    def media_type(self) -> str:
        """The `Content-Type` of `data`."""
        return self.params.fmt.media_type


@dataclass(frozen=True, slots=True)
class _Geometry:
    """An output box: `width` x `height`, cut from a cover fit when `crop` (where `gravity`
    says, in libvips' words), and set in the middle of a transparent `canvas` when one is
    given (`fit=pad`)."""

    width: int
    height: int
    crop: bool
    gravity: str = "centre"
    canvas: tuple[int, int] | None = None

    @property
    def pixels(self) -> int:
        """The pixels of the output: the canvas's when there is one."""
        width, height = self.canvas or (self.width, self.height)
        return width * height

    @property
    def image(self) -> _Geometry:
        """The box the image itself is resized to (without its canvas)."""
        return replace(self, canvas=None) if self.canvas else self


_INTERESTING: Final = {
    Gravity.CENTER: "centre",
    Gravity.ATTENTION: "attention",
    Gravity.ENTROPY: "entropy",
}


def standard_params(policy: Policy = DEFAULT_POLICY) -> list[TransformParams]:
    """The standard variant set of a policy: every standard width in every standard format.

    Args:
        policy: The policy whose `standard` set applies.

    Returns:
        Width-only params at each format's default quality, widths ascending within each format,
        formats in the policy's order.
    """
    return [
        TransformParams(fmt=fmt, w=w, q=policy.default_quality.for_format(fmt))
        for fmt in policy.standard.formats
        for w in policy.standard.widths
    ]


def probe(data: bytes, policy: Policy = DEFAULT_POLICY) -> SourceInfo:
    """Admit an original (R16) and read its header without decoding any pixels.

    Checks, in order: the size in bytes; the format, sniffed from the magic bytes, against the
    policy's input formats; the header, read by that format's loader only; the pixel count of
    one frame; the frame count; animation against the policy; what the loader would hold at
    once (`SourceInfo.decode_bytes`) against `max_decode_bytes`.

    Args:
        data: The original's bytes.
        policy: The policy whose limits and input formats apply.

    Returns:
        The header's facts.

    Raises:
        InputTooLarge: Too many bytes, pixels or frames, or more decode memory than allowed.
        UnsupportedInput: Not an image, a format the policy does not admit (or that cannot be
            decoded safely here), or animated when the policy rejects animation.
        CorruptInput: The header of an admitted format cannot be read.
    """
    limits = policy.limits
    if len(data) > limits.max_input_bytes:
        msg = f"original is {len(data):,} bytes; allowed: at most {limits.max_input_bytes:,} bytes"
        raise InputTooLarge(msg)
    fmt = _sniff(data)
    allowed = _allowed_formats(policy)
    if fmt is None:
        msg = f"original is not an image in a recognised format; allowed: {allowed}"
        raise UnsupportedInput(msg)
    if fmt not in policy.input_formats:
        msg = f"original is {fmt.value}; allowed: {allowed}"
        raise UnsupportedInput(msg)
    loader = _LOADERS[fmt]
    if not _loader_available(loader):
        msg = (
            f"original is {fmt.value}, which this process cannot decode safely (its libvips "
            f"loader {loader} is blocked or absent); allowed: {_allowed_formats(policy, True)}"
        )
        raise UnsupportedInput(msg)
    try:
        header = getattr(pyvips.Image, loader)(data, access="sequential", fail_on=_FAIL_ON)
        frames = _int_field(header, "n-pages", 1)
        info = SourceInfo(
            format=fmt,
            width=header.width,
            height=header.height,
            frames=frames,
            orientation=_orientation(header),
            has_alpha=bool(header.hasalpha()),
            bands=header.bands,
            interpretation=str(header.interpretation),
            has_icc_profile=bool(header.get_typeof(_ICC_FIELD)),
            decode_bytes=_decode_bytes(fmt, header, frames),
        )
    except pyvips.Error as exc:
        msg = (
            f"original looks like {fmt.value} but its header cannot be read "
            f"({_libvips_reason(exc)}); allowed: complete, valid {allowed} files"
        )
        raise CorruptInput(msg) from None
    pixels = info.width * info.height
    if pixels > limits.max_input_pixels:
        msg = (
            f"original is {info.width}x{info.height} = {pixels:,} pixels; "
            f"allowed: at most {limits.max_input_pixels:,}"
        )
        raise InputTooLarge(msg)
    if info.frames > limits.max_frames:
        msg = f"original has {info.frames:,} frames; allowed: at most {limits.max_frames:,}"
        raise InputTooLarge(msg)
    if info.frames > 1 and policy.animation == "reject":
        msg = (
            f"original is animated or multi-page ({info.frames} frames); "
            "allowed: still images only (the policy rejects animation)"
        )
        raise UnsupportedInput(msg)
    if info.decode_bytes > limits.max_decode_bytes:
        msg = (
            f"original is a {info.width}x{info.height} {fmt.value} whose decoder would hold "
            f"{info.decode_bytes / _MIB:,.0f} MiB at once; allowed: at most "
            f"{limits.max_decode_bytes / _MIB:,.0f} MiB (fewer pixels, or a baseline JPEG or "
            "non-interlaced PNG, which stream)"
        )
        raise InputTooLarge(msg)
    return info


_LQIP_WIDTH: Final = 16


def placeholder(data: bytes, policy: Policy = DEFAULT_POLICY) -> Placeholder:
    """The placeholder a page shows before an image arrives: its mean colour and a tiny preview.

    Pass the smallest derivative already rendered, not the original: it is one more decode of a
    few kilobytes instead of a second decode of the original.

    Args:
        data: An image (ideally a small derivative).
        policy: The policy whose admission rules and background colour apply.

    Returns:
        The mean colour over the opaque picture (alpha flattened onto the policy's background)
        as `#rrggbb`, and a 16-pixel-wide WebP as a `data:` URI (a few hundred bytes).

    Raises:
        InputRejected: `data` is not an admissible image.
    """
    tiny = transform(
        data,
        TransformParams(fmt=OutputFormat.WEBP, w=_LQIP_WIDTH, q=policy.qualities[0]),
        policy,
    )
    image = pyvips.Image.webpload_buffer(tiny.data)
    if image.hasalpha():
        image = image.flatten(background=list(policy.encoding.background))
    if image.bands < 3:
        image = image.colourspace("srgb")
    red, green, blue = (min(255, round(image[band].avg())) for band in range(3))
    lqip = "data:image/webp;base64," + base64.b64encode(tiny.data).decode("ascii")
    return Placeholder(color=f"#{red:02x}{green:02x}{blue:02x}", lqip=lqip)


def transform(data: bytes, params: TransformParams, policy: Policy = DEFAULT_POLICY) -> Rendered:
    """Render one derivative of an original.

    The original is admitted by `probe` first. Then libvips shrinks on load (JPEG DCT scaling,
    WebP and HEIF scale-on-load) and resizes with lanczos3, applies EXIF orientation, converts
    to 8-bit sRGB (or 8-bit grey), and encodes with every piece of metadata stripped. Box rules,
    in displayed (post-orientation) pixels, never upscaling:

    * only `w`: that width, height by aspect; only `h`: likewise;
    * both: a centre crop of the cover fit, exactly `w` x `h`; a source smaller than the box
      gives the largest box of the same aspect that fits inside it;
    * neither: the source size, fitted inside the largest width x largest height breakpoint.

    Colour: an original that embeds an ICC profile (Display P3, Adobe RGB, a CMYK profile, a
    16-bit ProPhoto TIFF...) is converted from that profile to sRGB; an untagged original is
    taken as sRGB, as browsers take it, and its pixels are left as they are. CMYK without a
    profile goes through libvips' built-in CMYK profile.

    Animated originals give their first frame as a still (when the policy admits them). JPEG
    output flattens alpha onto the policy's background; PNG, WebP and AVIF keep it (an alpha
    channel that is fully opaque is dropped).

    Args:
        data: The original's bytes.
        params: Canonical params (from `canonicalize`).
        policy: The policy whose limits and encoder settings apply.

    Returns:
        The encoded derivative; its `ms` covers everything after admission.

    Raises:
        InputTooLarge: The original or the output would break a size limit, or the output
            would have a side longer than its format's encoder can write (`ENCODER_MAX_SIDE`);
            checked before any pixel is decoded. A single request is refused rather than
            silently rendered smaller than asked: the caller asked for exactly this derivative.
        UnsupportedInput: The original's format is not admitted.
        CorruptInput: The original cannot be decoded completely.
        ImgcoreError: The encoder failed (a fault, not the original's).
    """
    info = probe(data, policy)
    started = time.perf_counter()
    geometry = _plan(info, params, policy)
    _check_output(geometry, policy, params.fmt)
    image = _decode(data, info, geometry.image, _jpeg_shrink(info, geometry.image))
    return _render(_padded(image, geometry), params, policy, started)


def render_variants(
    data: bytes, params_list: Sequence[TransformParams], policy: Policy = DEFAULT_POLICY
) -> list[Rendered]:
    """Render many derivatives of one original from a single decode.

    The original is admitted and decoded once, shrunk on load to the largest output needed (a
    JPEG at the largest DCT scale that keeps twice its size, as `transform` does) and held in
    memory while the set is rendered; each other size is encoded as soon as it is made and then
    dropped. Outputs of the
    same geometry share one resized image across formats; plain (uncropped) sizes cascade from
    the largest to the smallest, each resized from the previous with lanczos3; crops are cut
    from the master. Requests that come out identical (a width past the source collapses to
    the source size) are encoded once. Each output matches `transform` of the same params to
    within resampling noise.

    An output that would exceed `policy.limits.max_output_pixels` (a 1200x15000 original at
    any width from 1280 up stays 18 MP, since nothing is upscaled) is fitted down to the
    largest size of the same aspect ratio within the limit, instead of failing the whole set:
    a variant's key names a box that the output never exceeds, never an exact size, so the
    smaller rendering is still that variant. Likewise an output with a side longer than its
    format's encoder can write (`ENCODER_MAX_SIDE`: an 800x20000 original as WebP) is fitted to
    that side. Only these outputs differ from `transform`, which refuses such a request.

    Args:
        data: The original's bytes.
        params_list: Canonical params, e.g. `standard_params(policy)`.
        policy: The policy whose limits and encoder settings apply.

    Returns:
        One `Rendered` per params, in the same order; see `Rendered.ms` for what each timing
        covers.

    Raises:
        InputTooLarge: The original breaks a size limit (checked before any pixel is
            decoded).
        UnsupportedInput: The original's format is not admitted.
        CorruptInput: The original cannot be decoded completely.
        ImgcoreError: An encoder failed (a fault, not the original's).
    """
    info = probe(data, policy)
    plans = [
        _fit_encoder(_fit_output(_plan(info, params, policy), policy), params.fmt)
        for params in params_list
    ]
    if not plans:
        return []
    display_w, display_h = info.display_size

    def scale(g: _Geometry) -> float:
        return max(g.width / display_w, g.height / display_h)

    largest = max(plans, key=scale)
    if largest.crop:
        s = scale(largest)
        master_box = _Geometry(
            min(display_w, max(1, round(display_w * s))),
            min(display_h, max(1, round(display_h * s))),
            crop=False,
        )
    else:
        master_box = largest.image
    master = _decode(data, info, master_box, _jpeg_shrink(info, master_box))

    # Milliseconds of each resize, charged to the first output in request order that uses it.
    resize_ms: dict[_Geometry, float] = {}
    encoded: dict[tuple[_Geometry, OutputFormat, int | None], Rendered] = {}

    def encode_all(geometry: _Geometry, image: Any) -> None:
        # Every output drawn from this image: itself, or set on the canvas of a `pad`.
        for params, planned in zip(params_list, plans, strict=True):
            key = (planned, params.fmt, _quality(params, policy))
            if planned.image == geometry and key not in encoded:
                shown = _padded(image, planned)
                encoded[key] = _render(shown, params, policy, time.perf_counter())

    # Memory: each size is encoded as soon as it exists and then dropped, so besides the image
    # being encoded only the master and the previous step of the cascade are held (not every
    # size of the set at once, which for a tall original was several times the master).
    for geometry in {g for g in plans if g.crop}:
        started = time.perf_counter()
        cropped = _cover_crop(master, geometry).copy_memory()
        resize_ms[geometry] = _ms_since(started)
        encode_all(geometry, cropped)
        del cropped
    previous = master
    for geometry in sorted({g.image for g in plans if not g.crop}, key=lambda g: -g.pixels):
        started = time.perf_counter()
        if geometry != master_box:
            previous = _resize(previous, geometry.width, geometry.height).copy_memory()
            resize_ms[geometry] = _ms_since(started)
        encode_all(geometry, previous)
    del master, previous

    results = []
    charged: set[tuple[_Geometry, OutputFormat, int | None]] = set()
    for params, geometry in zip(params_list, plans, strict=True):
        key = (geometry, params.fmt, _quality(params, policy))
        done = encoded[key]
        if key not in charged:
            charged.add(key)
            spent = resize_ms.pop(geometry.image, 0.0)
            results.append(replace(done, params=params, ms=done.ms + spent))
        else:  # the same bytes as an earlier output: nothing more was spent on it
            results.append(Rendered(done.data, params, done.width, done.height, ms=0.0))
    return results


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


# --- admission -------------------------------------------------------------------------------


def _sniff(data: bytes) -> InputFormat | None:
    for magic, offset, fmt in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            if fmt is InputFormat.WEBP and data[:4] != b"RIFF":
                continue
            return fmt
    if data[4:8] == b"ftyp":
        return _sniff_bmff(data)
    if _looks_like_svg(data):
        return InputFormat.SVG
    return None


def _sniff_bmff(data: bytes) -> InputFormat | None:
    size = int.from_bytes(data[:4], "big")
    if size == 0:  # the box runs to the end of the file
        size = len(data)
    end = min(size, len(data), 4096)
    if end < 16:
        return None
    brands = {data[8:12]} | {data[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & _BMFF_AVIF:
        return InputFormat.AVIF
    if brands & _BMFF_HEIC:
        return InputFormat.HEIC
    return None


def _looks_like_svg(data: bytes) -> bool:
    text = data[:_SVG_SNIFF_BYTES].decode("utf-8", errors="replace").removeprefix("\ufeff")
    # Skip the prolog: XML declaration, processing instructions, comments, a doctype.
    rest = text.lstrip()
    while rest.startswith("<?") or rest.startswith("<!"):
        if rest.startswith("<!--"):
            end, skip = rest.find("-->"), 3
        elif rest.startswith("<?"):
            end, skip = rest.find("?>"), 2
        elif "[" in rest[: rest.find(">") + 1]:  # a doctype with an internal subset
            end, skip = rest.find("]>"), 2
        else:
            end, skip = rest.find(">"), 1
        if end < 0:
            break
        rest = rest[end + skip :].lstrip()
    if rest[:4].lower() == "<svg":
        return True
    return text.lstrip().startswith("<?xml") and "<svg" in text.lower()


def _allowed_formats(policy: Policy, decodable_only: bool = False) -> str:
    formats = [
        f.value
        for f in policy.input_formats
        if not decodable_only or _loader_available(_LOADERS[f])
    ]
    return ", ".join(formats) if formats else "none"


def _loader_available(nickname: str) -> bool:
    try:
        operation = pyvips.Operation.new_from_name(nickname)
    except pyvips.Error:
        return False
    flags = int(pyvips.vips_lib.vips_operation_get_flags(operation.pointer))
    return not flags & _OPERATION_BLOCKED


_MIB: Final = 1024 * 1024
_SAMPLE_BYTES: Final = {"uchar": 1, "char": 1, "ushort": 2, "short": 2}
# Bytes per pixel that a whole-image loader holds, measured as peak RSS over the process's
# baseline by tests/imgcore/test_memory.py's cases: nsgif and libwebp's animation decoder
# composite onto an RGBA canvas (4.4-4.7 B/px at 100 MP); libheif with dav1d/aom holds its
# planes, the RGB interleave and threads' frame buffers (15 B/px for an 8-bit RGB AVIF).
_CANVAS_BYTES_PER_PIXEL: Final = 5
_HEIF_BYTES_PER_PIXEL: Final = 15
# libjpeg keeps a progressive JPEG's DCT coefficients, 2 bytes each, for every component.
_JPEG_COMPONENTS: Final = {"4:2:0": 1.5, "4:2:2": 2.0, "4:4:4": 3.0}


def _decode_bytes(fmt: InputFormat, header: Any, frames: int) -> int:
    """What `fmt`'s loader holds at once to decode `header`'s image (see `SourceInfo`)."""
    whole = float(header.bands * _SAMPLE_BYTES.get(str(header.format), 4))
    interlaced = bool(_int_field(header, "interlaced", 0))
    per_pixel = whole
    match fmt:
        case InputFormat.GIF:
            per_pixel = _CANVAS_BYTES_PER_PIXEL
        case InputFormat.WEBP if frames > 1 or header.get_typeof("delay"):
            # Animated (even with one frame): libwebp's demuxer composites onto the canvas.
            per_pixel = _CANVAS_BYTES_PER_PIXEL
        case InputFormat.AVIF | InputFormat.HEIC:
            per_pixel = max(whole, _HEIF_BYTES_PER_PIXEL)
        case InputFormat.JPEG:
            subsample = (
                str(header.get("jpeg-chroma-subsample"))
                if header.get_typeof("jpeg-chroma-subsample")
                else ""
            )
            components = _JPEG_COMPONENTS.get(subsample, float(header.bands))
            per_pixel = 2 * max(components, 1.0) if interlaced else 0.0
        case InputFormat.PNG:
            per_pixel = whole if interlaced else 0.0
    return math.ceil(int(header.width) * int(header.height) * per_pixel)


def _int_field(image: Any, name: str, default: int) -> int:
    if image.get_typeof(name) == 0:
        return default
    return int(image.get(name))


def _orientation(image: Any) -> int:
    value = _int_field(image, "orientation", 1)
    return value if 1 <= value <= 8 else 1


def _libvips_reason(exc: pyvips.Error) -> str:
    # libvips stacks its messages; skip the I/O chatter and the generic "load error" lines.
    lines = [line.strip() for line in str(getattr(exc, "detail", "") or exc).splitlines()]
    useful = [
        line
        for line in lines
        if line and not line.startswith("source:") and not line.endswith(": load error")
    ]
    return (useful or [line for line in lines if line] or ["libvips error"])[0]


# --- geometry --------------------------------------------------------------------------------


def _plan(info: SourceInfo, params: TransformParams, policy: Policy) -> _Geometry:
    display_w, display_h = info.display_size
    w, h = params.w, params.h
    if w is not None and h is not None:
        if params.fit is Fit.COVER:
            k = min(1.0, display_w / w, display_h / h)
            gravity = _INTERESTING[params.g]
            return _Geometry(max(1, round(w * k)), max(1, round(h * k)), True, gravity)
        k = min(1.0, w / display_w, h / display_h)
        inner = _Geometry(max(1, round(display_w * k)), max(1, round(display_h * k)), crop=False)
        if params.fit is Fit.CONTAIN:
            return inner
        # The box shrinks (keeping its ratio) until the image, never upscaled, meets two sides.
        c = min(1.0, max(display_w / w, display_h / h))
        canvas = (max(inner.width, round(w * c)), max(inner.height, round(h * c)))
        return replace(inner, canvas=canvas)
    if w is not None:
        tw = min(w, display_w)
        return _Geometry(tw, max(1, round(display_h * tw / display_w)), crop=False)
    if h is not None:
        th = min(h, display_h)
        return _Geometry(max(1, round(display_w * th / display_h)), th, crop=False)
    s = min(1.0, policy.widths[-1] / display_w, policy.heights[-1] / display_h)
    return _Geometry(max(1, round(display_w * s)), max(1, round(display_h * s)), crop=False)


def _fit_output(geometry: _Geometry, policy: Policy) -> _Geometry:
    """The largest box of `geometry`'s aspect ratio within the policy's output pixel limit."""
    limit = policy.limits.max_output_pixels
    if geometry.pixels <= limit:
        return geometry
    k = math.sqrt(limit / geometry.pixels)
    if geometry.canvas is not None:
        canvas_w, canvas_h = geometry.canvas
        canvas = (max(1, math.floor(canvas_w * k)), max(1, math.floor(canvas_h * k)))
        return _Geometry(
            min(canvas[0], max(1, math.floor(geometry.width * k))),
            min(canvas[1], max(1, math.floor(geometry.height * k))),
            crop=False,
            canvas=canvas if canvas[0] * canvas[1] <= limit else (canvas[0], limit // canvas[0]),
        )
    width = max(1, math.floor(geometry.width * k))
    height = max(1, math.floor(geometry.height * k))
    # Float rounding, or a side clamped at 1 pixel, can leave the product a little over.
    if width * height > limit:
        if width <= height:
            height = max(1, limit // width)
        else:
            width = max(1, limit // height)
    return _Geometry(width, height, geometry.crop, geometry.gravity)


def _check_output(geometry: _Geometry, policy: Policy, fmt: OutputFormat) -> None:
    limit = policy.limits.max_output_pixels
    if geometry.pixels > limit:
        width, height = geometry.canvas or (geometry.width, geometry.height)
        msg = (
            f"output would be {width}x{height} = {geometry.pixels:,} pixels; "
            f"allowed: at most {limit:,} (ask for a smaller w or h)"
        )
        raise InputTooLarge(msg)
    side = ENCODER_MAX_SIDE[fmt]
    width, height = geometry.canvas or (geometry.width, geometry.height)
    if max(width, height) > side:
        msg = (
            f"output would be {width}x{height}; a {fmt.value} image can be at "
            f"most {side:,} pixels a side; allowed: a smaller w or h, or a format that can hold "
            f"it ({_formats_holding(geometry)})"
        )
        raise InputTooLarge(msg)


def _formats_holding(geometry: _Geometry) -> str:
    longest = max(geometry.width, geometry.height)
    return ", ".join(f.value for f, side in ENCODER_MAX_SIDE.items() if side >= longest) or "none"


def _fit_encoder(geometry: _Geometry, fmt: OutputFormat) -> _Geometry:
    """The largest box of `geometry`'s aspect ratio whose sides `fmt`'s encoder can write."""
    side = ENCODER_MAX_SIDE[fmt]
    longest = max(geometry.canvas or (geometry.width, geometry.height))
    if longest <= side:
        return geometry
    k = side / longest

    def scaled(n: int) -> int:
        return min(side, max(1, math.floor(n * k)))

    canvas = (scaled(geometry.canvas[0]), scaled(geometry.canvas[1])) if geometry.canvas else None
    return replace(
        geometry, width=scaled(geometry.width), height=scaled(geometry.height), canvas=canvas
    )


# --- decode and resize -----------------------------------------------------------------------


def _decode(data: bytes, info: SourceInfo, geometry: _Geometry, jpeg_shrink: int = 1) -> Any:
    """Decode `data` straight to `geometry` (shrink-on-load), upright, 8-bit sRGB, in memory."""
    try:
        image = _load_thumbnail(data, geometry, jpeg_shrink, info.has_icc_profile)
        loader = image.get("vips-loader") if image.get_typeof("vips-loader") else None
        if loader != _LOADERS[info.format]:
            msg = f"libvips chose loader {loader}, expected {_LOADERS[info.format]}"
            raise CorruptInput(msg)
        image = _to_8bit(image).copy_memory()
    except pyvips.Error as exc:
        reason = _libvips_reason(exc)
        if _MISSING_CODEC in reason:
            # A HEIC needs an HEVC decoder, which the pyvips-binary wheel does not ship.
            msg = (
                f"original is a {info.format.value} whose compression this build of libvips "
                f"cannot decode ({reason}); allowed: HEIF files compressed with AV1 (AVIF); "
                "HEVC needs a libvips built with libde265"
            )
            raise UnsupportedInput(msg) from None
        msg = (
            f"original is a {info.format.value} that cannot be decoded "
            f"({reason}); allowed: complete, valid {info.format.value} files"
        )
        raise CorruptInput(msg) from None
    if (image.width, image.height) != (geometry.width, geometry.height):
        # thumbnail rounds sizes as _plan does; should one differ, the plan's size wins so that
        # every caller sees the box it was promised.
        image = _resize(image, geometry.width, geometry.height).copy_memory()
    return image


def _jpeg_shrink(info: SourceInfo, box: _Geometry) -> int:
    """The largest JPEG DCT shrink (2, 4, 8) that leaves at least twice `box`'s size.

    libjpeg's scaled IDCT is cheap but soft; lanczos3 then reduces the rest, and it needs room
    to restore the detail. With no margin (decode at the smallest scale that merely covers the
    box) the worst photo of the benchmark corpus fell to SSIM 0.74 at JPEG 640 and 0.90 at AVIF
    1280 (a detailed 18 MP photo decoded at 1/8 for 705 px); a margin of 1.5 or 2 gave 0.93 and
    0.92 there and no measurable CPU difference. Two is what libvips' thumbnail and Pillow's
    `thumbnail(reducing_gap=2)` keep, and one rule for `transform` and the master of
    `render_variants` makes a fallback render and a precomputed variant of the same params
    come out alike.
    """
    if info.format is not InputFormat.JPEG:
        return 1
    display_w, display_h = info.display_size
    for shrink in (8, 4, 2):
        if (
            display_w // shrink >= _JPEG_SHRINK_MARGIN * box.width
            and display_h // shrink >= _JPEG_SHRINK_MARGIN * box.height
        ):
            return shrink
    return 1


def _load_thumbnail(
    data: bytes, geometry: _Geometry, jpeg_shrink: int = 1, tagged: bool = False
) -> Any:
    """The one place an original's pixels are decoded (tests count calls here).

    `tagged`: the original embeds an ICC profile, so its pixels are converted from it to sRGB.
    """
    # Centre unless the request names a smart crop: the same box for every format and width
    # of one image, no extra analysis pass, and what a page author expects from a cover crop.
    crop = geometry.gravity if geometry.crop else "none"
    # Only tagged originals are colour-managed: libvips would otherwise import untagged pixels
    # with its default sRGB profile and export them to sRGB again, an identity that costs 4x
    # the decode (320 vs 77 ms for a 12 MP JPEG to 2560 px). A tagged sRGB original pays 1-8 ms
    # on that decode (3-10 %; lcms reduces sRGB -> sRGB to a near-identity), too little to
    # justify trusting a profile's name to skip it, and proving a profile is sRGB means
    # comparing its colorants and tone curves. CMYK is converted either way (thumbnail imports
    # it with the embedded profile or libvips' built-in CMYK one).
    colour: dict[str, Any] = {"export_profile": "srgb"} if tagged else {}
    fail_on = _decode_fail_on(data)
    if jpeg_shrink > 1:
        loaded = pyvips.Image.jpegload_buffer(
            data, shrink=jpeg_shrink, access="sequential", fail_on=fail_on
        )
        return loaded.thumbnail_image(
            geometry.width,
            height=geometry.height,
            size="down",
            crop=crop,
            no_rotate=False,
            linear=False,
            **colour,
        )
    return pyvips.Image.thumbnail_buffer(
        data,
        geometry.width,
        height=geometry.height,
        size="down",
        crop=crop,
        no_rotate=False,
        linear=False,
        option_string=f"fail_on={fail_on}",
        **colour,
    )


def _decode_fail_on(data: bytes) -> str:
    """The `fail_on` of a pixel decode: JPEG stops at libjpeg's first warning (see above).

    The cost on a whole JPEG is nil (the same single decode; libjpeg only calls back on a
    warning); the price is that a JPEG libjpeg warns about for a harmless reason (stray bytes
    before a marker) is refused too, with libjpeg's reason in the message: a re-save fixes it.
    """
    return _JPEG_FAIL_ON if _sniff(data) is InputFormat.JPEG else _FAIL_ON


def _to_8bit(image: Any) -> Any:
    """8-bit sRGB, or 8-bit grey for grey originals, keeping alpha; scaling 16-bit properly."""
    grey = image.interpretation in ("b-w", "grey16")
    target = "b-w" if grey else "srgb"
    if image.interpretation != target or image.format != "uchar":
        image = image.colourspace(target)
        if image.format != "uchar":
            image = image.cast("uchar")
    colour_bands = 1 if grey else 3
    if image.bands > colour_bands + 1:
        image = image.extract_band(0, n=colour_bands + int(image.hasalpha()))
    return image


def _resize(image: Any, width: int, height: int) -> Any:
    if (image.width, image.height) == (width, height):
        return image
    hscale, vscale = width / image.width, height / image.height
    # lanczos3 is thumbnail's own kernel, so a cascaded size matches an independent render.
    if image.hasalpha():
        return (
            image.premultiply()
            .resize(hscale, vscale=vscale, kernel="lanczos3")
            .unpremultiply()
            .cast("uchar")
        )
    return image.resize(hscale, vscale=vscale, kernel="lanczos3")


def _cover_crop(master: Any, geometry: _Geometry) -> Any:
    s = max(geometry.width / master.width, geometry.height / master.height)
    fitted = _resize(
        master,
        max(geometry.width, round(master.width * s)),
        max(geometry.height, round(master.height * s)),
    )
    if geometry.gravity != "centre":
        return fitted.smartcrop(geometry.width, geometry.height, interesting=geometry.gravity)
    left = (fitted.width - geometry.width) // 2
    top = (fitted.height - geometry.height) // 2
    return fitted.crop(left, top, geometry.width, geometry.height)


def _padded(image: Any, geometry: _Geometry) -> Any:
    """`image` in the middle of the transparent canvas of `geometry`, if it has one; a format
    without alpha flattens the margin onto the policy's background when it is encoded (see
    `_prepare`)."""
    if geometry.canvas is None:
        return image
    if not image.hasalpha():
        image = image.bandjoin(255)
    width, height = geometry.canvas
    left, top = (width - image.width) // 2, (height - image.height) // 2
    return image.embed(left, top, width, height, extend="background", background=[0] * image.bands)


# --- encode ----------------------------------------------------------------------------------


def _quality(params: TransformParams, policy: Policy) -> int | None:
    if not params.fmt.lossy:
        return None
    return params.q if params.q is not None else policy.default_quality.for_format(params.fmt)


def _render(image: Any, params: TransformParams, policy: Policy, started: float) -> Rendered:
    """Encode `image`; the result's `ms` counts from `started` (a `time.perf_counter()`)."""
    image = _prepare(image, params.fmt, policy)
    try:
        data = _encode(image, params, policy)
    except pyvips.Error as exc:
        msg = f"encoding {params.variant} failed: {_libvips_reason(exc)}"
        raise ImgcoreError(msg) from None
    return Rendered(data, params, image.width, image.height, _ms_since(started))


def _prepare(image: Any, fmt: OutputFormat, policy: Policy) -> Any:
    if image.hasalpha() and image[image.bands - 1].min() == 255:
        image = image.extract_band(0, n=image.bands - 1)
    if policy.metadata == "keep-icc" and image.interpretation == "b-w":
        # The embedded profile is sRGB, which describes three bands.
        image = image.colourspace("srgb")
    if image.hasalpha() and not fmt.has_alpha:
        background = list(policy.encoding.background)
        if image.bands == 2:
            image = image.colourspace("srgb")
        image = image.flatten(background=background).cast("uchar")
    return image


def _encode(image: Any, params: TransformParams, policy: Policy) -> bytes:
    encoding = policy.encoding
    metadata: dict[str, Any] = {"keep": pyvips.enums.ForeignKeep.NONE}
    if policy.metadata == "keep-icc":
        metadata = {"keep": pyvips.enums.ForeignKeep.ICC, "profile": "srgb"}
    q = _quality(params, policy)
    match params.fmt:
        case OutputFormat.JPEG:
            data = image.jpegsave_buffer(
                Q=q,
                optimize_coding=True,
                interlace=encoding.jpeg_progressive,
                **metadata,
            )
        case OutputFormat.WEBP:
            data = image.webpsave_buffer(
                Q=q, effort=encoding.webp_effort, smart_subsample=False, **metadata
            )
        case OutputFormat.AVIF:
            data = image.heifsave_buffer(
                Q=q,
                compression="av1",
                effort=encoding.avif_effort,
                bitdepth=8,
                **metadata,
            )
        case OutputFormat.PNG:
            data = image.pngsave_buffer(
                compression=encoding.png_effort, palette=False, bitdepth=8, **metadata
            )
    return bytes(data)
