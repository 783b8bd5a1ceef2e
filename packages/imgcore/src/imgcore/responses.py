"""The HTTP caching headers every adapter sends identically: stored objects, fallback, edge."""

from __future__ import annotations

from collections.abc import Mapping

from imgcore.keys import ContentClass
from imgcore.policy import DEFAULT_POLICY, OutputFormat, Policy

__all__ = [
    "NO_STORE",
    "REDIRECT_CACHE_CONTROL",
    "cache_control",
    "derivative_headers",
    "error_cache_control",
]

NO_STORE = "no-store"
REDIRECT_CACHE_CONTROL = "private, no-store"
"""For the oversize redirect (R12): never cached, so the next request reads the stored object."""


def cache_control(content_class: ContentClass | str, policy: Policy = DEFAULT_POLICY) -> str:
    """The `Cache-Control` of a derivative, the same on the S3 object and the fallback's answer.

    Args:
        content_class: Standard (immutable per version) or takedown-eligible.
        policy: The policy whose TTLs apply.

    Returns:
        A year and `immutable` for standard content (R7), which may also be served stale while
        it is refetched or while the origin fails: its bytes never change. At most 60 s for
        takedown-eligible content, for CDN and browsers alike, since a browser cache cannot be
        invalidated (R9); a stale window there, if the policy grants one, fits in the same 60 s
        and is never `stale-while-revalidate`, which would serve a taken-down image while the
        origin is healthy.
    """
    ttl = policy.ttl
    if ContentClass(content_class) is ContentClass.TAKEDOWN:
        return ", ".join(
            [f"public, max-age={ttl.takedown}", *_stale("if-error", ttl.takedown_stale_if_error)]
        )
    return ", ".join(
        [
            f"public, max-age={ttl.immutable}, immutable",
            *_stale("while-revalidate", ttl.immutable_stale_while_revalidate),
            *_stale("if-error", ttl.immutable_stale_if_error),
        ]
    )


def _stale(kind: str, seconds: int) -> list[str]:
    """`stale-<kind>=<seconds>`, or nothing for a window of 0 (RFC 5861)."""
    return [f"stale-{kind}={seconds}"] if seconds > 0 else []


def derivative_headers(
    fmt: OutputFormat | str,
    content_class: ContentClass | str,
    policy: Policy = DEFAULT_POLICY,
) -> Mapping[str, str]:
    """The `Content-Type` and `Cache-Control` of one derivative, built in this one place (R11).

    Precompute stores a derivative with these headers and the fallback both stores and answers
    with them, so the second request for a derivative is an S3 read that looks the same.

    Args:
        fmt: The derivative's output format (`Rendered.params.fmt`).
        content_class: Standard (immutable per version) or takedown-eligible.
        policy: The policy whose TTLs apply.

    Returns:
        `{"Content-Type": ..., "Cache-Control": ...}`.

    Raises:
        ValueError: `fmt` or `content_class` is not one the policy knows.
    """
    return {
        "Content-Type": OutputFormat(fmt).media_type,
        "Cache-Control": cache_control(content_class, policy),
    }


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
