"""CloudFront signed URLs, canned and custom policy; per-tenant keys with rotation overlap (R17)."""

from __future__ import annotations

import base64
import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from imgcore.errors import ImgcoreError, InvalidRequest
from imgcore.keys import validate_tenant

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

# cryptography is imported where a key is used, not here: it costs ~25 ms of every cold start
# of `import imgcore`, and the Lambdas never sign or verify (CloudFront does).

__all__ = [
    "Keyring",
    "SignatureRejected",
    "SigningKey",
    "sign_url",
    "verify_signed_url",
]

_SIGNED_PARAMS = ("Expires", "Policy", "Signature", "Key-Pair-Id")


class SignatureRejected(ImgcoreError):
    """A signed URL is missing its signature, expired, or signed by a key not trusted."""

    http_status = 403
    permanent = True


def _cf_b64encode(raw: bytes) -> str:
    # CloudFront's URL-safe alphabet: + = / become - _ ~ (not RFC 4648's base64url).
    return base64.b64encode(raw).decode("ascii").translate(str.maketrans("+=/", "-_~"))


def _cf_b64decode(text: str) -> bytes:
    return base64.b64decode(text.translate(str.maketrans("-_~", "+=/")), validate=True)


def _epoch(moment: datetime | int) -> int:
    if isinstance(moment, int):
        return moment
    if moment.tzinfo is None:
        msg = "signing times must be timezone-aware datetimes (or epoch seconds)"
        raise InvalidRequest(msg)
    return int(moment.timestamp())


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One CloudFront key: the public key's id in the key group and its RSA private key.

    Attributes:
        key_pair_id: The CloudFront public key id (`K...`).
        private_key_pem: The PEM-encoded RSA private key (never printed).
        active_from: When signing may start using this key; during rotation the new public key
            is added to the trusted key group first and becomes active later, so URLs signed
            with either key verify throughout the overlap.
    """

    key_pair_id: str
    private_key_pem: bytes = field(repr=False)
    active_from: datetime = datetime(1970, 1, 1, tzinfo=UTC)

    def private_key(self) -> rsa.RSAPrivateKey:
        """Load the private key, refusing anything that is not RSA (CloudFront signs with RSA)."""
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

        key = serialization.load_pem_private_key(self.private_key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            msg = f"key {self.key_pair_id}: CloudFront signed URLs need an RSA private key"
            raise InvalidRequest(msg)
        return key

    def public_key_pem(self) -> bytes:
        """The PEM public key to upload to CloudFront's key group."""
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

        return (
            self.private_key()
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


class Keyring:
    """Per-tenant signing keys: each tenant signs only with its own, newest active key (R17)."""

    def __init__(self, keys: Mapping[str, Sequence[SigningKey]]) -> None:
        """Hold `keys`, a mapping of tenant id to that tenant's keys (any order)."""
        self._keys = {
            validate_tenant(tenant): tuple(sorted(ks, key=lambda k: k.active_from))
            for tenant, ks in keys.items()
        }

    def signing_key(self, tenant: str, now: datetime | None = None) -> SigningKey:
        """The key `tenant` signs with at `now`: the newest whose `active_from` has passed.

        Raises:
            InvalidRequest: The tenant has no key active at `now`.
        """
        now = now or datetime.now(UTC)
        active = [k for k in self._keys.get(tenant, ()) if k.active_from <= now]
        if not active:
            msg = f"tenant {tenant!r} has no signing key active at {now.isoformat()}"
            raise InvalidRequest(msg)
        return active[-1]

    def trusted_public_keys(self, tenant: str) -> dict[str, bytes]:
        """Every public key of `tenant` (its trusted key group), by key id."""
        return {k.key_pair_id: k.public_key_pem() for k in self._keys.get(tenant, ())}


def _policy_json(
    resource: str, expires: int, starts: int | None, ip_range: str | None
) -> tuple[str, bool]:
    condition: dict[str, dict[str, object]] = {"DateLessThan": {"AWS:EpochTime": expires}}
    if starts is not None:
        condition["DateGreaterThan"] = {"AWS:EpochTime": starts}
    if ip_range is not None:
        condition["IpAddress"] = {"AWS:SourceIp": ip_range}
    statement = {"Resource": resource, "Condition": condition}
    canned = starts is None and ip_range is None
    return json.dumps({"Statement": [statement]}, separators=(",", ":")), canned


def sign_url(
    url: str,
    key: SigningKey,
    *,
    expires: datetime | int,
    starts: datetime | int | None = None,
    ip_range: str | None = None,
    resource: str | None = None,
) -> str:
    """Sign `url` for CloudFront with a canned policy, or a custom one when needed.

    A canned policy (the short form: `Expires`, `Signature`, `Key-Pair-Id`) is used when only an
    expiry is given; `starts`, `ip_range` or a wildcard `resource` make it a custom policy
    (`Policy`, `Signature`, `Key-Pair-Id`).

    Args:
        url: The full URL to sign (scheme and host included, as the viewer will request it).
        key: The tenant's active key (see `Keyring.signing_key`).
        expires: When the URL stops working (aware datetime or epoch seconds).
        starts: When the URL starts working (custom policy).
        ip_range: Viewer CIDR allowed, e.g. `203.0.113.0/24` (custom policy).
        resource: A wildcard resource such as `https://host/img/acme/*` (custom policy).

    Returns:
        The URL with the signature parameters appended to its query.

    Raises:
        InvalidRequest: The URL already carries signature parameters, or the times are invalid.
    """
    parts = urlsplit(url)
    if any(name in _SIGNED_PARAMS for name, _ in parse_qsl(parts.query, keep_blank_values=True)):
        msg = f"URL is already signed; remove {', '.join(_SIGNED_PARAMS)} first"
        raise InvalidRequest(msg)
    expires_at = _epoch(expires)
    starts_at = None if starts is None else _epoch(starts)
    if starts_at is not None and starts_at >= expires_at:
        msg = "starts must be before expires"
        raise InvalidRequest(msg)
    policy, canned = _policy_json(resource or url, expires_at, starts_at, ip_range)
    canned = canned and resource is None
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import padding  # noqa: PLC0415

    signature = key.private_key().sign(policy.encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - CloudFront's signed-URL scheme is RSA-SHA1 by specification
    extra: list[tuple[str, str]] = (
        [("Expires", str(expires_at))] if canned else [("Policy", _cf_b64encode(policy.encode()))]
    )
    extra += [("Signature", _cf_b64encode(signature)), ("Key-Pair-Id", key.key_pair_id)]
    query = "&".join(filter(None, [parts.query, urlencode(extra, safe="~-_")]))
    return urlunsplit(parts._replace(query=query))


def verify_signed_url(
    url: str, trusted_public_keys: Mapping[str, bytes], now: datetime | None = None
) -> None:
    """Check a signed URL the way CloudFront does, for local stacks and tests.

    Args:
        url: The signed URL as requested.
        trusted_public_keys: The key group: key id to PEM public key.
        now: The time to check against (default: now).

    Raises:
        SignatureRejected: Missing or malformed signature, untrusted key, bad signature, URL not
            matching the policy's resource, expired or not yet valid.
    """
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: PLC0415

    now_epoch = _epoch(now or datetime.now(UTC))
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    found = {name: value for name, value in params if name in _SIGNED_PARAMS}
    kept = [p for p in parts.query.split("&") if p and p.partition("=")[0] not in _SIGNED_PARAMS]
    unsigned = urlunsplit(parts._replace(query="&".join(kept)))
    key_id = found.get("Key-Pair-Id")
    if key_id is None or "Signature" not in found:
        raise SignatureRejected("URL carries no Signature and Key-Pair-Id")
    if key_id not in trusted_public_keys:
        raise SignatureRejected(f"key {key_id!r} is not in the trusted key group")
    try:
        signature = _cf_b64decode(found["Signature"])
        if "Policy" in found:
            policy = _cf_b64decode(found["Policy"]).decode("utf-8")
        elif "Expires" in found:
            policy, _ = _policy_json(unsigned, int(found["Expires"]), None, None)
        else:
            raise SignatureRejected("URL carries neither Expires nor Policy")
        public_key = serialization.load_pem_public_key(trusted_public_keys[key_id])
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise SignatureRejected(f"key {key_id!r} is not an RSA public key")
        public_key.verify(signature, policy.encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - the scheme CloudFront defines
        statement = json.loads(policy)["Statement"][0]
        condition = statement["Condition"]
        resource = statement["Resource"]
    except (ValueError, KeyError, IndexError, TypeError, InvalidSignature) as exc:
        raise SignatureRejected(f"signature does not verify: {type(exc).__name__}") from None
    if not _resource_matches(resource, unsigned):
        raise SignatureRejected("URL does not match the signed policy's resource")
    if now_epoch >= int(condition["DateLessThan"]["AWS:EpochTime"]):
        raise SignatureRejected("signed URL has expired")
    starts = condition.get("DateGreaterThan", {}).get("AWS:EpochTime")
    if starts is not None and now_epoch <= int(starts):
        raise SignatureRejected("signed URL is not valid yet")


def _resource_matches(pattern: str, url: str) -> bool:
    # CloudFront resources allow '*' (any run of characters) and '?' (one character).
    return fnmatch.fnmatchcase(url, pattern.replace("[", "[[]"))
