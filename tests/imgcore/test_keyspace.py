"""The key-space count agrees with what canonicalization can actually produce."""

from __future__ import annotations

import itertools

from imgcore import canonicalize
from imgcore.keyspace import key_space
from imgcore.policy import OutputFormat, Policy, StandardSet


def _every_key(policy: Policy) -> set[str]:
    """Every variant canonicalize can produce, by brute force over each parameter's values."""
    widths = [None, *policy.widths]
    heights = [None, *policy.heights]
    boxes = {(w, h) for w in widths for h in heights if w is None or h is None}
    boxes |= {(w, r.height_for(w)) for w in policy.widths for r in policy.ratio_ladder}
    variants = set()
    for (w, h), fit, g, fmt, q in itertools.product(
        boxes,
        ["cover", "contain", "pad"],
        ["center", "attention", "entropy"],
        [f.value for f in policy.output_formats],
        policy.qualities,
    ):
        query = "&".join(
            f"{n}={v}" for n, v in (("w", w), ("h", h), ("fit", fit), ("g", g)) if v is not None
        )
        variants.add(canonicalize(f"{query}&fmt={fmt}&q={q}", policy=policy).variant)
    return variants


def test_the_count_is_what_canonicalize_can_produce() -> None:
    small = Policy(
        widths=(100, 200),
        heights=(100, 300),
        ratios=("1:1", "16:9"),
        qualities=(50, 80),
        output_formats=(OutputFormat.WEBP, OutputFormat.PNG),
        auto_preference=(OutputFormat.WEBP,),
        auto_fallback=OutputFormat.PNG,
        default_format=OutputFormat.WEBP,
        default_quality={"webp": 80, "jpeg": 80, "avif": 50},
        standard=StandardSet(widths=(100, 200), formats=(OutputFormat.WEBP,)),
    )
    assert key_space(small).keys == len(_every_key(small)) == (1 + 2 + 2 + 2 * 2 * 5) * 3


def test_the_default_policy_bounds_one_image() -> None:
    space = key_space()
    assert (space.boxes, space.encodings) == (1 + 8 + 8 + 8 * 12 * 5, 3 * 6 + 1)
    assert space.keys == 9_443
