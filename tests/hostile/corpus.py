"""The hostile-input corpus: crafted files, their expected outcome per file class, and one runner.

Every file is made here from nothing but Pillow, pyvips and byte layouts (no download), plus
the images that installed wheels ship (`installed_images`). `EXPECTATIONS` has one row per file
class: what each stage must answer (`ok` with a decoded image, or the typed imgcore error and its
HTTP status, R13). A row with `pending` names the fix (on another branch) that makes it the
documented outcome; until that fix is merged the file may still render, and the report says so.

Stages, each the real code path: `probe`, `transform`, `render_variants` (the standard set),
`precompute` (`PrecomputeService.created` over in-memory stores) and `fallback`
(`FallbackService.render` of a rewritten URI, as the fallback Lambda's handler calls it).

Tiers: `ci` files are a few KB and render in well under a second (tests/hostile/test_hostile.py);
`full` adds the large ones (tests/hostile/run.py, `scripts/hostile-corpus.sh`).
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import pyvips
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "images"

Stage = Literal["probe", "transform", "render_variants", "precompute", "fallback"]
STAGES: tuple[Stage, ...] = ("probe", "transform", "render_variants", "precompute", "fallback")


@dataclass(frozen=True, slots=True)
class Expectation:
    """What every stage answers for one file class.

    Attributes:
        outcome: `ok`, or the imgcore error class every stage raises (precompute records it as a
            `failed` manifest, the fallback answers its status).
        status: The fallback's HTTP status.
        pending: The fix, on another branch, that makes this the outcome; until it is merged the
            file may also come out `ok`.
        header_ok: `probe` reads only the header, so it may admit a file damaged past it.
    """

    outcome: str
    status: int
    pending: str | None = None
    header_ok: bool = False

    def allowed(self, stage: Stage) -> set[str]:
        """The outcomes `stage` may give (`ok` too while `pending`, or at `probe` when
        `header_ok`)."""
        if self.pending or (stage == "probe" and self.header_ok):
            return {self.outcome, "ok"}
        return {self.outcome}


EXPECTATIONS: dict[str, Expectation] = {
    "empty": Expectation("UnsupportedInput", 415),
    "one-byte": Expectation("UnsupportedInput", 415),
    "not-an-image": Expectation("UnsupportedInput", 415),
    "magic-only": Expectation("CorruptInput", 422),
    "corrupt-header": Expectation("CorruptInput", 422),
    "corrupt-data": Expectation("CorruptInput", 422, header_ok=True),
    "truncated": Expectation("CorruptInput", 422, header_ok=True),
    "truncated-jpeg": Expectation(
        "CorruptInput",
        422,
        pending="issue 18 item 3 (truncated JPEG detection in pixels.py)",
        header_ok=True,
    ),
    "not-admitted": Expectation("UnsupportedInput", 415),
    "svg": Expectation("UnsupportedInput", 415),
    "pdf-polyglot": Expectation("UnsupportedInput", 415),
    "pixel-bomb": Expectation("InputTooLarge", 422),
    "frame-bomb": Expectation("InputTooLarge", 422),
    "decode-budget-bomb": Expectation("InputTooLarge", 422),
    "polyglot": Expectation("ok", 200),
    "lying-extension": Expectation("ok", 200),
    "colour": Expectation("ok", 200),
    "bit-depth": Expectation("ok", 200),
    "palette": Expectation("ok", 200),
    "animated": Expectation("ok", 200),
    "tall": Expectation("ok", 200),
    "installed": Expectation("ok", 200),
}


@dataclass(frozen=True, slots=True)
class Case:
    """One corpus file: its name (extension as sent, possibly a lie), class and builder."""

    name: str
    file_class: str
    build: Callable[[], bytes]
    tier: Literal["ci", "full"] = "ci"


# --- builders --------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png(
    width: int,
    height: int,
    *,
    colour: int = 2,
    depth: int = 8,
    interlace: bool = False,
    rows: int | None = None,
) -> bytes:
    """A PNG written chunk by chunk (streamed through zlib, never held as pixels).

    `rows`: how many rows of image data to write (all by default); fewer declares a size the
    data does not fill, a bomb whose header alone is checked.
    """
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    out = [
        b"\x89PNG\r\n\x1a\n",
        _png_chunk(
            b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, int(interlace))
        ),
    ]
    if colour == 3:
        out.append(_png_chunk(b"PLTE", bytes(i % 256 for i in range(768))))
    compressor = zlib.compressobj(1)
    data: list[bytes] = []
    passes = (
        (
            (0, 0, 8, 8),
            (4, 0, 8, 8),
            (0, 4, 4, 8),
            (2, 0, 4, 4),
            (0, 2, 2, 4),
            (1, 0, 2, 2),
            (0, 1, 1, 2),
        )
        if interlace
        else ((0, 0, 1, 1),)
    )
    budget = sys.maxsize if rows is None else rows
    for x0, y0, dx, dy in passes:
        pass_w, pass_h = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if not pass_w or not pass_h:
            continue
        row = b"\x00" + bytes((i * 7) & 0xFF for i in range((pass_w * channels * depth + 7) // 8))
        for _ in range(min(pass_h, budget)):
            data.append(compressor.compress(row))
        budget -= min(pass_h, budget)
    data.append(compressor.flush())
    out += [_png_chunk(b"IDAT", b"".join(data)), _png_chunk(b"IEND", b"")]
    return b"".join(out)


def pillow(image: Image.Image, fmt: str, **options: object) -> bytes:
    """`image` saved by Pillow."""
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def photo(width: int = 64, height: int = 48, mode: str = "RGB") -> Image.Image:
    """A small image with structure (a gradient and a block), so encoders have work to do."""
    image = Image.linear_gradient("L").resize((width, height)).convert(mode)
    image.paste("red" if mode != "L" else 200, (width // 4, height // 4, width // 2, height // 2))
    return image


def jpeg_declaring(width: int, height: int, *, progressive: bool) -> bytes:
    """A 16x16 4:4:4 JPEG whose SOF claims `width` x `height`: only its header is ever read."""
    data = bytearray(
        pillow(photo(16, 16), "JPEG", quality=90, progressive=progressive, subsampling=0)
    )
    sof = data.find(b"\xff\xc2" if progressive else b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_lzw_bomb(width: int, height: int) -> bytes:
    """One `width` x `height` frame of colour 0 in a few tens of KB.

    LZW codes each one pixel longer than the last until the table is full, then the longest
    code over and over without a clear code (a deferred clear, which decoders must accept):
    100 MP fit in ~40 KB.
    """
    out, acc, nbits = bytearray(), 0, 0

    def emit(code: int, bits: int) -> None:
        nonlocal acc, nbits
        acc |= code << nbits
        nbits += bits
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8

    bits, next_code, length = 3, 6, 1
    emit(4, bits)  # clear
    emit(0, bits)
    done = 1
    while done < width * height:
        if next_code < 4096:
            emit(next_code, bits)
            length += 1
            next_code += 1
            if next_code == 1 << bits and bits < 12:
                bits += 1
        else:
            emit(4095, 12)
        done += length
    emit(5, bits)  # end of information
    if nbits:
        out.append(acc & 0xFF)
    blocks = b"".join(
        bytes([len(out[i : i + 255])]) + out[i : i + 255] for i in range(0, len(out), 255)
    )
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x81, 0, 0)
    palette = b"\x00\x00\x00\xff\xff\xff" * 2
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02"
    return screen + palette + frame + blocks + b"\x00\x3b"


def gif_frames(count: int) -> bytes:
    """An animated 8x8 GIF of `count` frames."""
    frames = [Image.new("L", (8, 8), i * 37 % 256) for i in range(count)]
    return pillow(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)


def _riff(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")


def webp_animated_canvas(width: int, height: int) -> bytes:
    """An animated WebP of one 1x1 frame on a `width` x `height` canvas (~90 bytes)."""
    still = pillow(Image.new("RGBA", (1, 1)), "WEBP", lossless=True)
    at = still.index(b"VP8L")
    size = struct.unpack("<I", still[at + 4 : at + 8])[0]
    frame = still[at : at + 8 + size + (size % 2)]
    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    vp8x = _riff(b"VP8X", bytes([0x12, 0, 0, 0]) + canvas)
    anim = _riff(b"ANIM", bytes(6))
    zero = (0).to_bytes(3, "little")
    anmf = _riff(b"ANMF", zero * 4 + (100).to_bytes(3, "little") + b"\x00" + frame)
    body = b"WEBP" + vp8x + anim + anmf
    return b"RIFF" + struct.pack("<I", len(body)) + body


def vips(image_bytes: bytes, suffix: str, **options: object) -> bytes:
    """Re-encode with libvips (AVIF and TIFF, which Pillow may lack)."""
    image = pyvips.Image.new_from_buffer(image_bytes, "")
    return bytes(image.write_to_buffer(suffix, **options))


def _avif() -> bytes:
    return vips(pillow(photo(), "PNG"), ".avif", Q=50, effort=0)


def _truncate(data: bytes, keep: float = 0.6) -> bytes:
    return data[: max(1, int(len(data) * keep))]


def _flip_bytes(data: bytes, start: int, count: int = 64) -> bytes:
    body = bytearray(data)
    for i in range(start, min(len(body), start + count)):
        body[i] ^= 0x5A
    return bytes(body)


def _jpeg() -> bytes:
    return pillow(photo(), "JPEG", quality=85)


def _png_with_zip() -> bytes:
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("payload.html", "<script>alert(1)</script>")
    return pillow(photo(), "PNG") + archive.getvalue()


def _jpeg_with_html() -> bytes:
    return _jpeg() + b"<html><script>alert(document.domain)</script></html>"


def _jpeg_odd_icc() -> bytes:
    # A profile that is not a profile: 132 bytes of header-shaped garbage.
    junk = b"\x00\x00\x00\x84" + b"lcms" + bytes(range(124))
    return pillow(photo(), "JPEG", icc_profile=junk)


def _grey_with_rgb_icc() -> bytes:
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return pillow(photo(mode="L"), "JPEG", icc_profile=srgb)


def _cmyk_jpeg() -> bytes:
    return pillow(photo(mode="CMYK"), "JPEG", quality=90)


def _billion_laughs() -> bytes:
    entities = "".join(
        f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10 if i else "lol"}">' for i in range(10)
    )
    return (
        f'<?xml version="1.0"?><!DOCTYPE svg [{entities}]>'
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&l9;</text></svg>'
    ).encode()


def _pdf_jpeg() -> bytes:
    return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>stream\n" + _jpeg() + b"\nendstream endobj\n"


def cases() -> list[Case]:
    """Every crafted file of the corpus, CI tier first."""
    jpeg, webp = _jpeg(), pillow(photo(), "WEBP", quality=80)
    gif, png_rgb = pillow(photo().convert("P"), "GIF"), pillow(photo(), "PNG")
    tiff = pillow(photo(), "TIFF")
    return [
        Case("empty.jpg", "empty", lambda: b""),
        Case("one-byte.png", "one-byte", lambda: b"\x89"),
        Case("text.jpg", "not-an-image", lambda: b"hello, I am not an image\n" * 4),
        Case("html.png", "not-an-image", lambda: b"<html><body>hi</body></html>"),
        Case("jpeg-magic-only.jpg", "magic-only", lambda: b"\xff\xd8\xff"),
        Case("png-signature-only.png", "magic-only", lambda: b"\x89PNG\r\n\x1a\n"),
        Case("gif-header-only.gif", "magic-only", lambda: b"GIF89a"),
        Case("webp-riff-only.webp", "magic-only", lambda: b"RIFF\x00\x00\x00\x00WEBP"),
        Case("png-bad-ihdr-crc.png", "corrupt-header", lambda: _flip_bytes(png_rgb, 16, 8)),
        Case("jpeg-garbage-body.jpg", "corrupt-data", lambda: _flip_bytes(jpeg, 200, 400)),
        Case("png-bad-idat.png", "corrupt-data", lambda: _flip_bytes(png_rgb, 60, 200)),
        Case("truncated.jpg", "truncated-jpeg", lambda: _truncate(jpeg)),
        Case(
            "truncated-progressive.jpg",
            "truncated-jpeg",
            lambda: _truncate(pillow(photo(), "JPEG", progressive=True)),
        ),
        Case("truncated.png", "truncated", lambda: _truncate(png_rgb)),
        Case("truncated.webp", "truncated", lambda: _truncate(webp)),
        Case("truncated.gif", "truncated", lambda: _truncate(gif)),
        Case("truncated.avif", "truncated", lambda: _truncate(_avif())),
        Case("truncated.tiff", "not-admitted", lambda: _truncate(tiff)),
        Case("plain.tiff", "not-admitted", lambda: tiff),
        Case("hevc.heic", "not-admitted", (FIXTURES / "hevc.heic").read_bytes),
        Case("billion-laughs.svg", "svg", _billion_laughs),
        Case("xlink-href.svg", "svg", (FIXTURES / "xlink-href.svg").read_bytes),
        Case("file-href.svg", "svg", (FIXTURES / "file-href.svg").read_bytes),
        Case("pdf-with-jpeg.jpg", "pdf-polyglot", _pdf_jpeg),
        Case("png-65535x65535.png", "pixel-bomb", lambda: png(65535, 65535, rows=1)),
        Case(
            "jpeg-65500x65500.jpg",
            "pixel-bomb",
            lambda: jpeg_declaring(65500, 65500, progressive=False),
        ),
        Case("gif-400-frames.gif", "frame-bomb", lambda: gif_frames(400)),
        Case("gif-lzw-10000x10000.gif", "decode-budget-bomb", lambda: gif_lzw_bomb(10000, 10000)),
        Case(
            "webp-canvas-10000x10000.webp",
            "decode-budget-bomb",
            lambda: webp_animated_canvas(10000, 10000),
        ),
        Case(
            "jpeg-progressive-9000x9000.jpg",
            "decode-budget-bomb",
            lambda: jpeg_declaring(9000, 9000, progressive=True),
        ),
        Case(
            "png-interlaced-rgba16-10000x9000.png",
            "decode-budget-bomb",
            lambda: png(10000, 9000, colour=6, depth=16, interlace=True, rows=1),
        ),
        Case("png-with-zip.png", "polyglot", _png_with_zip),
        Case("jpeg-with-html.jpg", "polyglot", _jpeg_with_html),
        Case("jpeg-named.png", "lying-extension", lambda: jpeg),
        Case("png-named.gif", "lying-extension", lambda: png_rgb),
        Case("webp-named.jpg", "lying-extension", lambda: webp),
        Case("cmyk.jpg", "colour", _cmyk_jpeg),
        Case("cmyk-no-profile.jpg", "colour", (FIXTURES / "cmyk-no-profile.jpg").read_bytes),
        Case("display-p3.jpg", "colour", (FIXTURES / "display-p3.jpg").read_bytes),
        Case("odd-icc.jpg", "colour", _jpeg_odd_icc),
        Case("grey-with-rgb-icc.jpg", "colour", _grey_with_rgb_icc),
        Case("rgb16.png", "bit-depth", lambda: png(48, 32, depth=16)),
        Case("grey16-alpha.png", "bit-depth", (FIXTURES / "grey16-alpha.png").read_bytes),
        Case("grey1.png", "bit-depth", lambda: png(48, 32, colour=0, depth=1)),
        Case("palette.png", "palette", lambda: png(48, 32, colour=3)),
        Case(
            "palette-trns.png",
            "palette",
            lambda: pillow(photo().convert("P"), "PNG", transparency=0),
        ),
        Case("animated-3.gif", "animated", lambda: gif_frames(3)),
        Case("animated-canvas-small.webp", "animated", lambda: webp_animated_canvas(64, 48)),
        # The full tier: large files that take seconds each (tests/hostile/run.py).
        Case("gif-lzw-8000x8000.gif", "animated", lambda: gif_lzw_bomb(8000, 8000), "full"),
        Case("png-tall-1200x15000.png", "tall", lambda: png(1200, 15000), "full"),
        Case("png-tall-rgba-1200x15000.png", "tall", lambda: png(1200, 15000, colour=6), "full"),
        Case(
            "png-interlaced-8000x8000.png", "tall", lambda: png(8000, 8000, interlace=True), "full"
        ),
        Case(
            "jpeg-progressive-8000x6000.jpg",
            "tall",
            lambda: pillow(photo(8000, 6000), "JPEG", quality=90, progressive=True),
            "full",
        ),
        Case("png-2000x50000.png", "tall", lambda: png(2000, 50000), "full"),
    ]


def installed_images(site_packages: Path | None = None) -> Iterator[Case]:
    """Images that installed wheels ship (werkzeug's icons, networkx's and sympy's baselines)."""
    roots = [Path(p) for p in sys.path if p.endswith("site-packages")]
    suffixes = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".tif", ".tiff", ".svg"}
    seen: set[str] = set()
    for root in [site_packages] if site_packages else roots:
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in suffixes and path.is_file() and path.name not in seen:
                seen.add(path.name)
                file_class = "svg" if path.suffix.lower() == ".svg" else "installed"
                rel = path.relative_to(root).as_posix()
                yield Case(rel.replace("/", "__"), file_class, path.read_bytes, "full")


