"""Strict percent-decoding and the one canonical percent-encoding used by paths and keys."""

from __future__ import annotations

import re

__all__ = ["decode_component", "encode_path"]

_MALFORMED_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
# RFC 3986 unreserved characters plus the segment separator; everything else is escaped.
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/")


def decode_component(text: str, *, plus_is_space: bool) -> str:
    """Percent-decode `text` as UTF-8, refusing anything a lenient decoder would guess at.

    This is the same rule as JavaScript's `decodeURIComponent`, which the CloudFront Function
    uses: a `%` not followed by two hex digits, or escapes that do not form valid UTF-8
    (including encoded surrogates and overlong forms), are errors rather than literal text.

    Args:
        text: The encoded text.
        plus_is_space: Decode `+` as a space (query strings), or keep it (paths).

    Returns:
        The decoded text.

    Raises:
        ValueError: The escapes are malformed or do not decode to UTF-8.
    """
    if plus_is_space:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    if _MALFORMED_ESCAPE.search(text):
        msg = "a '%' must be followed by two hex digits"
        raise ValueError(msg)

    def _decode_run(match: re.Match[str]) -> str:
        raw = bytes.fromhex(match.group(0).replace("%", ""))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            msg = "percent-escapes do not form valid UTF-8"
            raise ValueError(msg) from None

    return _ESCAPE.sub(_decode_run, text)


def encode_path(text: str) -> str:
    """Percent-encode `text` (UTF-8) keeping only unreserved characters and `/` literal.

    The output is the single canonical URI form of a key: S3 and the local store decode it back
    to exactly `text`, so `+`, `%`, spaces and non-ASCII round-trip (R4, R5).
    """
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in text.encode("utf-8"))
