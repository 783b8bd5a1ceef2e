"""Shared test set-up: no AWS credentials or metadata lookups, and no packet leaves loopback."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Any

import pytest

# Every process that could touch an AWS SDK gets dummy credentials and no metadata service.
for _name, _value in {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "CDK_DISABLE_CLI_TELEMETRY": "true",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_loopback(address: Any) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if host != "localhost" and (ip is None or not ip.is_loopback):
            msg = f"tests may only connect to loopback, not {address!r}"
            raise ConnectionRefusedError(msg)


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_loopback(address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_loopback(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The shared fixtures folder (events, images, golden vectors)."""
    return FIXTURES


# --- layers -------------------------------------------------------------------------------
# Every test is exactly one of `unit`, `integration` or `e2e`, by the file it lives in, so
# `pytest -m unit` is the fast edit-test loop and `./test` still runs all three.
# integration: moto, a CDK synth, a subprocess of our own CLIs, or a second JavaScript engine;
# e2e: the whole pipeline or stack end to end (servers, queues, a browser, the CDK CLI).
E2E_FILES = frozenset(
    {
        "infra/test_cli.py",
        "local/test_browser.py",
        "local/test_e2e.py",
        "local/test_takedown.py",
        "precompute/test_e2e.py",
    }
)
INTEGRATION_FILES = frozenset(
    {
        "aws/test_api.py",
        "aws/test_s3.py",
        "edge/test_api.py",
        "edge/test_bounds.py",
        "edge/test_function.py",
        "edge/test_handler.py",
        "edge/test_no_network.py",
        "edge/test_parity.py",
        "imgcore/test_api.py",
        "imgcore/test_wheel.py",
        "infra/test_assets.py",
        "infra/test_cache_keys.py",
        "infra/test_checks.py",
        "infra/test_drift.py",
        "infra/test_monitor.py",
        "infra/test_resilience.py",
        "infra/test_stack.py",
        "infra/test_takedown.py",
        "ops/test_api.py",
        "ops/test_handler.py",
        "ops/test_logscan.py",
        "ops/test_probes.py",
        "ops/test_takedown.py",
        "ops/test_verify.py",
        "precompute/test_api.py",
        "precompute/test_backfill.py",
        "precompute/test_events.py",
        "precompute/test_faults.py",
        "precompute/test_handler.py",
        "precompute/test_r11.py",
        "precompute/test_removal.py",
        "precompute/test_service.py",
        "precompute/test_superseded.py",
        "sim/test_api.py",
    }
)
LAYERS = ("unit", "integration", "e2e")


def layer_of(relative: str) -> str:
    """The layer of a test file, by its path under tests/ (`precompute/test_e2e.py`)."""
    if relative in E2E_FILES:
        return "e2e"
    if relative in INTEGRATION_FILES:
        return "integration"
    return "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every collected test with its layer (see `layer_of`)."""
    tests = ROOT / "tests"
    for item in items:
        path = Path(item.fspath)
        if tests in path.parents:
            item.add_marker(getattr(pytest.mark, layer_of(path.relative_to(tests).as_posix())))
