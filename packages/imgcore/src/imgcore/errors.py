"""Typed errors of imgcore: each says what was wrong and what is allowed, and its HTTP status."""

from __future__ import annotations


class ImgcoreError(Exception):
    """Base class of every error imgcore raises on purpose.

    Attributes:
        http_status: The status an HTTP adapter should answer with (R13).
        permanent: True when retrying the same input can never succeed.
    """

    http_status: int = 500
    permanent: bool = False


class InvalidRequest(ImgcoreError, ValueError):
    """A query, path or key is outside the policy; the message says what is allowed.

    Attributes:
        field: What was wrong: `w`, `h`, `fmt`, `q` or `path` (None when not one of those).
    """

    http_status = 400
    permanent = True

    def __init__(self, message: str, *, field: str | None = None) -> None:
        """Carry `message` and the `field` it is about."""
        super().__init__(message)
        self.field = field


class InvalidKey(InvalidRequest):
    """A derivative key, source key or identifier does not follow the key layout."""


class InputRejected(ImgcoreError):
    """An original was refused before or during decoding (R16)."""

    http_status = 422
    permanent = True


class InputTooLarge(InputRejected):
    """An original breaks a size limit: bytes, pixels, frames or output pixels."""


class UnsupportedInput(InputRejected):
    """An original is in a format the policy does not admit (or not an image at all)."""

    http_status = 415


class CorruptInput(InputRejected):
    """An original claims an admitted format but cannot be decoded."""
