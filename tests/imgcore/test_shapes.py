"""Fit, gravity and the ratio ladder in pixels: what `transform` and `render_variants` draw."""

from __future__ import annotations

from typing import Any

import pytest
import pyvips
from tests.imgcore.test_pixels import close, decode, encode, photo_like, pixel, solid

from imgcore import canonicalize
from imgcore.params import Fit, Gravity, TransformParams
from imgcore.pixels import render_variants, transform
from imgcore.policy import OutputFormat


def _shape(query: str) -> TransformParams:
    return canonicalize(query + "&fmt=png")


def _render(data: bytes, query: str, fmt: str = "png") -> Any:
    return decode(transform(data, canonicalize(f"{query}&fmt={fmt}")))


@pytest.fixture(scope="module")
def landscape() -> bytes:
    return encode(photo_like(1200, 800))  # 3:2


def test_cover_fills_the_box_of_the_requested_ratio(landscape: bytes) -> None:
    assert (_render(landscape, "w=640&h=360").width, _render(landscape, "w=640&h=360").height) == (
        640,
        360,
    )
    square = _render(landscape, "w=300&h=300")
    assert (square.width, square.height) == (320, 320)


def test_contain_fits_inside_the_box_without_a_crop(landscape: bytes) -> None:
    image = _render(landscape, "w=320&h=320&fit=contain")
    assert (image.width, image.height) == (320, 213)


@pytest.mark.parametrize("fmt", ["png", "webp", "avif"])
def test_pad_fills_the_box_transparent_where_the_format_has_alpha(
    landscape: bytes, fmt: str
) -> None:
    image = _render(landscape, "w=320&h=320&fit=pad", fmt)
    assert (image.width, image.height) == (320, 320)
    assert image.hasalpha()
    assert pixel(image, 160, 5)[-1] == 0  # the margin above the 320x213 picture
    assert pixel(image, 160, 160)[-1] == 255


def test_pad_fills_the_box_with_the_background_in_jpeg(landscape: bytes) -> None:
    image = _render(landscape, "w=320&h=320&fit=pad", "jpeg")
    assert (image.width, image.height, image.bands) == (320, 320, 3)
    assert close(pixel(image, 160, 5), (255, 255, 255), 3)


def test_no_fit_upscales_past_the_source() -> None:
    small = encode(solid(200, 100, (10, 200, 30)))  # 2:1
    cover = _render(small, "w=640&h=360")  # 16:9 box: the largest 16:9 box inside the source
    assert (cover.width, cover.height) == (178, 100)
    contain = _render(small, "w=640&h=360&fit=contain")
    assert (contain.width, contain.height) == (200, 100)
    pad = _render(small, "w=640&h=640&fit=pad")  # a square that the source meets on one side
    assert (pad.width, pad.height) == (200, 200)


def test_a_smart_crop_keeps_the_interesting_part() -> None:
    # A flat grey field with a busy patch at the right: centre cuts it off, entropy keeps it.
    field = solid(1200, 400, (128, 128, 128))
    busy = photo_like(300, 400)
    data = encode(field.insert(busy, 900, 0))
    centre = _render(data, "w=320&h=320")
    entropy = _render(data, "w=320&h=320&g=entropy")
    assert centre.deviate() < 5
    assert entropy.deviate() > 20


def test_render_variants_draws_the_same_shapes_as_transform(landscape: bytes) -> None:
    shapes = [
        _shape(q)
        for q in (
            "w=320&h=320&fit=pad",
            "w=320&h=320&fit=contain",
            "w=320&h=320&g=attention",
            "w=640&h=360",
            "w=480",
        )
    ]
    assert {s.fit for s in shapes} == set(Fit)
    assert Gravity.ATTENTION in {s.g for s in shapes}
    for one in render_variants(landscape, shapes):
        alone = transform(landscape, one.params)
        assert (one.width, one.height) == (alone.width, alone.height), one.params.variant
        a = pyvips.Image.new_from_buffer(one.data, "")
        b = pyvips.Image.new_from_buffer(alone.data, "")
        assert (a.bands, a.hasalpha()) == (b.bands, b.hasalpha())
        assert abs(a.avg() - b.avg()) < 3, one.params.variant
    assert all(s.fmt is OutputFormat.PNG for s in shapes)
