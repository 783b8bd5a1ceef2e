"""Signed URLs: every custom-policy condition is enforced, every malformed policy is rejected."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from functools import cache
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from imgcore import InvalidRequest, SignatureRejected, SigningKey, sign_url, verify_signed_url

URL = "https://cdn.example/img/acme/x.jpg/0123456789abcdef?w=320&fmt=webp"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EPOCH = int(NOW.timestamp())
LATER = EPOCH + 600


@cache
def _key() -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SigningKey("K1", pem)


def trusted() -> dict[str, bytes]:
    return {"K1": _key().public_key_pem()}


def cf64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().translate(str.maketrans("+=/", "-_~"))


def signed_with(policy: object | str) -> str:
    """`URL` with a custom policy of exactly this text, signed by the trusted key."""
    text = policy if isinstance(policy, str) else json.dumps(policy)
    signature = _key().private_key().sign(text.encode(), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - CloudFront's scheme
    extra = {"Policy": cf64(text.encode()), "Signature": cf64(signature), "Key-Pair-Id": "K1"}
    return f"{URL}&{urlencode(extra, safe='~-_')}"


def statement(**condition: object) -> dict[str, object]:
    return {"Statement": [{"Resource": URL, "Condition": condition}]}


def test_an_ip_condition_is_rejected_when_the_viewer_is_unknown() -> None:
    url = sign_url(URL, _key(), expires=LATER, ip_range="203.0.113.0/24")
    with pytest.raises(SignatureRejected, match=r"203\.0\.113\.0/24 and the viewer's address"):
        verify_signed_url(url, trusted(), NOW)
    with pytest.raises(SignatureRejected, match="limited to viewers in"):
        verify_signed_url(url, trusted(), NOW, viewer_ip="198.51.100.7")
    with pytest.raises(SignatureRejected, match="is not an address"):
        verify_signed_url(url, trusted(), NOW, viewer_ip="nonsense")
    verify_signed_url(url, trusted(), NOW, viewer_ip="203.0.113.9")
    verify_signed_url(url, trusted(), NOW, viewer_ip="::ffff:203.0.113.9")  # dual-stack view


def test_an_ipv6_range_is_enforced() -> None:
    url = sign_url(URL, _key(), expires=LATER, ip_range="2001:db8::/32")
    verify_signed_url(url, trusted(), NOW, viewer_ip="2001:db8::1")
    with pytest.raises(SignatureRejected):
        verify_signed_url(url, trusted(), NOW, viewer_ip="2001:db9::1")
    with pytest.raises(SignatureRejected):
        verify_signed_url(url, trusted(), NOW, viewer_ip="203.0.113.9")


def test_every_supported_condition_is_enforced_together() -> None:
    url = signed_with(
        statement(
            DateLessThan={"AWS:EpochTime": LATER},
            DateGreaterThan={"AWS:EpochTime": EPOCH - 60},
            IpAddress={"AWS:SourceIp": "10.0.0.0/8"},
        )
    )
    verify_signed_url(url, trusted(), NOW, viewer_ip="10.1.2.3")
    with pytest.raises(SignatureRejected, match="expired"):
        verify_signed_url(url, trusted(), NOW + timedelta(hours=1), viewer_ip="10.1.2.3")
    with pytest.raises(SignatureRejected, match="not valid yet"):
        verify_signed_url(url, trusted(), NOW - timedelta(hours=1), viewer_ip="10.1.2.3")


def test_a_policy_without_a_resource_covers_every_url() -> None:
    url = signed_with({"Statement": [{"Condition": {"DateLessThan": {"AWS:EpochTime": LATER}}}]})
    verify_signed_url(url, trusted(), NOW)


def test_a_resource_wildcard_matches_one_character_with_question_mark() -> None:
    policy = statement(DateLessThan={"AWS:EpochTime": LATER})
    policy["Statement"][0]["Resource"] = URL.replace("x.jpg", "?.jpg")  # type: ignore[index]
    verify_signed_url(signed_with(policy), trusted(), NOW)
    policy["Statement"][0]["Resource"] = URL.replace("x.jpg", "??.jpg")  # type: ignore[index]
    with pytest.raises(SignatureRejected, match="resource"):
        verify_signed_url(signed_with(policy), trusted(), NOW)


LESS = {"AWS:EpochTime": LATER}
MALFORMED: dict[str, object] = {
    "not json": "{not json",
    "not an object": "[]",
    "extra top-level member": {**statement(DateLessThan=LESS), "Version": "2012-10-17"},
    "statement not a list": {"Statement": {"Condition": {"DateLessThan": LESS}}},
    "no statement": {"Statement": []},
    "two statements": {"Statement": [statement(DateLessThan=LESS)["Statement"][0]] * 2},  # type: ignore[index]
    "statement not an object": {"Statement": ["x"]},
    "no condition": {"Statement": [{"Resource": URL}]},
    "unknown statement member": {
        "Statement": [{"Resource": URL, "Effect": "Allow", "Condition": {"DateLessThan": LESS}}]
    },
    "resource not a string": {"Statement": [{"Resource": 7, "Condition": {"DateLessThan": LESS}}]},
    "empty resource": {"Statement": [{"Resource": "", "Condition": {"DateLessThan": LESS}}]},
    "condition not an object": {"Statement": [{"Resource": URL, "Condition": []}]},
    "no expiry": statement(DateGreaterThan={"AWS:EpochTime": 1}),
    "unknown condition": statement(DateLessThan=LESS, StringEquals={"AWS:Referer": "x"}),
    "expiry not an object": statement(DateLessThan=LATER),
    "expiry with another key": statement(DateLessThan={"AWS:EpochTime": LATER, "x": 1}),
    "expiry as a string": statement(DateLessThan={"AWS:EpochTime": str(LATER)}),
    "expiry as a float": statement(DateLessThan={"AWS:EpochTime": LATER + 0.5}),
    "expiry as a bool": statement(DateLessThan={"AWS:EpochTime": True}),
    "expiry as null": statement(DateLessThan={"AWS:EpochTime": None}),
    "negative start": statement(DateLessThan=LESS, DateGreaterThan={"AWS:EpochTime": -1}),
    "ip not a string": statement(DateLessThan=LESS, IpAddress={"AWS:SourceIp": 10}),
    "ip not a cidr": statement(DateLessThan=LESS, IpAddress={"AWS:SourceIp": "10.0.0.300/8"}),
    "ip with host bits": statement(DateLessThan=LESS, IpAddress={"AWS:SourceIp": "10.0.0.1/8"}),
    "ip list": statement(DateLessThan=LESS, IpAddress={"AWS:SourceIp": ["10.0.0.0/8"]}),
}


@pytest.mark.parametrize("policy", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_policy_signed_by_a_trusted_key_is_a_typed_rejection(policy: object) -> None:
    url = signed_with(policy)
    with pytest.raises(SignatureRejected, match=r"^signed policy is malformed: .*; allowed: "):
        verify_signed_url(url, trusted(), NOW, viewer_ip="10.1.2.3")


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("Expires=soon&Signature=AAAA&Key-Pair-Id=K1", "does not verify"),
        ("Policy=%%%&Signature=AAAA&Key-Pair-Id=K1", "does not verify"),
        ("Policy=" + cf64(b"\xff\xfe") + "&Signature=AAAA&Key-Pair-Id=K1", "does not verify"),
        ("Signature=AAAA&Key-Pair-Id=K1", "neither Expires nor Policy"),
    ],
)
def test_garbled_signature_parameters_are_typed_rejections(query: str, reason: str) -> None:
    with pytest.raises(SignatureRejected, match=reason):
        verify_signed_url(f"{URL}&{query}", trusted(), NOW)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ip_range": "10.0.0.1/8"}, "not a CIDR range"),
        ({"ip_range": "somewhere"}, "not a CIDR range"),
        ({"resource": ""}, "resource must not be empty"),
        ({"expires": -5}, "epoch seconds >= 0"),
    ],
)
def test_the_signer_refuses_what_cloudfront_would_not_accept(
    kwargs: dict[str, object], match: str
) -> None:
    arguments: dict[str, object] = {"expires": LATER, **kwargs}
    with pytest.raises(InvalidRequest, match=match):
        sign_url(URL, _key(), **arguments)  # type: ignore[arg-type]
