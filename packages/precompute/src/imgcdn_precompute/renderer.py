"""The pixels port of the precompute service, and its implementation over `imgcore.pixels`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from imgcore.manifest import Placeholder
from imgcore.params import TransformParams
from imgcore.policy import OutputFormat, Policy

if TYPE_CHECKING:
    from imgcore.pixels import Rendered, SourceInfo

__all__ = ["PixelRenderer", "Renderer", "placeholder_source"]

# Decoding the smallest derivative for the placeholder: formats in the order they decode fastest.
_PLACEHOLDER_SOURCE_ORDER = (OutputFormat.JPEG, OutputFormat.WEBP, OutputFormat.PNG)


class Renderer(Protocol):
    """The pixels port: what the service needs from `imgcore.pixels`."""

    def probe(self, data: bytes, policy: Policy) -> SourceInfo:
        """Admit an original and read its header (see `imgcore.pixels.probe`)."""
        ...

    def render(
        self, data: bytes, params: Sequence[TransformParams], policy: Policy
    ) -> list[Rendered]:
        """Render many variants from one decode (see `imgcore.pixels.render_variants`)."""
        ...

    def placeholder(self, data: bytes, policy: Policy) -> Placeholder:
        """A dominant colour and a tiny preview (see `imgcore.pixels.placeholder`)."""
        ...


class PixelRenderer:
    """The `Renderer` over `imgcore.pixels`, which loads libvips on first use."""

    def probe(self, data: bytes, policy: Policy) -> SourceInfo:
        """See `imgcore.pixels.probe`."""
        from imgcore import pixels  # noqa: PLC0415 - libvips loads only when pixels are needed

        return pixels.probe(data, policy)

    def render(
        self, data: bytes, params: Sequence[TransformParams], policy: Policy
    ) -> list[Rendered]:
        """See `imgcore.pixels.render_variants`."""
        from imgcore import pixels  # noqa: PLC0415

        return pixels.render_variants(data, params, policy)

    def placeholder(self, data: bytes, policy: Policy) -> Placeholder:
        """See `imgcore.pixels.placeholder`."""
        from imgcore import pixels  # noqa: PLC0415

        return pixels.placeholder(data, policy)


def placeholder_source(rendered: Sequence[Rendered], original: bytes, policy: Policy) -> bytes:
    """The smallest derivative that the policy admits as input (one cheap decode), else the
    original."""
    admitted = {f.value for f in policy.input_formats}
    candidates = [
        r
        for r in rendered
        if r.params.fmt.value in admitted and r.params.fmt in _PLACEHOLDER_SOURCE_ORDER
    ] or [r for r in rendered if r.params.fmt.value in admitted]
    if not candidates:
        return original

    def cost(r: Rendered) -> tuple[int, int]:
        order = (
            _PLACEHOLDER_SOURCE_ORDER.index(r.params.fmt)
            if r.params.fmt in _PLACEHOLDER_SOURCE_ORDER
            else len(_PLACEHOLDER_SOURCE_ORDER)
        )
        return r.width * r.height, order

    return min(candidates, key=cost).data
