"""Infra test set-up: one synth per session of two configurations, reused by every test.

`default` is exactly what packages/infra/cdk.json deploys; `full` turns every optional feature
on (per-tenant signed URLs, WAF in its us-east-1 stack, a custom domain, reserved concurrency
shared by the queue and the backfill, the CloudFront alarms in their us-east-1 stack with the
additional metrics, the originals replicated to eu-central-1) and runs on x86_64, the
architecture cdk.json does not.
The assets come from `packages/infra/scripts/build-assets.sh`, which the test command runs first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import imgcdn_infra  # noqa: F401 - points jsii at the bundled Node.js before aws_cdk loads
from imgcdn_infra.assets import workspace_root
from imgcdn_infra.cli import load_context

ROOT = workspace_root(Path(__file__).parent)
ASSETS = ROOT / ".cache" / "lambda-assets"
ACCOUNT = "123456789012"
CERTIFICATE = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/0a1b2c3d-0000-4000-8000-000000000000"


def _edge_function_info() -> dict[str, Any]:
    info = ASSETS / "edge-function" / "build-info.json"
    if not info.is_file():
        pytest.fail(
            "the Lambda assets are not built; run packages/infra/scripts/build-assets.sh first"
        )
    return dict(json.loads(info.read_text("utf-8")))


def public_key_pem() -> str:
    """A fresh RSA public key, as a tenant would upload it to CloudFront."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def default_context() -> dict[str, Any]:
    """The context `cdk deploy` uses: packages/infra/cdk.json, nothing else."""
    return load_context(ROOT)


def full_context() -> dict[str, Any]:
    """Every optional feature on, deployed outside us-east-1 (so WAF gets its own stack)."""
    return {
        "imgcdn": {
            "account": ACCOUNT,
            "region": "eu-west-1",
            "stack_name": "ImgcdnFull",
            "verify": {"schedule": "rate(1 hour)"},
            "tenants": [
                {
                    "name": "acme",
                    "signed_urls": [
                        {"id": "k2026a", "pem": public_key_pem()},
                        {"id": "k2026b", "pem": public_key_pem()},
                    ],
                    "referers": ["acme.example", "www.acme.example"],
                },
                {"name": "globex", "referers": ["globex.example"], "allow_empty_referer": False},
                {"name": "initech"},
            ],
            "cors_origins": ["https://acme.example", "https://www.acme.example"],
            "architecture": "x86_64",
            "precompute": {
                "reserved_concurrency": 20,
                "batch_size": 5,
                "max_batching_window_seconds": 10,
                "timeout_seconds": 240,
            },
            "fallback": {"reserved_concurrency": 50, "timeout_seconds": 60},
            "waf": {"enabled": True, "rate_limit": 5000},
            "domain": {"names": ["img.acme.example"], "certificate_arn": CERTIFICATE},
            "alarms": {
                "email": "ops@acme.example",
                "precompute_render_failures": 3,
                "additional_metrics": True,
            },
            "replication": {"region": "eu-central-1"},
            "backfill": {"max_concurrency": 6},
            "takedown": {"reserved_concurrency": 3, "audit_retention_days": 3653},
            "retention": {"originals_noncurrent_days": 30, "superseded_derivatives_days": 45},
            "probes": {"direct_requests_threshold": 25, "reserved_concurrency": 2},
        }
    }


@dataclass(frozen=True)
class Synth:
    """One synthesized app: its App object (for cdk-nag), assembly folder and templates."""

    name: str
    tenants: tuple[str, ...]
    app: Any
    outdir: Path
    templates: dict[str, dict[str, Any]]
    seconds: float

    def main(self) -> dict[str, Any]:
        """The imgcdn stack's template (the one with the distribution)."""
        return next(
            t
            for t in self.templates.values()
            if any(r["Type"] == "AWS::CloudFront::Distribution" for r in t["Resources"].values())
        )


@dataclass(frozen=True)
class Synths:
    """The session's two synths."""

    default: Synth
    full: Synth

    def each(self) -> list[Synth]:
        return [self.default, self.full]


def _synth(name: str, context: dict[str, Any], outdir: Path) -> Synth:
    import time

    from imgcdn_infra.app import create_app

    started = time.perf_counter()
    # Freshness is the deploy path's guard (and tested on its own); the tests synth whatever
    # the set-up built, even if a source changed since.
    app = create_app(context, outdir, root=ROOT, check_assets_current=False)
    assembly = app.synth()
    seconds = time.perf_counter() - started
    templates = {stack.stack_name: dict(stack.template) for stack in assembly.stacks}
    tenants = tuple(t["name"] for t in context["imgcdn"]["tenants"])
    return Synth(name, tenants, app, outdir, templates, seconds)


@pytest.fixture(scope="session")
def synths(tmp_path_factory: pytest.TempPathFactory) -> Synths:
    """Both synths, once per session (jsii boots once; each synth takes a few seconds)."""
    _edge_function_info()
    base = tmp_path_factory.mktemp("cdk")
    return Synths(
        default=_synth("default", default_context(), base / "default"),
        full=_synth("full", full_context(), base / "full"),
    )


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    """`.cache/lambda-assets/` of this workspace."""
    return ASSETS


@pytest.fixture(scope="session")
def workspace() -> Path:
    """The workspace root."""
    return ROOT
