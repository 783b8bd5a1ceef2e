"""imgcore.pixels: admission (R16), one derivative, and the standard set from one decode."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pyvips
from PIL import Image, ImageCms
from pydantic import ValidationError

from imgcore import pixels
from imgcore.errors import CorruptInput, ImgcoreError, InputTooLarge, UnsupportedInput
from imgcore.params import TransformParams
from imgcore.policy import DEFAULT_POLICY, InputFormat, Limits, OutputFormat, Policy, StandardSet

FIXTURES = Path(__file__).parents[1] / "fixtures" / "images"
JPEG, PNG, WEBP, AVIF = OutputFormat.JPEG, OutputFormat.PNG, OutputFormat.WEBP, OutputFormat.AVIF
ALL_FORMATS = (JPEG, PNG, WEBP, AVIF)
MAGIC: dict[OutputFormat, Callable[[bytes], bool]] = {
    JPEG: lambda b: b.startswith(b"\xff\xd8\xff"),
    PNG: lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    WEBP: lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    AVIF: lambda b: b[4:12] == b"ftypavif",
}
LOADER = {
    JPEG: "jpegload_buffer",
    PNG: "pngload_buffer",
    WEBP: "webpload_buffer",
    AVIF: "heifload_buffer",
}
METADATA_FIELDS = ("exif-data", "xmp-data", "iptc-data", "icc-profile-data")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def params(fmt: OutputFormat, w: int | None = None, h: int | None = None) -> TransformParams:
    return TransformParams(fmt=fmt, w=w, h=h, q=DEFAULT_POLICY.default_quality.for_format(fmt))


def decode(rendered: pixels.Rendered) -> Any:
    """Decode an output, checking its magic bytes, loader, size and media type on the way."""
    fmt = rendered.params.fmt
    assert MAGIC[fmt](rendered.data), rendered.data[:16]
    assert rendered.media_type == f"image/{fmt.value}"
    image = pyvips.Image.new_from_buffer(rendered.data, "")
    assert image.get("vips-loader") == LOADER[fmt]
    assert (image.width, image.height) == (rendered.width, rendered.height)
    assert image.format == "uchar"
    return image


def pixel(image: Any, x: int, y: int) -> list[float]:
    return list(image.getpoint(x, y))


def close(actual: list[float], expected: tuple[float, ...] | list[float], tol: float) -> bool:
    return len(actual) == len(expected) and all(
        abs(a - e) <= tol for a, e in zip(actual, expected, strict=True)
    )


def encode(image: Any, fmt: str = "png", **options: Any) -> bytes:
    options.setdefault("keep", pyvips.enums.ForeignKeep.NONE)
    return bytes(getattr(image, f"{fmt}save_buffer")(**options))


def solid(width: int, height: int, colour: tuple[int, ...]) -> Any:
    interpretation = "b-w" if len(colour) <= 2 else "srgb"
    base = pyvips.Image.black(width, height, bands=len(colour)) + list(colour)
    return base.cast("uchar").copy(interpretation=interpretation)


def photo_like(width: int, height: int) -> Any:
    """Smooth gradients plus fine texture and noise: enough detail to show resampling errors."""
    xyz = pyvips.Image.xyz(width, height)
    x, y = xyz[0], xyz[1]
    r = x * (255 / width)
    g = y * (255 / height)
    b = ((x / 7.0).sin() * (y / 11.0).cos() + 1) * 127
    noise = pyvips.Image.gaussnoise(width, height, sigma=12, mean=0)
    image = r.bandjoin([g + noise, b]).gaussblur(0.7)
    return image.cast("uchar").copy(interpretation="srgb")


def psnr(a: Any, b: Any) -> float:
    assert (a.width, a.height, a.bands) == (b.width, b.height, b.bands)
    mse = ((a.cast("float") - b.cast("float")) ** 2).avg()
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


@pytest.fixture
def photo_jpeg() -> bytes:
    return encode(photo_like(1600, 1000), "jpeg", Q=92)


# --- import-time loader safety ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["file-href.svg", "xlink-href.svg"])
def test_svg_is_refused_by_the_default_policy(name: str) -> None:
    with pytest.raises(UnsupportedInput, match=r"original is svg; allowed: jpeg, png, webp"):
        pixels.transform(fixture(name), params(PNG, w=160))


@pytest.mark.parametrize("blocked", [InputFormat.SVG, InputFormat.PDF])
def test_a_policy_cannot_admit_svg_or_pdf(blocked: InputFormat) -> None:
    with pytest.raises(
        ValidationError,
        match=rf"input_formats names {blocked.value}: their libvips loaders can read local files "
        r"and the network, so imgcore blocks them in every process at import \(R16\) and no "
        r"tenant can opt in; allowed: jpeg, png, webp, gif, avif, heic, tiff",
    ):
        Policy(input_formats=(InputFormat.JPEG, blocked))


@pytest.mark.parametrize("name", ["file-href.svg", "xlink-href.svg"])
def test_svg_in_an_unvalidated_policy_is_still_refused_while_its_loader_is_blocked(
    name: str,
) -> None:
    # model_construct skips the validator: admission still checks the loader itself.
    policy = Policy.model_construct(input_formats=(InputFormat.JPEG, InputFormat.SVG))
    with pytest.raises(UnsupportedInput, match=r"svg.*svgload_buffer is blocked.*allowed: jpeg$"):
        pixels.probe(fixture(name), policy)


@pytest.mark.parametrize("name", ["file-href.svg", "xlink-href.svg"])
def test_svg_loader_is_blocked_for_direct_libvips_calls(name: str) -> None:
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_buffer(fixture(name), "")
    with pytest.raises(pyvips.Error, match="blocked"):
        pyvips.Image.svgload_buffer(fixture(name))
    with pytest.raises(pyvips.Error):
        pyvips.Image.thumbnail_buffer(fixture(name), 64)


def test_file_loaders_are_blocked_for_direct_libvips_calls(tmp_path: Path) -> None:
    csv = tmp_path / "table.csv"
    csv.write_text("1 2 3\n4 5 6\n")
    matrix = tmp_path / "table.mat"
    matrix.write_text("2 2\n1 2\n3 4\n")
    for path in (csv, matrix):
        with pytest.raises(pyvips.Error, match="not a known file format"):
            pyvips.Image.new_from_file(str(path))
    with pytest.raises(pyvips.Error, match="blocked"):
        pyvips.Image.csvload(str(csv))
    with pytest.raises(pyvips.Error, match="blocked"):
        pyvips.Image.matrixload(str(matrix))
    # Even the safe formats cannot be read from a file path: only the buffer loaders run.
    png = tmp_path / "x.png"
    png.write_bytes(encode(solid(4, 4, (1, 2, 3))))
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_file(str(png))


def test_pdf_in_an_unvalidated_policy_is_refused_without_a_loader() -> None:
    policy = Policy.model_construct(input_formats=(InputFormat.PDF, InputFormat.PNG))
    with pytest.raises(UnsupportedInput, match=r"original is pdf.*allowed: png$"):
        pixels.probe(b"%PDF-1.7\n1 0 obj <<>> endobj\n", policy)


# --- admission --------------------------------------------------------------------------------


def test_probe_reads_the_header() -> None:
    info = pixels.probe(fixture("orientation-6.jpg"))
    assert info == pixels.SourceInfo(
        format=InputFormat.JPEG,
        width=40,
        height=20,
        frames=1,
        orientation=6,
        has_alpha=False,
        bands=3,
        interpretation="srgb",
        has_icc_profile=False,
    )
    assert info.display_size == (20, 40)
    gif = pixels.probe(fixture("animated-3-frames.gif"))
    assert (gif.format, gif.frames, gif.width, gif.height) == (InputFormat.GIF, 3, 16, 16)
    rgba = pixels.probe(fixture("rgba.png"))
    assert (rgba.has_alpha, rgba.bands, rgba.display_size) == (True, 4, (48, 16))
    assert pixels.probe(fixture("cmyk-no-profile.jpg")).interpretation == "cmyk"
    assert pixels.probe(fixture("display-p3.jpg")).has_icc_profile


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world, not an image", bytes(range(256)) * 4, b"\x00\x00\x00\x18ftypisom"],
    ids=["empty", "text", "random", "mp4"],
)
def test_unrecognised_bytes_are_unsupported(data: bytes) -> None:
    with pytest.raises(
        UnsupportedInput, match=r"not an image in a recognised format; allowed: jpeg, png"
    ):
        pixels.transform(data, params(JPEG, w=160))


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + bytes(16)


@pytest.mark.parametrize(
    ("data", "detected"),
    [
        (encode(solid(4, 4, (1, 2, 3)), "tiff"), "tiff"),
        (_ftyp(b"mif1", b"mif1", b"avif"), "avif"),
        (_ftyp(b"avis", b"msf1"), "avif"),
        (_ftyp(b"heic", b"mif1"), "heic"),
        (_ftyp(b"mif1", b"heic"), "heic"),
        (b"%PDF-1.4\n", "pdf"),
    ],
)
def test_formats_outside_the_policy_are_named_and_refused(data: bytes, detected: str) -> None:
    policy = Policy(input_formats=(InputFormat.JPEG, InputFormat.PNG))
    with pytest.raises(UnsupportedInput, match=rf"original is {detected}; allowed: jpeg, png$"):
        pixels.probe(data, policy)


def test_tiff_is_decoded_when_the_policy_admits_it() -> None:
    policy = Policy(input_formats=(InputFormat.TIFF,))
    data = encode(solid(32, 16, (10, 20, 30)), "tiff")
    out = decode(pixels.transform(data, params(PNG, w=16), policy))
    assert (out.width, out.height) == (16, 8)
    assert pixel(out, 8, 4) == [10, 20, 30]


def test_oversize_bytes_are_too_large_before_anything_else() -> None:
    policy = Policy(limits=Limits(max_input_bytes=100))
    with pytest.raises(InputTooLarge, match=r"original is 1,796 bytes; allowed: at most 100 bytes"):
        pixels.transform(fixture("exif-gps-xmp-iptc-icc.jpg"), params(JPEG), policy)
    with pytest.raises(InputTooLarge, match=r"at most 100 bytes"):
        pixels.probe(bytes(101), policy)  # not an image either: size is checked first


def test_pixel_bomb_is_refused_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decode(*_: object) -> None:
        pytest.fail("a pixel bomb reached the decoder")

    monkeypatch.setattr(pixels, "_load_thumbnail", no_decode)
    started = time.perf_counter()
    with pytest.raises(
        InputTooLarge,
        match=r"original is 20000x20000 = 400,000,000 pixels; allowed: at most 100,000,000",
    ):
        pixels.transform(fixture("pixel-bomb-20000x20000.png"), params(WEBP, w=320))
    assert time.perf_counter() - started < 1.0


def test_pixel_bomb_keeps_memory_low() -> None:
    script = (
        "import resource, sys\n"
        "from imgcore import pixels\n"
        "from imgcore.errors import InputTooLarge\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    pixels.probe(open(sys.argv[1], 'rb').read())\n"
        "except InputTooLarge:\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n"
    )
    bomb = FIXTURES / "pixel-bomb-20000x20000.png"
    done = subprocess.run(
        [sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, check=True
    )
    grown_kib = int(done.stdout)
    assert grown_kib < 20 * 1024, "decoding 400 MP would take 400 MB"


def test_too_many_frames() -> None:
    policy = Policy(limits=Limits(max_frames=2))
    with pytest.raises(InputTooLarge, match=r"original has 3 frames; allowed: at most 2"):
        pixels.probe(fixture("animated-3-frames.gif"), policy)


def test_animation_rejected_by_policy() -> None:
    policy = Policy(animation="reject")
    with pytest.raises(UnsupportedInput, match=r"3 frames.*allowed: still images only"):
        pixels.transform(fixture("animated-3-frames.gif"), params(PNG), policy)


def test_corrupt_header_is_corrupt_input() -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(40)
    with pytest.raises(CorruptInput, match=r"looks like png but its header cannot be read"):
        pixels.probe(data)


def test_truncated_jpeg_is_corrupt_not_half_grey() -> None:
    data = fixture("truncated.jpg")
    assert pixels.probe(data).width == 128  # the header is intact
    for fmt in (JPEG, WEBP):
        with pytest.raises(CorruptInput, match=r"jpeg that cannot be decoded.*allowed: complete"):
            pixels.transform(data, params(fmt, w=64))
    with pytest.raises(CorruptInput):
        pixels.render_variants(data, pixels.standard_params())
    with pytest.raises(CorruptInput):  # decoded with JPEG shrink-on-load 4
        pixels.render_variants(data, [params(PNG, w=32)])


def test_errors_carry_their_http_status() -> None:
    assert UnsupportedInput.http_status == 415
    assert InputTooLarge.http_status == CorruptInput.http_status == 422
    assert issubclass(CorruptInput, ImgcoreError)


# --- geometry ---------------------------------------------------------------------------------


def test_exif_orientation_is_applied() -> None:
    for fmt in ALL_FORMATS:
        out = decode(pixels.transform(fixture("orientation-6.jpg"), params(fmt)))
        assert (out.width, out.height) == (20, 40)
        # Stored top-left (red) is displayed top-right; stored bottom-left (blue) top-left.
        tol = 40 if fmt.lossy else 2
        assert close(pixel(out, 15, 5), (255, 0, 0), tol), (fmt, pixel(out, 15, 5))
        assert close(pixel(out, 4, 5), (0, 0, 255), tol), (fmt, pixel(out, 4, 5))
        assert close(pixel(out, 15, 35), (0, 255, 0), tol), (fmt, pixel(out, 15, 35))
        assert close(pixel(out, 4, 35), (255, 255, 255), tol), (fmt, pixel(out, 4, 35))


def test_width_refers_to_the_displayed_size() -> None:
    out = decode(pixels.transform(fixture("orientation-6.jpg"), params(PNG, w=10)))
    assert (out.width, out.height) == (10, 20)


@pytest.mark.parametrize(
    ("w", "h", "size"),
    [
        (640, None, (100, 50)),
        (None, 640, (100, 50)),
        (640, 640, (50, 50)),
        (640, 160, (100, 25)),
        (None, None, (100, 50)),
        (40, None, (40, 20)),
        (None, 10, (20, 10)),
    ],
)
def test_never_upscales(w: int | None, h: int | None, size: tuple[int, int]) -> None:
    data = encode(solid(100, 50, (0, 128, 255)))
    rendered = pixels.transform(data, params(PNG, w=w, h=h))
    out = decode(rendered)
    assert (out.width, out.height) == size
    assert pixel(out, 0, 0) == [0, 128, 255]


def test_cover_crop_is_exact_and_centred() -> None:
    # Thirds of 480x240: red | green | blue. A 160x160 cover of the 320x160 fit keeps the
    # middle 160 columns: green in the centre, a sliver of red and blue at the edges.
    thirds = solid(160, 240, (255, 0, 0)).join(solid(160, 240, (0, 255, 0)), "horizontal")
    data = encode(thirds.join(solid(160, 240, (0, 0, 255)), "horizontal"))
    out = decode(pixels.transform(data, params(PNG, w=160, h=160)))
    assert (out.width, out.height) == (160, 160)
    assert pixel(out, 80, 80) == [0, 255, 0]
    assert close(pixel(out, 0, 80), (255, 0, 0), 40)
    assert close(pixel(out, 159, 80), (0, 0, 255), 40)


def test_neither_w_nor_h_fits_inside_the_largest_breakpoints() -> None:
    data = encode(solid(3000, 1000, (10, 200, 30)), "jpeg", Q=90)
    out = decode(pixels.transform(data, params(WEBP)))
    assert (out.width, out.height) == (2560, 853)
    policy = Policy(widths=(160, 320), heights=(160, 320), standard=StandardSet(widths=(160, 320)))
    out = decode(pixels.transform(data, params(JPEG), policy))
    assert (out.width, out.height) == (320, 107)


def test_output_pixel_guard_does_not_count_upscaling(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1000x9000 asked at w=2560 stays 1000x9000 = 9 MP: allowed (limit 16,777,216).
    tall = encode(solid(1000, 9000, (0, 0, 0)), compression=1)
    out = decode(pixels.transform(tall, params(PNG, w=2560)))
    assert (out.width, out.height) == (1000, 9000)
    # 2000x9000 asked at w=2560 is 2000x9000 = 18 MP: refused before anything is decoded.
    monkeypatch.setattr(pixels, "_load_thumbnail", lambda *_: pytest.fail("decoded"))
    wide = encode(solid(2000, 9000, (0, 0, 0)), compression=1)
    with pytest.raises(
        InputTooLarge,
        match=r"output would be 2000x9000 = 18,000,000 pixels; allowed: at most 16,777,216",
    ):
        pixels.transform(wide, params(PNG, w=2560))


def test_an_over_limit_variant_is_fitted_down_and_the_rest_of_the_set_renders() -> None:
    # 1200x15000 = 18 MP (under the 100 MP input limit): every width from 1280 up keeps the
    # source size, over the 16.8 MP output limit. Horizontal stripes show the aspect is kept.
    stripes = pyvips.Image.xyz(1200, 15000)[1] // 1000 % 2 * 255
    data = encode(stripes.cast("uchar").copy(interpretation="b-w"), "jpeg", Q=80)
    assert pixels.probe(data).width * pixels.probe(data).height == 18_000_000
    wanted = pixels.standard_params()
    cascaded = pixels.render_variants(data, wanted)
    assert [r.params for r in cascaded] == wanted
    limit = DEFAULT_POLICY.limits.max_output_pixels
    sizes = {r.params.w: (r.width, r.height) for r in cascaded if r.params.fmt is WEBP}
    assert sizes[160] == (160, 2000)
    assert sizes[960] == (960, 12000)
    fitted = sizes[1280]
    assert fitted == sizes[1920] == sizes[2560]
    assert fitted[0] * fitted[1] <= limit < (fitted[0] + 1) * (fitted[1] + 1)
    assert abs(fitted[1] / fitted[0] - 12.5) < 0.02
    for rendered in cascaded:
        out = decode(rendered)
        assert (out.width, out.height) == (rendered.width, rendered.height)
        assert out.width * out.height <= limit
        # 15 stripes of 1000 source rows each, wherever the output height lands.
        assert pixel(out, 0, out.height * 500 // 15000)[0] < 40
        assert pixel(out, 0, out.height * 1500 // 15000)[0] > 215
    # A single request for the same variant keeps its clear refusal.
    with pytest.raises(InputTooLarge, match=r"output would be 1200x15000 = 18,000,000 pixels"):
        pixels.transform(data, params(WEBP, w=1280))


# --- colour -----------------------------------------------------------------------------------


def test_cmyk_without_profile_becomes_srgb() -> None:
    for fmt in ALL_FORMATS:
        out = decode(pixels.transform(fixture("cmyk-no-profile.jpg"), params(fmt)))
        assert (out.interpretation, out.bands) == ("srgb", 3)
        # C0 M100 Y100 K0 is (237, 28, 36) and C100 is (0, 174, 239) in common CMYK profiles.
        assert close(pixel(out, 8, 8), (237, 28, 36), 15), (fmt, pixel(out, 8, 8))
        assert close(pixel(out, 24, 8), (0, 174, 239), 20), (fmt, pixel(out, 24, 8))


# sRGB red and green as Display P3 values: what a pipeline that strips the profile shows.
P3_OF_SRGB_RED = (234, 51, 35)
P3_OF_SRGB_GREEN = (117, 251, 76)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_display_p3_is_converted_to_srgb(fmt: OutputFormat) -> None:
    data = fixture("display-p3.jpg")
    source = pyvips.Image.jpegload_buffer(data)
    assert close(pixel(source, 4, 8), P3_OF_SRGB_RED, 3)  # the fixture is what it claims
    assert source.get_typeof("icc-profile-data")
    out = decode(pixels.transform(data, params(fmt)))
    assert (out.interpretation, out.bands) == ("srgb", 3)
    assert not out.get_typeof("icc-profile-data")  # converted, then stripped
    tol = 10 if fmt.lossy else 6
    assert close(pixel(out, 4, 8), (255, 0, 0), tol), (fmt, pixel(out, 4, 8))
    assert close(pixel(out, 28, 8), (0, 255, 0), tol), (fmt, pixel(out, 28, 8))


def test_display_p3_is_converted_on_the_jpeg_shrink_on_load_path() -> None:
    # 8 px of a 32 px JPEG: the master is decoded with DCT shrink 2, then colour-managed.
    rendered = pixels.render_variants(fixture("display-p3.jpg"), [params(PNG, w=8)])[0]
    out = decode(rendered)
    assert (out.width, out.height) == (8, 4)
    # Columns 2 and 5: a pixel clear of the red/green edge and of lanczos' ringing at the border.
    assert close(pixel(out, 2, 2), (255, 0, 0), 8), pixel(out, 2, 2)
    assert close(pixel(out, 5, 2), (0, 255, 0), 8), pixel(out, 5, 2)


def test_16_bit_display_p3_is_converted_to_8_bit_srgb() -> None:
    out = decode(pixels.transform(fixture("display-p3-16bit.png"), params(PNG)))
    assert (out.interpretation, out.bands, out.width) == ("srgb", 3, 32)
    # lcms's 16-bit path itself lands sRGB red -> P3 -> sRGB at (253, 6, 4): hence 8, not 2.
    assert close(pixel(out, 4, 2), (255, 0, 0), 8), pixel(out, 4, 2)
    assert close(pixel(out, 28, 2), (0, 0, 255), 8), pixel(out, 28, 2)
    untagged = pyvips.Image.pngload_buffer(fixture("display-p3-16bit.png")).copy()
    untagged.remove("icc-profile-data")
    stripped = decode(pixels.transform(encode(untagged, bitdepth=16), params(PNG)))
    assert close(pixel(stripped, 4, 2), P3_OF_SRGB_RED, 2)  # the washed-out red it would be


def test_cmyk_with_an_embedded_profile_becomes_srgb() -> None:
    red = solid(16, 16, (255, 0, 0)).icc_transform("cmyk", input_profile="srgb", embedded=False)
    data = encode(red, "jpeg", Q=95, keep=pyvips.enums.ForeignKeep.ICC)
    assert pixels.probe(data).interpretation == "cmyk"
    assert pixels.probe(data).has_icc_profile
    out = decode(pixels.transform(data, params(PNG)))
    assert (out.interpretation, out.bands) == ("srgb", 3)
    # sRGB red through a CMYK profile and back: as red as print gets.
    assert close(pixel(out, 8, 8), (232, 31, 42), 8), pixel(out, 8, 8)


def test_untagged_and_srgb_tagged_pixels_keep_their_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = []
    real = pixels._load_thumbnail

    def spy(data: bytes, geometry: Any, jpeg_shrink: int = 1, tagged: bool = False) -> Any:
        seen.append(tagged)
        return real(data, geometry, jpeg_shrink, tagged)

    monkeypatch.setattr(pixels, "_load_thumbnail", spy)
    untagged = encode(solid(16, 16, P3_OF_SRGB_RED))
    tagged = encode(
        solid(16, 16, P3_OF_SRGB_RED).icc_transform("srgb", input_profile="srgb"),
        keep=pyvips.enums.ForeignKeep.ICC,
    )
    for data in (untagged, tagged):
        out = decode(pixels.transform(data, params(PNG)))
        assert close(pixel(out, 8, 8), P3_OF_SRGB_RED, 1), pixel(out, 8, 8)
    # Only the tagged one is colour-managed: an untagged original skips the (identity) transform.
    assert seen == [False, True]


def test_16_bit_rgb_is_scaled_to_8_bit() -> None:
    out = decode(pixels.transform(fixture("rgb16.png"), params(PNG)))
    assert (out.interpretation, out.bands, out.width) == ("srgb", 3, 256)
    for x in (0, 1, 64, 128, 200, 254, 255):
        assert close(pixel(out, x, 2), (x, 255 - x, 128), 1), (x, pixel(out, x, 2))
    lossy = decode(pixels.transform(fixture("rgb16.png"), params(WEBP)))
    assert close(pixel(lossy, 128, 2), (128, 127, 128), 8)


def test_16_bit_grey_alpha_is_scaled_to_8_bit() -> None:
    png = decode(pixels.transform(fixture("grey16-alpha.png"), params(PNG)))
    assert (png.interpretation, png.bands) == ("b-w", 2)
    for x in (0, 64, 128, 255):
        assert close(pixel(png, x, 2), (x, 255 - x), 1), (x, pixel(png, x, 2))
    for fmt in (WEBP, AVIF):
        out = decode(pixels.transform(fixture("grey16-alpha.png"), params(fmt)))
        assert out.bands == 4
        assert close(pixel(out, 64, 2), (64, 64, 64, 191), 10), (fmt, pixel(out, 64, 2))
    jpeg = decode(pixels.transform(fixture("grey16-alpha.png"), params(JPEG)))
    assert (jpeg.interpretation, jpeg.bands) == ("srgb", 3)
    # Flattened onto white: g * a + 255 * (1 - a).
    for x in (64, 128, 200):
        a = (255 - x) / 255
        expected = x * a + 255 * (1 - a)
        assert close(pixel(jpeg, x, 2), (expected,) * 3, 6), (x, pixel(jpeg, x, 2))


@pytest.mark.parametrize("fmt", [JPEG, PNG, WEBP, AVIF])
def test_grey_input(fmt: OutputFormat) -> None:
    ramp = pyvips.Image.xyz(256, 16)[0].cast("uchar").copy(interpretation="b-w")
    out = decode(pixels.transform(encode(ramp, "jpeg", Q=95), params(fmt, w=128)))
    assert out.width == 128
    assert out.bands == (1 if fmt in (JPEG, PNG) else 3)
    assert out.interpretation == ("b-w" if out.bands == 1 else "srgb")
    for x in (8, 64, 120):
        assert close(pixel(out, x, 4), [x * 2 + 0.5] * out.bands, 6), (x, pixel(out, x, 4))


def test_alpha_is_kept_where_the_format_has_it() -> None:
    for fmt in (PNG, WEBP, AVIF):
        out = decode(pixels.transform(fixture("rgba.png"), params(fmt)))
        assert (out.bands, out.interpretation) == (4, "srgb")
        tol = 2 if fmt is PNG else 12
        assert close(pixel(out, 8, 8), (255, 0, 0, 255), tol), (fmt, pixel(out, 8, 8))
        assert close(pixel(out, 24, 8), (0, 255, 0, 128), tol), (fmt, pixel(out, 24, 8))
        assert pixel(out, 40, 8)[3] <= tol


def test_alpha_is_flattened_onto_the_background_for_jpeg() -> None:
    out = decode(pixels.transform(fixture("rgba.png"), params(JPEG)))
    assert (out.bands, out.interpretation) == (3, "srgb")
    assert close(pixel(out, 8, 8), (255, 0, 0), 20)
    assert close(pixel(out, 24, 8), (127, 255, 127), 20)
    assert close(pixel(out, 40, 8), (255, 255, 255), 8)
    black = Policy.model_validate({"encoding": {"background": (0, 0, 0)}})
    out = decode(pixels.transform(fixture("rgba.png"), params(JPEG), black))
    assert close(pixel(out, 40, 8), (0, 0, 0), 8)


def test_opaque_alpha_is_dropped() -> None:
    data = encode(solid(32, 32, (10, 20, 30, 255)))
    assert pixels.probe(data).has_alpha
    out = decode(pixels.transform(data, params(PNG)))
    assert out.bands == 3


def test_animated_gif_renders_its_first_frame_as_a_still() -> None:
    for fmt in (PNG, WEBP, AVIF, JPEG):
        out = decode(pixels.transform(fixture("animated-3-frames.gif"), params(fmt)))
        assert (out.width, out.height) == (16, 16)
        assert out.get_typeof("n-pages") == 0 or out.get("n-pages") == 1
        assert close(pixel(out, 8, 8)[:3], (255, 0, 0), 20), (fmt, pixel(out, 8, 8))


def test_heic_is_refused_by_default_and_unsupported_by_this_libvips_build() -> None:
    data = fixture("hevc.heic")
    with pytest.raises(
        UnsupportedInput, match=r"original is heic; allowed: jpeg, png, webp, gif, avif"
    ):
        pixels.probe(data)
    admitting = Policy(input_formats=(*DEFAULT_POLICY.input_formats, InputFormat.HEIC))
    info = pixels.probe(data, admitting)
    assert (info.format, info.width, info.height) == (InputFormat.HEIC, 64, 32)
    # The pyvips-binary wheel's libheif has no HEVC decoder: a 415, not a "corrupt" 422.
    with pytest.raises(UnsupportedInput, match=r"heic whose compression .* cannot decode.*HEVC"):
        pixels.transform(data, params(PNG), admitting)


def test_avif_and_webp_inputs() -> None:
    source = solid(64, 32, (30, 160, 90))
    for data in (encode(source, "heif", compression="av1", Q=90), encode(source, "webp", Q=95)):
        out = decode(pixels.transform(data, params(PNG, w=32)))
        assert (out.width, out.height) == (32, 16)
        assert close(pixel(out, 16, 8), (30, 160, 90), 6)


# --- metadata ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [JPEG, PNG, WEBP, AVIF])
def test_all_metadata_is_stripped(fmt: OutputFormat) -> None:
    data = fixture("exif-gps-xmp-iptc-icc.jpg")
    source = pyvips.Image.new_from_buffer(data, "")
    assert all(source.get_typeof(field) for field in METADATA_FIELDS)
    rendered = pixels.transform(data, params(fmt, w=32))
    out = decode(rendered)
    assert [f for f in METADATA_FIELDS if out.get_typeof(f)] == []
    for secret in (b"secret", b"imgcdn-test-camera", b"Exif", b"http://ns.adobe.com"):
        assert secret not in rendered.data
    if fmt is not AVIF:  # Pillow 13 reads AVIF, but checking the three others is enough here
        with Image.open(io.BytesIO(rendered.data)) as image:
            assert not set(image.info) & {"exif", "xmp", "icc_profile", "photoshop", "XML:com"}
            assert dict(image.getexif()) == {}


def test_keep_icc_embeds_srgb_only() -> None:
    policy = Policy(metadata="keep-icc")
    data = fixture("exif-gps-xmp-iptc-icc.jpg")
    for fmt in (JPEG, WEBP, PNG):
        rendered = pixels.transform(data, params(fmt, w=32), policy)
        out = decode(rendered)
        assert [f for f in METADATA_FIELDS if out.get_typeof(f)] == ["icc-profile-data"]
        with Image.open(io.BytesIO(rendered.data)) as image:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
            assert "srgb" in ImageCms.getProfileDescription(profile).lower()
            assert dict(image.getexif()) == {}


# --- encoders ---------------------------------------------------------------------------------


def test_quality_changes_lossy_outputs(photo_jpeg: bytes) -> None:
    for fmt in (JPEG, WEBP, AVIF):
        low = pixels.transform(photo_jpeg, TransformParams(fmt=fmt, w=320, q=40))
        high = pixels.transform(photo_jpeg, TransformParams(fmt=fmt, w=320, q=90))
        assert len(low.data) < len(high.data), fmt
        assert psnr(decode(high), decode(low)) < 60


def test_jpeg_output_is_progressive_when_the_policy_says_so(photo_jpeg: bytes) -> None:
    rendered = pixels.transform(photo_jpeg, params(JPEG, w=320))
    assert b"\xff\xc2" in rendered.data  # SOF2: progressive DCT
    baseline = Policy.model_validate({"encoding": {"jpeg_progressive": False}})
    rendered = pixels.transform(photo_jpeg, params(JPEG, w=320), baseline)
    assert b"\xff\xc2" not in rendered.data


# --- the standard set from one decode -------------------------------------------------------


def test_standard_params() -> None:
    expanded = pixels.standard_params()
    assert len(expanded) == 24
    assert expanded[0] == TransformParams(fmt=AVIF, w=160, q=60)
    assert {p.fmt for p in expanded} == {AVIF, WEBP, JPEG}
    assert all(
        p.h is None and p.q == DEFAULT_POLICY.default_quality.for_format(p.fmt) for p in expanded
    )
    assert [p.w for p in expanded if p.fmt is WEBP] == list(DEFAULT_POLICY.standard.widths)


def test_render_variants_of_nothing_is_nothing(photo_jpeg: bytes) -> None:
    assert pixels.render_variants(photo_jpeg, []) == []


@pytest.mark.slow
def test_render_variants_decodes_once_and_matches_transform(
    photo_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = [
        *(params(fmt, w=w) for w in DEFAULT_POLICY.standard.widths for fmt in (PNG, WEBP)),
        params(PNG, w=320, h=320),
        params(WEBP, w=160, h=480),
        params(PNG, h=160),
        params(PNG),
    ]
    independent = [pixels.transform(photo_jpeg, p) for p in wanted]

    calls = []
    real = pixels._load_thumbnail

    def counting(*args: Any) -> Any:
        calls.append(args[1])
        return real(*args)

    monkeypatch.setattr(pixels, "_load_thumbnail", counting)
    cascaded = pixels.render_variants(photo_jpeg, wanted)
    assert len(calls) == 1
    assert (calls[0].width, calls[0].height) == (1600, 1000)  # 1920 and 2560 collapse to 1600

    assert [r.params for r in cascaded] == wanted
    for one, many in zip(independent, cascaded, strict=True):
        assert (one.width, one.height) == (many.width, many.height), one.params
        a, b = decode(one), decode(many)
        threshold = 47 if one.params.fmt is PNG else 38
        assert psnr(a, b) > threshold, (one.params.variant, psnr(a, b))
    by_variant = {r.params.variant: r for r in cascaded}
    assert by_variant["w1920.png"].data is by_variant["w2560.png"].data  # rendered once
    assert (by_variant["w2560-q80.webp"].width, by_variant["w2560-q80.webp"].height) == (1600, 1000)
    assert (by_variant["h160.png"].width, by_variant["h160.png"].height) == (256, 160)
    assert (by_variant["w160-h480-q80.webp"].width, by_variant["w160-h480-q80.webp"].height) == (
        160,
        480,
    )


def test_render_variants_crop_only_master(photo_jpeg: bytes) -> None:
    wanted = [params(PNG, w=320, h=160), params(PNG, w=160, h=320)]
    cascaded = pixels.render_variants(photo_jpeg, wanted)
    for p, many in zip(wanted, cascaded, strict=True):
        one = decode(pixels.transform(photo_jpeg, p))
        assert (one.width, one.height) == (p.w, p.h)
        assert psnr(one, decode(many)) > 34


def test_render_variants_keeps_alpha_per_format() -> None:
    wanted = [params(PNG, w=24), params(JPEG, w=24), params(WEBP, w=48)]
    png, jpeg, webp = (decode(r) for r in pixels.render_variants(fixture("rgba.png"), wanted))
    assert (png.bands, jpeg.bands, webp.bands) == (4, 3, 4)
    assert (png.width, png.height, webp.width) == (24, 8, 48)
    assert close(pixel(jpeg, 22, 4), (255, 255, 255), 12)
    assert pixel(png, 22, 4)[3] <= 2


def test_render_variants_shrinks_a_jpeg_on_load_to_its_largest_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = encode(photo_like(2000, 1250), "jpeg", Q=92)
    wanted = [params(PNG, w=480), params(WEBP, w=320), params(PNG, w=160, h=160)]
    shrinks = []
    real = pixels._load_thumbnail

    def spy(data: bytes, geometry: Any, jpeg_shrink: int = 1, tagged: bool = False) -> Any:
        shrinks.append(jpeg_shrink)
        return real(data, geometry, jpeg_shrink, tagged)

    monkeypatch.setattr(pixels, "_load_thumbnail", spy)
    cascaded = pixels.render_variants(data, wanted)
    assert shrinks == [2]  # 2000 / 2 = 1000 keeps twice 480; 2000 / 4 = 500 would not
    monkeypatch.undo()
    for p, many in zip(wanted, cascaded, strict=True):
        one = decode(pixels.transform(data, p))
        assert (one.width, one.height) == (many.width, many.height)
        assert psnr(one, decode(many)) > (45 if p.fmt is PNG else 38), p.variant


def test_render_variants_applies_orientation_and_colour_after_shrink_on_load() -> None:
    # 8 and 16 are at most half the sources: the master is decoded at JPEG shrink 2.
    out = decode(pixels.render_variants(fixture("orientation-6.jpg"), [params(PNG, w=10)])[0])
    assert (out.width, out.height) == (10, 20)
    assert close(pixel(out, 7, 3), (255, 0, 0), 40)
    assert close(pixel(out, 2, 17), (255, 255, 255), 40)
    cmyk = pixels.render_variants(fixture("cmyk-no-profile.jpg"), [params(PNG, w=16)])[0]
    out = decode(cmyk)
    assert (out.width, out.height, out.interpretation) == (16, 8, "srgb")
    assert close(pixel(out, 4, 4), (237, 28, 36), 15)
    assert close(pixel(out, 12, 4), (0, 174, 239), 20)


def test_placeholder_is_the_mean_colour_and_a_tiny_preview() -> None:
    import base64

    from imgcore import placeholder

    red = pyvips.Image.black(320, 200, bands=3).new_from_image([200, 30, 40]).cast("uchar")
    found = placeholder(red.webpsave_buffer(Q=90))
    mean = [int(found.color[k : k + 2], 16) for k in (1, 3, 5)]
    assert all(abs(got - want) <= 6 for got, want in zip(mean, (200, 30, 40), strict=True)), mean
    preview = base64.b64decode(found.lqip.removeprefix("data:image/webp;base64,"))
    image = pyvips.Image.new_from_buffer(preview, "")
    assert (image.get("vips-loader"), image.width, image.height) == ("webpload_buffer", 16, 10)
    assert len(found.lqip) < 600


def test_each_output_reports_the_milliseconds_it_took(photo_jpeg: bytes) -> None:
    started = time.perf_counter()
    one = pixels.transform(photo_jpeg, params(AVIF, w=640))
    wall_ms = (time.perf_counter() - started) * 1000
    assert 0 < one.ms <= wall_ms

    # w=1920 and w=2560 both collapse to the 1600-px source: the second costs nothing.
    wanted = [params(WEBP, w=1920), params(WEBP, w=2560), params(PNG, w=320), params(AVIF, w=320)]
    started = time.perf_counter()
    cascaded = pixels.render_variants(photo_jpeg, wanted)
    wall_ms = (time.perf_counter() - started) * 1000
    ms = {r.params.variant: r.ms for r in cascaded}
    assert ms["w2560-q80.webp"] == 0.0
    assert ms["w1920-q80.webp"] > 0
    assert ms["w320.png"] > 0
    assert ms["w320-q60.avif"] > 0
    # Shared work (the 320-px resize) is counted once, so the set adds up within its wall time.
    assert sum(ms.values()) <= wall_ms
