"""The public API of imgcdn_precompute is curated, and importing it does not load libvips."""

from __future__ import annotations

import subprocess
import sys

import imgcdn_precompute


def test_exported_members() -> None:
    assert imgcdn_precompute.__all__ == sorted(imgcdn_precompute.__all__)
    assert imgcdn_precompute.__all__ == [
        "Action",
        "BatchProcessor",
        "BatchResult",
        "ConfigError",
        "EventError",
        "EventKind",
        "Invocation",
        "Message",
        "MessageResult",
        "Metrics",
        "ObjectEvent",
        "Outcome",
        "PrecomputeService",
        "Renderer",
        "Settings",
        "parse_invocation",
    ]
    for name in imgcdn_precompute.__all__:
        assert getattr(imgcdn_precompute, name) is not None


def test_the_handler_module_imports_without_libvips_or_aws_calls() -> None:
    """A cold start pays for libvips on the first render only, and for no network call."""
    code = (
        "import sys, imgcdn_precompute.handler;"
        "print('pyvips' in sys.modules, 'imgcore.pixels' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]
