"""Peak memory of a render, measured in a subprocess: each case stays under the stated bounds.

Each case is crafted here (tests/hostile/corpus.py), written to tmp, and put through
`tests.hostile.measure` in a fresh interpreter, whose peak RSS (VmHWM) after its imports
is the baseline: the difference is what the render added. Memory assertions, not timed ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.hostile.corpus import gif_lzw_bomb, png, webp_animated_canvas

from imgcore import DEFAULT_POLICY, probe

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
LIMITS = DEFAULT_POLICY.limits
REFUSED_HEADROOM = 32 * MIB
"""A refusal reads the header only: whatever the file declares, this is all it may cost."""
OUTPUT_HEADROOM = 96 * MIB
"""Beyond the loader's estimate: the output image, libvips' line buffers and the encoder at
the sizes these cases render."""


def _measure(tmp_path: Path, name: str, data: bytes, stage: str, *extra: str) -> dict[str, Any]:
    path = tmp_path / name
    path.write_bytes(data)
    run = subprocess.run(
        [sys.executable, "-m", "tests.hostile.measure", stage, str(path), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"VIPS_CONCURRENCY": "1", "PATH": "/usr/bin:/bin"},
    )
    result: dict[str, Any] = json.loads(run.stdout)
    result["added"] = result["peak_bytes"] - result["baseline_bytes"]
    return result


@pytest.mark.parametrize(
    ("name", "build"),
    [
        # ~40 KB, one 100 MP frame: nsgif would fill a 0.45 GB canvas.
        ("gif-lzw-10000x10000.gif", lambda: gif_lzw_bomb(10000, 10000)),
        # ~90 bytes, a 1x1 frame on a 100 MP canvas: libwebp would composite 0.47 GB.
        ("webp-canvas-10000x10000.webp", lambda: webp_animated_canvas(10000, 10000)),
        # 90 MP of 16-bit RGBA, interlaced: libspng must hold all of it (0.7 GB).
        (
            "png-rgba16-interlaced.png",
            lambda: png(10000, 9000, colour=6, depth=16, interlace=True, rows=1),
        ),
    ],
)
def test_a_bomb_is_refused_before_its_decoder_allocates(
    tmp_path: Path, name: str, build: Callable[[], bytes]
) -> None:
    result = _measure(tmp_path, name, build(), "transform")

    assert result["outcome"] == "InputTooLarge", result
    assert result["status"] == 422
    assert "allowed: at most 384 MiB" in result["detail"]
    assert result["added"] < REFUSED_HEADROOM, result


@pytest.mark.parametrize(
    ("name", "build", "stage", "extra"),
    [
        # A 25 MP GIF inside every limit: the whole canvas is held, as estimated.
        (
            "gif-5000x5000.gif",
            lambda: gif_lzw_bomb(5000, 5000),
            "render_variants",
            ("--formats", "jpeg"),
        ),
        # Interlaced PNG: libspng decodes the whole image before the first row comes out.
        ("png-interlaced-4000x4000.png", lambda: png(4000, 4000, interlace=True), "transform", ()),
        # A tall PNG inside every limit streams: its estimate is 0 and it costs the output.
        ("png-1200x15000.png", lambda: png(1200, 15000), "transform", ()),
    ],
)
def test_a_render_stays_within_its_estimate_and_the_stated_bound(
    tmp_path: Path, name: str, build: Callable[[], bytes], stage: str, extra: tuple[str, ...]
) -> None:
    data = build()
    estimate = probe(data).decode_bytes

    result = _measure(tmp_path, name, data, stage, *extra)

    assert result["outcome"] == "ok", result
    assert result["added"] <= estimate + OUTPUT_HEADROOM, (result, estimate)
    assert result["added"] < LIMITS.max_render_bytes, result
