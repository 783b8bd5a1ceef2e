"""The viewer-request rewrite in Python: public path + query + Accept -> derivative URI (R1-R5).

This is the twin of the generated CloudFront Function; the local stack uses it, and both are
held to the same golden vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from imgcore.errors import InvalidKey, InvalidRequest
from imgcore.keys import (
    MAX_IMAGE_ID_BYTES,
    ContentClass,
    DerivativeKey,
    parse_public_path,
    validate_tenant,
    validate_version,
)
from imgcore.params import _shown, canonicalize
from imgcore.percent import decode_component
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
        _check_literal_prefix(path)
    except InvalidKey:
        raise InvalidRequest(_path_error(path), field="path") from None
    return DerivativeKey(image, version, canonicalize(query, accept, policy))


def _check_literal_prefix(path: str) -> None:
    """Refuse a class or tenant segment written with percent-escapes (`/img/%61cme/...`).

    CloudFront picks a cache behaviour by matching the path as received, so `/img/%61cme/*`
    would miss tenant acme's signed-URL behaviour (R17) and reach the unsigned default one,
    while decoding names acme all the same. Class and tenant are plain ASCII tokens: their
    only spelling is the literal one.
    """
    raw = path[1:].split("/")
    if any("%" in segment for segment in raw[:2]):
        raise InvalidKey(path)


def _path_error(path: str) -> str:
    """The 400 body the CloudFront Function sends for a path `parse_public_path` refused.

    The Function checks in this order and says only which part is wrong (it has 10 KB for
    every message); the twin answers with the same text, so a 400 reads the same locally.
    """
    classes = [c.value for c in ContentClass]
    layout = (
        "; allowed: /{class}/{tenant}/{image id}/{version} (class "
        f"{' or '.join(classes)}, tenant a-z 0-9 -, id 1-{MAX_IMAGE_ID_BYTES} UTF-8 bytes, "
        "version 16 hex digits)"
    )
    if not path.startswith("/"):
        return 'path must start with "/"' + layout
    segments = []
    for raw in path[1:].split("/"):
        try:
            segment = decode_component(raw, plus_is_space=False)
        except ValueError:
            segment = "/"
        if "/" in segment or "\\" in segment:
            return (
                f"path segment {_shown(raw)} is not percent-encoded UTF-8 or encodes "
                '"/" or "\\"' + layout
            )
        segments.append(segment)
    try:
        if len(segments) < 4 or segments[0] not in classes:
            raise InvalidKey(path)
        _check_literal_prefix(path)
        validate_tenant(segments[1])
        validate_version(segments[-1])
    except InvalidKey:
        return f"path {_shown(path)} does not name an image version" + layout
    return (
        'image id has an empty, "." or ".." segment, a backslash, an invisible character '
        "or too many bytes" + layout
    )
