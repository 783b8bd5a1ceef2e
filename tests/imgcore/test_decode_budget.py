"""The decode budget (R16): what a loader would hold is estimated from the header and admitted."""

from __future__ import annotations

import pytest
from PIL import Image
from pydantic import ValidationError
from tests.hostile.corpus import gif_lzw_bomb, jpeg_declaring, photo, pillow, png

from imgcore import DEFAULT_POLICY, InputTooLarge, Policy, probe
from imgcore.policy import Limits


def test_streaming_loaders_are_charged_nothing() -> None:
    assert probe(pillow(photo(), "JPEG")).decode_bytes == 0
    assert probe(png(1200, 15000, rows=1)).decode_bytes == 0


@pytest.mark.parametrize(
    ("data", "per_pixel"),
    [
        (jpeg_declaring(3000, 2000, progressive=True), 6),  # 4:4:4: 3 components x 2 bytes
        (pillow(photo(), "JPEG", progressive=True, subsampling=2), 3),  # 4:2:0
        (png(3000, 2000, interlace=True, rows=1), 3),
        (png(3000, 2000, colour=6, depth=16, interlace=True, rows=1), 8),
        (gif_lzw_bomb(300, 200), 5),
        (pillow(photo(), "WEBP"), 3),
    ],
)
def test_whole_image_loaders_are_charged_per_pixel(data: bytes, per_pixel: int) -> None:
    info = probe(data)
    assert info.decode_bytes == info.width * info.height * per_pixel


def test_the_budget_is_the_policys() -> None:
    data = pillow(Image.new("RGB", (600, 400)), "JPEG", progressive=True)
    needs = probe(data).decode_bytes
    tight = Policy(limits=Limits(max_decode_bytes=needs - 1))

    with pytest.raises(InputTooLarge, match=r"would hold .* MiB at once; allowed: at most"):
        probe(data, tight)
    assert probe(data, DEFAULT_POLICY).decode_bytes == needs


def test_a_decode_budget_must_leave_room_in_the_render_bound() -> None:
    with pytest.raises(ValidationError, match="max_decode_bytes"):
        Limits(max_decode_bytes=2**31, max_render_bytes=2**30)
