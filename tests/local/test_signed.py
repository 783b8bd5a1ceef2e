"""A signed tenant over HTTP: the oversize redirect reaches the stored object (R12, R17)."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import pyvips
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

from imgcdn_edge.config import DEFAULT_MAX_RESPONSE_BYTES
from imgcdn_edge.service import base64_size
from imgcdn_local.signed import KeyGroups, SignedTenantSpecError, parse_signed_tenant
from imgcore import SigningKey, content_version, sign_url

KEY_ID = "K2JCJMDEHXQW5F"


def _target(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def _noise_png(width: int, height: int) -> bytes:
    # Noise does not compress: its PNG at full width is over the fallback's response cap.
    band = pyvips.Image.gaussnoise(width, height, sigma=80).cast("uchar")
    return bytes(band.bandjoin([band, band]).copy(interpretation="srgb").pngsave_buffer())


@pytest.mark.slow
def test_a_signed_tenants_oversize_redirect_reaches_the_stored_object(
    start_stack: Any, tmp_path: Path
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = SigningKey(KEY_ID, pem)
    public = tmp_path / "acme.pem"
    public.write_bytes(key.public_key_pem())
    stack = start_stack(None, "--signed-tenant", f"acme={KEY_ID}:{public}")

    source = _noise_png(2560, 1000)
    stack.upload(source, "acme", "noise.png", wait=False)
    version = content_version(source)
    url = f"{stack.base_url}/img/acme/noise.png/{version}?w=2560&fmt=png&utm_source=mail"
    signed = sign_url(url, key, expires=int(time.time()) + 3600)

    # CloudFront's trusted key group: no signature, or a signature over another URL, is a 403.
    assert stack.get(_target(url)).status == 403
    tampered = signed.replace("w=2560", "w=1920")
    assert stack.get(_target(tampered)).status == 403

    first = stack.get(_target(signed))
    assert first.status == 302, first.body
    assert first.headers["cache-control"] == "private, no-store"
    # The client resolves the Location against the URL it asked: the signature comes along.
    follow = urljoin(signed, first.headers["location"])
    assert urlsplit(follow)._replace(fragment="") == urlsplit(signed)

    second = stack.get(_target(follow))
    assert second.status == 200, second.body
    assert second.headers["x-cache"] == "Miss"  # not the 302 again: it was never cached
    assert second.headers["content-type"] == "image/png"
    assert base64_size(len(second.body)) > DEFAULT_MAX_RESPONSE_BYTES  # really over the cap
    image = Image.open(io.BytesIO(second.body))
    assert (image.format, image.size) == ("PNG", (2560, 1000))
    # The retry was an S3 read of the object the fallback stored, not a second render.
    assert stack.health()["fallback_invocations"] == 1
    assert stack.get(_target(signed)).headers["x-cache"] == "Hit"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("acme", "is malformed; allowed: TENANT=KEY_ID:PUBLIC_KEY_PEM_FILE"),
        ("acme=K1", "is malformed"),
        ("Acme=K1:x.pem", "'Acme=K1:x.pem': "),
        ("acme=K1:/nonexistent/k.pem", "cannot read '/nonexistent/k.pem'"),
    ],
)
def test_a_bad_signed_tenant_value_is_one_line_saying_what_is_allowed(
    spec: str, message: str
) -> None:
    with pytest.raises(SignedTenantSpecError, match=re.escape(message)) as caught:
        parse_signed_tenant(spec)
    assert "\n" not in str(caught.value)


def test_only_the_signed_tenants_paths_as_written_need_a_signature(tmp_path: Path) -> None:
    groups = KeyGroups({"acme": {KEY_ID: b"unused"}})
    assert groups.tenant_of("/img/acme/a.jpg/0123456789abcdef") == "acme"
    assert groups.tenant_of("/ugc/acme/a.jpg/0123456789abcdef") == "acme"
    assert groups.tenant_of("/img/other/a.jpg/0123456789abcdef") is None
    assert groups.tenant_of("/img/%61cme/a.jpg/0123456789abcdef") is None  # the Function's 400
    assert groups.tenant_of("/_health") is None
