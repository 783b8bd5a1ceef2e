"""CloudFront signed URLs, canned and custom policy; per-tenant keys with rotation overlap (R17)."""

from __future__ import annotations

import base64
import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
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
        InvalidRequest: The URL already carries signature parameters, the times are invalid,
            `ip_range` is not a CIDR range, or `resource` is empty.
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
    if expires_at < 0 or (starts_at is not None and starts_at < 0):
        msg = "signing times must be at or after 1970-01-01 (epoch seconds >= 0)"
        raise InvalidRequest(msg)
    if ip_range is not None:
        try:
            ip_range = str(ip_network(ip_range, strict=True))
        except ValueError:
            msg = (
                f"ip_range {ip_range!r} is not a CIDR range; allowed: an IPv4 or IPv6 network "
                "such as 203.0.113.0/24 (no host bits set)"
            )
            raise InvalidRequest(msg) from None
    if resource is not None and not resource:
        msg = "resource must not be empty; allowed: a URL, with * and ? as wildcards"
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
    url: str,
    trusted_public_keys: Mapping[str, bytes],
    now: datetime | None = None,
    *,
    viewer_ip: str | None = None,
) -> None:
    """Check a signed URL the way CloudFront does, for local stacks and tests.

    The policy is held to CloudFront's custom-policy format: one statement; an optional
    `Resource` string (`*` and `?` wildcards; absent means every URL); a `Condition` with the
    required `DateLessThan` and the optional `DateGreaterThan` (`{"AWS:EpochTime": <int>}`) and
    `IpAddress` (`{"AWS:SourceIp": "<CIDR>"}`, IPv4 or IPv6), and nothing else. Every condition
    is enforced; anything else in the policy is a rejection, never a pass.

    Args:
        url: The signed URL as requested.
        trusted_public_keys: The key group: key id to PEM public key.
        now: The time to check against (default: now).
        viewer_ip: The viewer's address. A policy with `IpAddress` is rejected when it is
            unknown (None), as it cannot be checked.

    Raises:
        SignatureRejected: Missing or malformed signature or policy, untrusted key, bad
            signature, URL not matching the policy's resource, expired, not yet valid, or a
            viewer address outside (or not known to be inside) the policy's range.
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
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise SignatureRejected(f"signature does not verify: {type(exc).__name__}") from None
    terms = _parse_policy(policy)
    if terms.resource is not None and not _resource_matches(terms.resource, unsigned):
        raise SignatureRejected("URL does not match the signed policy's resource")
    if now_epoch >= terms.expires:
        raise SignatureRejected("signed URL has expired")
    if terms.starts is not None and now_epoch <= terms.starts:
        raise SignatureRejected("signed URL is not valid yet")
    if terms.source_ip is not None:
        _check_viewer(terms.source_ip, viewer_ip)


@dataclass(frozen=True, slots=True)
class _PolicyTerms:
    """What a signed policy allows: every condition CloudFront's custom policies support."""

    resource: str | None
    expires: int
    starts: int | None
    source_ip: IPv4Network | IPv6Network | None


# The one statement's members, and its conditions' (name -> the key inside it).
_STATEMENT_KEYS = frozenset({"Resource", "Condition"})
_CONDITIONS = {
    "DateLessThan": "AWS:EpochTime",
    "DateGreaterThan": "AWS:EpochTime",
    "IpAddress": "AWS:SourceIp",
}


_POLICY_FORMAT = (
    'allowed: {"Statement": [{"Resource": "<url, * and ? wildcards>", "Condition": '
    '{"DateLessThan": {"AWS:EpochTime": <int>}, "DateGreaterThan": {"AWS:EpochTime": <int>}, '
    '"IpAddress": {"AWS:SourceIp": "<CIDR>"}}}] (only DateLessThan required)'
)


def _malformed(what: str) -> SignatureRejected:
    return SignatureRejected(f"signed policy is malformed: {what}; {_POLICY_FORMAT}")


def _parse_policy(text: str) -> _PolicyTerms:
    """A signed policy's terms, or a `SignatureRejected` that says what is malformed."""
    try:
        document = json.loads(text)
    except ValueError:
        raise _malformed("not JSON") from None
    if not isinstance(document, dict) or set(document) != {"Statement"}:
        raise _malformed("the document must be an object with only Statement")
    statements = document["Statement"]
    if not isinstance(statements, list) or len(statements) != 1:
        raise _malformed("Statement must be a list of exactly one statement")
    statement = statements[0]
    if not isinstance(statement, dict) or "Condition" not in statement:
        raise _malformed("the statement must be an object with a Condition")
    unknown = sorted(set(statement) - _STATEMENT_KEYS)
    if unknown:
        raise _malformed(f"the statement has unsupported members {', '.join(unknown)}")
    resource = statement.get("Resource")
    if resource is not None and not (isinstance(resource, str) and resource):
        raise _malformed("Resource must be a non-empty string")
    values = _condition_values(statement["Condition"])
    if "DateLessThan" not in values:
        raise _malformed("DateLessThan is required")
    return _PolicyTerms(
        resource,
        _epoch_value("DateLessThan", values["DateLessThan"]),
        None
        if "DateGreaterThan" not in values
        else _epoch_value("DateGreaterThan", values["DateGreaterThan"]),
        None if "IpAddress" not in values else _network_value(values["IpAddress"]),
    )


def _condition_values(condition: object) -> dict[str, object]:
    """Each condition's one value, by condition name; unknown conditions are malformed."""
    if not isinstance(condition, dict):
        raise _malformed("Condition must be an object")
    unsupported = sorted(set(condition) - set(_CONDITIONS))
    if unsupported:
        # An unknown condition cannot be enforced, so it cannot be let through either.
        raise _malformed(f"unsupported conditions {', '.join(unsupported)}")
    values: dict[str, object] = {}
    for name, value in condition.items():
        inner = _CONDITIONS[name]
        if not isinstance(value, dict) or set(value) != {inner}:
            raise _malformed(f'{name} must be {{"{inner}": ...}} and nothing else')
        values[name] = value[inner]
    return values


def _epoch_value(name: str, value: object) -> int:
    if type(value) is not int or value < 0:  # bool is an int subclass: not a time
        raise _malformed(f"{name} must be whole epoch seconds, got {value!r}")
    return value


def _network_value(value: object) -> IPv4Network | IPv6Network:
    if not isinstance(value, str):
        raise _malformed(f"AWS:SourceIp must be a CIDR string, got {value!r}")
    try:
        return ip_network(value, strict=True)
    except ValueError:
        raise _malformed(f"AWS:SourceIp {value!r} is not a CIDR range") from None


def _check_viewer(network: IPv4Network | IPv6Network, viewer_ip: str | None) -> None:
    if viewer_ip is None:
        msg = f"signed URL is limited to viewers in {network} and the viewer's address is unknown"
        raise SignatureRejected(msg)
    try:
        address = ip_address(viewer_ip)
    except ValueError:
        msg = f"signed URL is limited to viewers in {network}; {viewer_ip!r} is not an address"
        raise SignatureRejected(msg) from None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 viewer
    if address not in network:
        raise SignatureRejected(f"signed URL is limited to viewers in {network}")


def _resource_matches(pattern: str, url: str) -> bool:
    # CloudFront resources allow '*' (any run of characters) and '?' (one character).
    return fnmatch.fnmatchcase(url, pattern.replace("[", "[[]"))