# --- the stages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """What one stage made of one file.

    Attributes:
        outcome: `ok`, or the imgcore error class raised (precompute: recorded) or answered.
        status: The HTTP status (200 when ok).
        detail: The error's one-line message, or the output's size and format.
    """

    outcome: str
    status: int
    detail: str


def run_stage(stage: Stage, name: str, data: bytes) -> Result:
    """Put `data` through `stage` (see the module docstring); never raises an imgcore error."""
    from imgcore import ImageRef, ImgcoreError, content_version
    from imgcore.pixels import probe, render_variants, standard_params, transform

    params = standard_params()
    image = ImageRef("hostile", name)
    try:
        if stage == "probe":
            info = probe(data)
            return Result("ok", 200, f"{info.format.value} {info.width}x{info.height}")
        if stage == "transform":
            rendered = transform(data, params[0])
            return Result("ok", 200, _describe(rendered.data))
        if stage == "render_variants":
            outputs = render_variants(data, params)
            return Result(
                "ok",
                200,
                f"{len(outputs)} outputs, largest "
                + _describe(max(outputs, key=lambda r: r.width * r.height).data),
            )
        if stage == "precompute":
            return _precompute(image, data)
        return _fallback(image, content_version(data), data, params[0])
    except ImgcoreError as exc:
        return Result(type(exc).__name__, exc.http_status, str(exc))


def _describe(data: bytes) -> str:
    """Decode what was encoded: its loader and size, so `ok` means a real image came out."""
    image = pyvips.Image.new_from_buffer(data, "")
    return f"{image.get('vips-loader')} {image.width}x{image.height} {image.interpretation}"


class _Observed:
    """The real pixels port, remembering the imgcore error it raised (the services keep only
    its message)."""

    def __init__(self) -> None:
        self.raised: str | None = None

    def __call__(self, fn: Callable[..., _T], *args: object) -> _T:
        from imgcore import ImgcoreError

        try:
            return fn(*args)
        except ImgcoreError as exc:
            self.raised = type(exc).__name__
            raise


_T = TypeVar("_T")


def _precompute(image: object, data: bytes) -> Result:
    from imgcdn_precompute.service import Action, PixelRenderer, PrecomputeService
    from imgcore import ImageRef
    from imgcore.storage import MemoryStore

    assert isinstance(image, ImageRef)
    observed, real = _Observed(), PixelRenderer()

    class Renderer:
        def probe(self, *args: Any) -> Any:
            return observed(real.probe, *args)

        def render(self, *args: Any) -> Any:
            return observed(real.render, *args)

        def placeholder(self, *args: Any) -> Any:
            return observed(real.placeholder, *args)

    originals, derivatives = MemoryStore(), MemoryStore()
    originals.put(image.source_key, data)
    service = PrecomputeService(originals, derivatives, renderer=Renderer(), upload_workers=1)
    outcome = service.created(image.source_key)
    if outcome.action is Action.RENDERED:
        assert outcome.manifest is not None
        return Result("ok", 200, f"{len(outcome.manifest.variants)} variants stored")
    return Result(observed.raised or "error", 0, f"{outcome.action.value}: {outcome.reason}")


def _fallback(image: object, version: str, data: bytes, params: object) -> Result:
    from imgcdn_edge.service import FallbackService
    from imgcore import ImageRef, transform
    from imgcore.keys import DerivativeKey
    from imgcore.params import TransformParams
    from imgcore.storage import MemoryStore

    assert isinstance(image, ImageRef)
    assert isinstance(params, TransformParams)
    observed = _Observed()
    originals, derivatives = MemoryStore(), MemoryStore()
    originals.put(image.source_key, data)
    service = FallbackService(
        originals, derivatives, transform=lambda *args: observed(transform, *args)
    )
    answer = service.render(DerivativeKey(image, version, params).uri)
    if answer.status == 200:
        return Result("ok", 200, _describe(answer.body))
    return Result(observed.raised or "error", answer.status, answer.detail or "")
