"""The viewer-request rewrite in Python: public path + query + Accept -> derivative URI (R1-R5).

This is the twin of the generated CloudFront Function; the local stack uses it, and both are
held to the same golden vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from imgcore.errors import InvalidKey, InvalidRequest
from imgcore.keys import DerivativeKey, parse_public_path
from imgcore.params import canonicalize
from imgcore.policy import DEFAULT_POLICY, Policy

__all__ = ["rewrite"]


def rewrite(
    path: str,
    query: str | Mapping[str, str | Iterable[str]],
    accept: str | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> DerivativeKey:
    """Resolve one viewer request into the derivative it asks for.

    The path is checked first, then the query (see `imgcore.params` for the order of checks).

    Args:
        path: The URI path as received, percent-encoded: `/{class}/{tenant}/{id}/{version}`.
        query: The raw query string (or a mapping of decoded values).
        accept: The `Accept` header, for `fmt=auto`.
        policy: The policy to apply.

    Returns:
        The derivative; its `.uri` is the rewritten URI and cache key, its `.key` the S3 key.

    Raises:
        InvalidRequest: The path or the query is outside the layout or the policy (`field` is
            `path`, `w`, `h`, `fmt` or `q`).
    """
    try:
        image, version = parse_public_path(path)
    except InvalidKey as exc:
        raise InvalidRequest(str(exc), field="path") from None
    return DerivativeKey(image, version, canonicalize(query, accept, policy))
