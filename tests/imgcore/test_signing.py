"""CloudFront signed URLs, checked against botocore's CloudFrontSigner as an independent oracle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from imgcore import (
    InvalidRequest,
    Keyring,
    SignatureRejected,
    SigningKey,
    sign_url,
    verify_signed_url,
)

URL = "https://cdn.example/img/acme/x.jpg/0123456789abcdef?w=320&fmt=webp"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@cache
def _pem(seed: int) -> bytes:
    del seed  # one key per seed value, generated once per test session
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _key(key_id: str = "K1", seed: int = 1, active_from: datetime | None = None) -> SigningKey:
    return SigningKey(key_id, _pem(seed), active_from or datetime(2020, 1, 1, tzinfo=UTC))


def _botocore_signer(key: SigningKey) -> CloudFrontSigner:
    private = serialization.load_pem_private_key(key.private_key_pem, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return CloudFrontSigner(
        key.key_pair_id,
        lambda message: private.sign(message, padding.PKCS1v15(), hashes.SHA1()),  # noqa: S303
    )


def test_canned_policy_matches_botocore() -> None:
    key = _key()
    expires = NOW + timedelta(hours=1)
    assert sign_url(URL, key, expires=expires) == _botocore_signer(key).generate_presigned_url(
        URL, date_less_than=expires
    )


def test_custom_policy_matches_botocore() -> None:
    key = _key()
    expires, starts = NOW + timedelta(hours=1), NOW - timedelta(minutes=5)
    ours = sign_url(URL, key, expires=expires, starts=starts, ip_range="203.0.113.0/24")
    policy = _botocore_signer(key).build_policy(
        URL, date_less_than=expires, date_greater_than=starts, ip_address="203.0.113.0/24"
    )
    theirs = _botocore_signer(key).generate_presigned_url(URL, policy=policy)
    # botocore writes the policy JSON with its own key order; both must verify, and carry Policy.
    assert "Policy=" in ours
    assert "Expires=" not in ours
    trusted = {key.key_pair_id: key.public_key_pem()}
    # The policy limits the viewer's address: it is checked, so it must be given.
    verify_signed_url(ours, trusted, now=NOW, viewer_ip="203.0.113.7")
    verify_signed_url(theirs, trusted, now=NOW, viewer_ip="203.0.113.7")


def test_verification_rejects_every_kind_of_bad_url() -> None:
    key, other = _key("K1", 1), _key("K2", 2)
    trusted = {key.key_pair_id: key.public_key_pem()}
    signed = sign_url(URL, key, expires=NOW + timedelta(minutes=10))
    verify_signed_url(signed, trusted, now=NOW)
    cases = {
        "expired": (signed, NOW + timedelta(minutes=11)),
        "unsigned": (URL, NOW),
        "untrusted": (sign_url(URL, other, expires=NOW + timedelta(minutes=10)), NOW),
        "tampered width": (signed.replace("w=320", "w=640"), NOW),
        "tampered expiry": (signed.replace("Expires=", "Expires=9"), NOW),
    }
    for name, (url, when) in cases.items():
        with pytest.raises(SignatureRejected):
            verify_signed_url(url, trusted, now=when)
        assert name  # the loop names each case for the reader


def test_wildcard_resource_covers_every_variant_of_an_image() -> None:
    key = _key()
    trusted = {key.key_pair_id: key.public_key_pem()}
    resource = "https://cdn.example/img/acme/x.jpg/*"
    signed = sign_url(URL, key, expires=NOW + timedelta(hours=1), resource=resource)
    policy_param = parse_qs(urlsplit(signed).query)["Policy"][0]
    other = signed.replace("w=320", "w=640")
    assert policy_param in other
    verify_signed_url(other, trusted, now=NOW)
    with pytest.raises(SignatureRejected, match="resource"):
        verify_signed_url(signed.replace("/acme/x.jpg/", "/acme/y.jpg/"), trusted, now=NOW)


def test_keyring_signs_with_the_newest_active_key_and_trusts_both_during_rotation() -> None:
    old, new = _key("KOLD", 1), _key("KNEW", 2, active_from=NOW + timedelta(days=1))
    ring = Keyring({"acme": [new, old], "globex": [_key("KG", 3)]})
    assert ring.signing_key("acme", NOW).key_pair_id == "KOLD"
    assert ring.signing_key("acme", NOW + timedelta(days=2)).key_pair_id == "KNEW"
    trusted = ring.trusted_public_keys("acme")
    assert set(trusted) == {"KOLD", "KNEW"}
    signed_before = sign_url(URL, ring.signing_key("acme", NOW), expires=NOW + timedelta(days=3))
    verify_signed_url(signed_before, trusted, now=NOW + timedelta(days=2))
    # a tenant's URL never verifies against another tenant's key group (R17)
    with pytest.raises(SignatureRejected, match="not in the trusted key group"):
        verify_signed_url(signed_before, ring.trusted_public_keys("globex"), now=NOW)
    with pytest.raises(InvalidRequest, match="no signing key"):
        ring.signing_key("initech", NOW)


def test_signing_refuses_naive_times_and_double_signing() -> None:
    key = _key()
    with pytest.raises(InvalidRequest, match="timezone-aware"):
        sign_url(URL, key, expires=datetime(2030, 1, 1))
    signed = sign_url(URL, key, expires=NOW)
    with pytest.raises(InvalidRequest, match="already signed"):
        sign_url(signed, key, expires=NOW)
