"""The public API of imgcdn_aws is curated, and importing it loads no AWS SDK."""

from __future__ import annotations

import subprocess
import sys

import imgcdn_aws


def test_exported_members() -> None:
    assert imgcdn_aws.__all__ == sorted(imgcdn_aws.__all__)
    assert imgcdn_aws.__all__ == [
        "ConfigError",
        "Metrics",
        "Settings",
        "Unit",
        "configure_logging",
    ]
    for name in imgcdn_aws.__all__:
        assert getattr(imgcdn_aws, name) is not None


def test_importing_the_package_loads_no_aws_sdk() -> None:
    """The fallback imports the EMF and log helpers at cold start; boto3 loads with S3Store."""
    code = (
        "import sys, imgcdn_aws;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"
