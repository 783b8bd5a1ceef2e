"""The HTTP caching headers every adapter sends identically: stored objects, fallback, edge."""

from __future__ import annotations

from imgcore.keys import ContentClass
from imgcore.policy import DEFAULT_POLICY, Policy

__all__ = ["NO_STORE", "REDIRECT_CACHE_CONTROL", "cache_control", "error_cache_control"]

NO_STORE = "no-store"
REDIRECT_CACHE_CONTROL = "private, no-store"
"""For the oversize redirect (R12): never cached, so the next request reads the stored object."""


def cache_control(content_class: ContentClass | str, policy: Policy = DEFAULT_POLICY) -> str:
    """The `Cache-Control` of a derivative, the same on the S3 object and the fallback's answer.

    Args:
        content_class: Standard (immutable per version) or takedown-eligible.
        policy: The policy whose TTLs apply.

    Returns:
        A year and `immutable` for standard content (R7); at most 60 s for takedown-eligible
        content, for CDN and browsers alike, since a browser cache cannot be invalidated (R9).
    """
    if ContentClass(content_class) is ContentClass.TAKEDOWN:
        return f"public, max-age={policy.ttl.takedown}"
    return f"public, max-age={policy.ttl.immutable}, immutable"


def error_cache_control(status: int, policy: Policy = DEFAULT_POLICY) -> str:
    """The `Cache-Control` of an error answer (R13).

    Args:
        status: The HTTP status, 400-599.
        policy: The policy whose error TTL applies.

    Returns:
        A short explicit max-age for 4xx, `no-store` for 5xx.

    Raises:
        ValueError: `status` is not an error status.
    """
    if 400 <= status < 500:
        return f"public, max-age={policy.ttl.client_error}"
    if 500 <= status < 600:
        return NO_STORE
    msg = f"status {status} is not an error status (400-599)"
    raise ValueError(msg)
