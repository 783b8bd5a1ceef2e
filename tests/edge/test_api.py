"""The public API of imgcdn_edge, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import imgcdn_edge


def test_exported_members() -> None:
    assert imgcdn_edge.__all__ == sorted(imgcdn_edge.__all__)
    assert set(imgcdn_edge.__all__) == {
        "Answer",
        "ConfigError",
        "Deadline",
        "DeadlineExceeded",
        "FallbackLimits",
        "FallbackService",
        "FallbackSettings",
        "FunctionTooLarge",
        "render_function",
    }
    for name in imgcdn_edge.__all__:
        assert getattr(imgcdn_edge, name) is not None


def test_generating_the_function_loads_neither_libvips_nor_boto3() -> None:
    code = (
        "import sys, imgcdn_edge, imgcdn_edge.cli, imgcdn_edge.handler; "
        "imgcdn_edge.render_function(); "
        "print(sorted(m for m in ('pyvips', 'boto3', 'botocore') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
