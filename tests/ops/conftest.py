"""Ops test set-up: one synth of the CDK app per session, for the drift checks to compare with.

The context is cdk.json's with one more tenant that signs URLs, so the template holds a key
group and public keys besides the policies and the Function. The assets come from
`packages/infra/scripts/build-assets.sh`, as for tests/infra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import imgcdn_infra  # noqa: F401 - points jsii at the bundled Node.js before aws_cdk loads
from imgcdn_infra.assets import workspace_root

ROOT = workspace_root(Path(__file__).parent)
ASSETS = ROOT / ".cache" / "lambda-assets"
STACK = "ImgcdnVerify"


def _public_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def verify_context() -> dict[str, Any]:
    """cdk.json's deployment plus a tenant with signed URLs, in us-east-1."""
    return {
        "imgcdn": {
            "stack_name": STACK,
            "region": "us-east-1",
            "tenants": [
                {"name": "demo"},
                {"name": "acme", "signed_urls": [{"id": "k2026a", "pem": _public_key_pem()}]},
            ],
        }
    }


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The imgcdn stack's synthesized template (once per session: jsii boots slowly)."""
    from imgcdn_infra.app import create_app

    info = ASSETS / "edge-function" / "build-info.json"
    if not info.is_file():
        pytest.fail("the Lambda assets are not built; run packages/infra/scripts/build-assets.sh")
    out = tmp_path_factory.mktemp("cdk")
    app = create_app(verify_context(), out, root=ROOT, check_assets_current=False)
    assembly = app.synth()
    return dict(assembly.get_stack_by_name(STACK).template)
