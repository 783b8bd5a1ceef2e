"""The public API of imgcdn_ops is curated, and importing it loads no AWS SDK."""

from __future__ import annotations

import subprocess
import sys

import imgcdn_ops


def test_exported_members() -> None:
    assert imgcdn_ops.__all__ == sorted(imgcdn_ops.__all__)
    assert imgcdn_ops.__all__ == [
        "BulkReport",
        "InvalidationBusy",
        "InvalidationQueue",
        "Invalidator",
        "Journal",
        "TakedownError",
        "TakedownReport",
        "TakedownService",
        "Target",
        "parse_target",
        "read_requests",
        "run_bulk",
        "take_down",
    ]
    for name in imgcdn_ops.__all__:
        assert getattr(imgcdn_ops, name) is not None


def test_importing_the_package_loads_no_aws_sdk() -> None:
    code = (
        "import sys, imgcdn_ops;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
