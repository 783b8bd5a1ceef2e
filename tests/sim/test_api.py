"""The public API of imgcdn_sim is curated, and importing it loads no AWS SDK nor libvips."""

from __future__ import annotations

import subprocess
import sys

import imgcdn_sim


def test_exported_members() -> None:
    assert imgcdn_sim.__all__ == sorted(imgcdn_sim.__all__, key=lambda n: (not n.isupper(), n))
    assert imgcdn_sim.__all__ == [
        "MODES",
        "Config",
        "ModeResult",
        "Prices",
        "Shape",
        "costs",
        "make_shapes",
        "simulate",
    ]
    for name in imgcdn_sim.__all__:
        assert getattr(imgcdn_sim, name) is not None


def test_importing_the_package_loads_no_aws_sdk_and_no_libvips() -> None:
    code = (
        "import sys, imgcdn_sim;"
        "banned = ('boto3', 'botocore', 'pyvips');"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in banned))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"
