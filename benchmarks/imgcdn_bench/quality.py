"""Quality columns: SSIM of an output against a reference resize, computed with libvips.

numpy is not part of the workspace, so SSIM is built from libvips operations (float images, no
rounding between steps): Wang et al.'s SSIM on the luma channel (Rec. 601 weights on the 8-bit
sRGB values), a Gaussian window of sigma 1.5 truncated where it falls below 1 % of its peak
(an 11-tap window, as in the paper), C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, averaged over the
image less a 5-pixel border (the window's reach).

The reference resize decodes every pixel of the original (no shrink-on-load), applies the EXIF
orientation, converts to sRGB and resizes with lanczos3 in one step straight to the output's
exact size: slow and careful, and the same for every tool, so the SSIM column ranks tools by
what they do differently (shrink-on-load, kernels, encoders), not by the reference's choices.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Final

import pyvips

SIGMA: Final = 1.5
MIN_AMPL: Final = 0.01
BORDER: Final = 5
C1: Final = (0.01 * 255) ** 2
C2: Final = (0.03 * 255) ** 2


def luma(image: Any) -> Any:
    """Rec. 601 luma of an 8-bit sRGB (or grey) image, as a float band; alpha flattened on white."""
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    if image.interpretation not in ("srgb", "b-w"):
        image = image.colourspace("srgb")
    if image.bands == 1:
        return image.cast("float")
    r, g, b = image[0], image[1], image[2]
    return (r * 0.299 + g * 0.587 + b * 0.114).cast("float")


def _blur(image: Any) -> Any:
    return image.gaussblur(SIGMA, min_ampl=MIN_AMPL, precision="float")


def ssim(a: Any, b: Any) -> float:
    """Mean SSIM of two images of the same size (their luma), 1.0 for identical pixels."""
    if (a.width, a.height) != (b.width, b.height):
        msg = f"SSIM needs equal sizes; got {a.width}x{a.height} and {b.width}x{b.height}"
        raise ValueError(msg)
    x, y = luma(a), luma(b)
    mu_x, mu_y = _blur(x), _blur(y)
    sxx = _blur(x * x) - mu_x * mu_x
    syy = _blur(y * y) - mu_y * mu_y
    sxy = _blur(x * y) - mu_x * mu_y
    num = (mu_x * mu_y * 2 + C1) * (sxy * 2 + C2)
    den = (mu_x * mu_x + mu_y * mu_y + C1) * (sxx + syy + C2)
    ratio = num / den
    if ratio.width > 2 * BORDER + 1 and ratio.height > 2 * BORDER + 1:
        ratio = ratio.crop(BORDER, BORDER, ratio.width - 2 * BORDER, ratio.height - 2 * BORDER)
    return float(ratio.avg())


@cache
def _full_decode(path: Path) -> Any:
    image = pyvips.Image.new_from_file(str(path), access="random").autorot()
    if image.interpretation != "srgb":
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    return image.copy_memory()


@cache
def reference(path: Path, width: int, height: int) -> Any:
    """The reference resize of an original to exactly `width` x `height` (see module doc)."""
    image = _full_decode(path)
    if (image.width, image.height) == (width, height):
        return image
    return image.resize(
        width / image.width, vscale=height / image.height, kernel="lanczos3"
    ).copy_memory()


def decode(data: bytes) -> Any:
    """Decode an output (JPEG, WebP, AVIF) to 8-bit sRGB pixels."""
    image = pyvips.Image.new_from_buffer(data, "")
    if image.interpretation not in ("srgb", "b-w"):
        image = image.colourspace("srgb")
    return image.cast("uchar") if image.format != "uchar" else image


def score(original: Path, output: bytes) -> tuple[float, int, int]:
    """SSIM of an output against the reference resize of its original at the output's size."""
    image = decode(output)
    return ssim(reference(original, image.width, image.height), image), image.width, image.height


def clear() -> None:
    """Forget the cached full decodes and reference resizes (they hold whole photos)."""
    _full_decode.cache_clear()
    reference.cache_clear()
