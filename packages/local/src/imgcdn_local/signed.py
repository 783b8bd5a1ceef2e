"""Signed tenants in the local stack: the trusted key groups CloudFront checks before the Function.

A tenant with public keys gets, in the distribution, one behaviour per content class
(`/{class}/{tenant}/*`) whose trusted key group holds those keys (R17): CloudFront refuses a
request without a valid signature by that tenant's keys with a 403, before the viewer-request
Function and the cache ever see it. `KeyGroups.check` does the same here, on the URL exactly as
the viewer sent it (the signature covers that URL, not a canonical one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from imgcore import ContentClass, ImgcoreError, verify_signed_url
from imgcore.keys import validate_tenant

__all__ = ["KeyGroups", "SignedTenantSpecError", "key_groups", "parse_signed_tenant"]

_CLASSES = frozenset(c.value for c in ContentClass)
_SPEC = "TENANT=KEY_ID:PUBLIC_KEY_PEM_FILE"


class SignedTenantSpecError(ImgcoreError, ValueError):
    """A `--signed-tenant` value that does not name a tenant, a key id and a readable PEM."""


@dataclass(frozen=True, slots=True)
class KeyGroups:
    """Each signed tenant's trusted public keys: tenant -> key id -> PEM public key."""

    tenants: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict)

    def tenant_of(self, path: str) -> str | None:
        """The signed tenant whose behaviour `path` (raw, as sent) falls in, or None.

        CloudFront matches path patterns on the path as received: `/img/%61cme/...` is not
        `/img/acme/*` (and the Function refuses such a path anyway).
        """
        segments = path.split("/", 3)
        if len(segments) < 4 or segments[0] or segments[1] not in _CLASSES:
            return None
        return segments[2] if segments[2] in self.tenants else None

    def check(
        self, url: str, path: str, now: datetime | None = None, *, viewer_ip: str | None = None
    ) -> None:
        """Refuse `url` as CloudFront would when its path is a signed tenant's.

        Args:
            url: The full URL the viewer asked for (scheme, host, raw path and raw query).
            path: Its raw path (picks the behaviour).
            now: The time to check against (default: now).
            viewer_ip: The viewer's address, for a policy's `IpAddress` condition.

        Raises:
            SignatureRejected: The path is a signed tenant's and the signature is missing,
                expired, not by one of that tenant's keys, or not over this URL.
        """
        tenant = self.tenant_of(path)
        if tenant is not None:
            verify_signed_url(url, self.tenants[tenant], now, viewer_ip=viewer_ip)


def parse_signed_tenant(spec: str) -> tuple[str, str, bytes]:
    """Read one `TENANT=KEY_ID:PUBLIC_KEY_PEM_FILE` value of `imgcdn dev --signed-tenant`.

    Returns:
        (tenant, key id, PEM bytes).

    Raises:
        SignedTenantSpecError: The value is malformed, or the file is missing or not a PEM
            public key.
    """
    tenant, eq, rest = spec.partition("=")
    key_id, colon, pem_path = rest.partition(":")
    if not (eq and colon and tenant and key_id and pem_path):
        msg = f"--signed-tenant {spec!r} is malformed; allowed: {_SPEC}"
        raise SignedTenantSpecError(msg)
    try:
        validate_tenant(tenant)
    except ImgcoreError as exc:
        msg = f"--signed-tenant {spec!r}: {exc}"
        raise SignedTenantSpecError(msg) from None
    try:
        pem = Path(pem_path).read_bytes()
    except OSError as exc:
        msg = f"--signed-tenant {spec!r}: cannot read {pem_path!r} ({exc.strerror}); {_SPEC}"
        raise SignedTenantSpecError(msg) from None
    if b"-----BEGIN PUBLIC KEY-----" not in pem:
        msg = f"--signed-tenant {spec!r}: {pem_path!r} is not a PEM public key (BEGIN PUBLIC KEY)"
        raise SignedTenantSpecError(msg)
    return tenant, key_id, pem


def key_groups(specs: list[str]) -> KeyGroups:
    """The key groups of every `--signed-tenant` value (a tenant may be given several keys)."""
    tenants: dict[str, dict[str, bytes]] = {}
    for spec in specs:
        tenant, key_id, pem = parse_signed_tenant(spec)
        tenants.setdefault(tenant, {})[key_id] = pem
    return KeyGroups(tenants)
