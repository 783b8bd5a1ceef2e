"""imgcore.pixels: outputs fit what their encoder can write; a damaged JPEG is never published."""

from __future__ import annotations

import struct
from typing import Any

import pytest
import pyvips

from imgcore import pixels
from imgcore.errors import CorruptInput, InputTooLarge
from imgcore.params import TransformParams
from imgcore.policy import DEFAULT_POLICY, OutputFormat

JPEG, PNG, WEBP, AVIF = OutputFormat.JPEG, OutputFormat.PNG, OutputFormat.WEBP, OutputFormat.AVIF
EOI = b"\xff\xd9"


def params(fmt: OutputFormat, w: int | None = None, h: int | None = None) -> TransformParams:
    return TransformParams(fmt=fmt, w=w, h=h, q=DEFAULT_POLICY.default_quality.for_format(fmt))


def solid(width: int, height: int) -> Any:
    colour = pyvips.Image.black(width, height, bands=3).new_from_image([200, 40, 90])
    return colour.cast("uchar")


def png(width: int, height: int) -> bytes:
    return bytes(solid(width, height).pngsave_buffer(compression=1))


# --- item 2: a side no encoder can write -------------------------------------------------------


@pytest.mark.parametrize("fmt", [JPEG, WEBP, AVIF])
@pytest.mark.parametrize("tall", [True, False], ids=["tall", "wide"])
def test_encoder_max_side_is_what_the_encoder_writes_and_not_one_pixel_more(
    fmt: OutputFormat, tall: bool
) -> None:
    side = pixels.ENCODER_MAX_SIDE[fmt]
    for length, fits in ((side, True), (side + 1, False)):
        image = solid(8, length) if tall else solid(length, 8)
        if fits:
            assert pixels._encode(image, params(fmt), DEFAULT_POLICY)
        else:
            with pytest.raises(pyvips.Error):
                pixels._encode(image, params(fmt), DEFAULT_POLICY)


def test_png_can_hold_any_side_the_output_pixel_limit_allows() -> None:
    assert pixels.ENCODER_MAX_SIDE[PNG] >= DEFAULT_POLICY.limits.max_output_pixels


def test_a_standard_set_of_a_very_tall_original_fits_each_format_to_its_encoder() -> None:
    data = png(40, 20_000)  # within every limit, but taller than WebP and AVIF can be
    wanted = [params(fmt, w=160) for fmt in (AVIF, WEBP, JPEG, PNG)]

    rendered = pixels.render_variants(data, wanted)

    sizes = {r.params.fmt: (r.width, r.height) for r in rendered}
    assert sizes[JPEG] == sizes[PNG] == (40, 20_000)  # they can hold it: not shrunk
    assert sizes[WEBP] == (32, 16_383)
    assert sizes[AVIF] == (32, 16_384)
    for r in rendered:
        out = pyvips.Image.new_from_buffer(r.data, "")
        assert (out.width, out.height) == (r.width, r.height)
        assert max(r.width, r.height) <= pixels.ENCODER_MAX_SIDE[r.params.fmt]


def test_a_very_wide_original_is_fitted_by_height_requests_too() -> None:
    data = png(20_000, 40)
    (webp,) = pixels.render_variants(data, [params(WEBP, h=160)])
    assert (webp.width, webp.height) == (16_383, 32)


def test_one_request_past_its_encoders_side_is_a_4xx_before_any_decode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = png(40, 20_000)
    monkeypatch.setattr(pixels, "_load_thumbnail", lambda *_: pytest.fail("decoded"))
    for fmt, side in ((WEBP, "16,383"), (AVIF, "16,384")):
        with pytest.raises(InputTooLarge) as caught:
            pixels.transform(data, params(fmt, w=160))
        assert caught.value.http_status == 422
        assert caught.value.permanent
        assert str(caught.value) == (
            f"output would be 40x20000; a {fmt.value} image can be at most {side} pixels a "
            "side; allowed: a smaller w or h, or a format that can hold it (jpeg, png)"
        )


def test_one_request_a_format_can_hold_is_rendered_whole() -> None:
    rendered = pixels.transform(png(40, 20_000), params(JPEG, w=160))
    assert (rendered.width, rendered.height) == (40, 20_000)


# --- item 3: a JPEG whose scan stops early but ends with an end-of-image marker -----------------


def textured_jpeg(width: int = 128, height: int = 128) -> bytes:
    image = pyvips.Image.xyz(width, height)
    texture = ((image[0] * 7 + image[1] * 13) % 256).bandjoin([image[0] * 2, image[1] * 2])
    return bytes(texture.cast("uchar").jpegsave_buffer(Q=90, keep=pyvips.enums.ForeignKeep.NONE))


def cut_with_eoi() -> bytes:
    """Half a JPEG's scan, then FF D9: a cut upload that still looks closed."""
    data = textured_jpeg()
    return data[: len(data) // 2] + EOI


def tiny_declaring_9999() -> bytes:
    """A few hundred bytes whose header declares 9999x9999 and whose scan is a few bytes long."""
    data = bytearray(textured_jpeg(16, 16))
    sof = next(data.find(m) for m in (b"\xff\xc0", b"\xff\xc2") if data.find(m) >= 0)
    data[sof + 5 : sof + 9] = struct.pack(">HH", 9999, 9999)
    sos = data.find(b"\xff\xda")
    return bytes(data[: sos + 14]) + EOI


DAMAGED = {"cut-with-eoi": cut_with_eoi, "tiny-declaring-9999": tiny_declaring_9999}


@pytest.mark.parametrize("make", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_jpeg_with_a_short_scan_and_an_end_marker_is_refused(make: Any) -> None:
    data = make()
    assert data.endswith(EOI)
    info = pixels.probe(data)  # the header is whole: only decoding finds the damage
    # Every decode path: thumbnail_buffer (no DCT shrink) and jpegload_buffer with a shrink.
    small = params(WEBP, w=max(1, info.width // 16))
    for wanted in (params(JPEG, w=min(info.width, 2560)), small):
        with pytest.raises(CorruptInput, match=r"jpeg that cannot be decoded \(.*premature end"):
            pixels.transform(data, wanted)
    with pytest.raises(CorruptInput):
        pixels.render_variants(data, [params(JPEG, w=160), params(WEBP, w=160)])


def test_a_whole_jpeg_still_decodes_on_both_paths() -> None:
    data = textured_jpeg()
    assert pixels.transform(data, params(JPEG, w=128)).width == 128
    assert pixels.transform(data, params(JPEG, w=16)).width == 16  # DCT shrink 4
