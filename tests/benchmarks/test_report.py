"""The report's helpers and the SSIM built from libvips operations."""

from __future__ import annotations

import math

import pytest
import pyvips
from imgcdn_bench import harness, quality


def test_geomean_and_median() -> None:
    assert harness.geomean([1.0, 4.0]) == pytest.approx(2.0)
    assert math.isnan(harness.geomean([]))
    assert harness.med([3.0, 1.0, 2.0]) == 2.0


def test_table_is_markdown() -> None:
    text = harness.table(["a", "b"], [["x", "1"]])
    assert text.splitlines() == ["| a | b |", "|---|---:|", "| x | 1 |"]


def test_tools_rotate_per_image() -> None:
    tools = ("a", "b", "c")
    firsts = {harness.tool_order(tools, i)[0] for i in range(3)}
    assert firsts == set(tools)
    assert sorted(harness.tool_order(tools, 1)) == sorted(tools)


def test_ssim_of_an_image_with_itself_is_one() -> None:
    image = (
        (pyvips.Image.xyz(64, 48)[0] * 3).cast("uchar").bandjoin([pyvips.Image.black(64, 48)] * 2)
    )
    image = image.copy(interpretation="srgb")
    assert quality.ssim(image, image) == pytest.approx(1.0)


def test_ssim_falls_with_noise() -> None:
    base = (pyvips.Image.xyz(96, 96)[0] * 2).cast("uchar").copy(interpretation="b-w")
    slight = (base.cast("float") + pyvips.Image.gaussnoise(96, 96, sigma=3)).cast("uchar")
    strong = (base.cast("float") + pyvips.Image.gaussnoise(96, 96, sigma=30)).cast("uchar")
    s_slight, s_strong = quality.ssim(base, slight), quality.ssim(base, strong)
    assert 0 < s_strong < s_slight < 1


def test_ssim_needs_equal_sizes() -> None:
    with pytest.raises(ValueError, match="equal sizes"):
        quality.ssim(pyvips.Image.black(8, 8), pyvips.Image.black(9, 8))
