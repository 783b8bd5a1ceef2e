"""How many distinct derivative keys one image version can have under a policy (R1, R2).

Every parameter snaps to a small set, so this is a finite product: the boxes a request can name
(none, a width, a height, or a width with a rung of the ratio ladder in each fit and gravity)
times the encodings (each lossy format at each rung of the quality ladder, each lossless format
once). `dpr` adds nothing: it is folded into the box. The count is what bounds the cache's
footprint and hit ratio per image; `imgcdn policy` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgcore.params import Fit, Gravity
from imgcore.policy import DEFAULT_POLICY, Policy

__all__ = ["KeySpace", "key_space"]


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The distinct keys of one image version, by what makes them."""

    boxes: int
    """Distinct boxes: the full image, each width, each height, each width x ratio x shape."""
    encodings: int
    """Distinct (format, quality) pairs."""

    @property
    def keys(self) -> int:
        """The largest number of distinct derivative keys of one image version."""
        return self.boxes * self.encodings


def key_space(policy: Policy = DEFAULT_POLICY) -> KeySpace:
    """Count the keys one image version can have under `policy`.

    Args:
        policy: The policy whose ladders apply.

    Returns:
        The boxes, the encodings and their product.
    """
    # With both sides: each fit, and a cover crop in each gravity (its default counted once).
    shapes = len(Fit) + len(Gravity) - 1
    boxes = 1 + len(policy.widths) + len(policy.heights)
    boxes += len(policy.widths) * len(policy.ratio_ladder) * shapes
    lossy = sum(1 for f in policy.output_formats if f.lossy)
    lossless = len(policy.output_formats) - lossy
    return KeySpace(boxes=boxes, encodings=lossy * len(policy.qualities) + lossless)
