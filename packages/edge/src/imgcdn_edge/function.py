"""Generate the viewer-request CloudFront Function from the policy (R1-R5).

The logic is one hand-written template, `viewer_request.js.tmpl`; the policy's values are
injected as one JSON literal, so the Function and `imgcore.rewrite` can never disagree on a
breakpoint, a rung of the ladder or a format. Both are held to the golden vectors in tests.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any, Final

from imgcore import DEFAULT_POLICY, ContentClass, ImgcoreError, OutputFormat, Policy
from imgcore.keys import MAX_IMAGE_ID_BYTES

__all__ = [
    "MAX_FUNCTION_BYTES",
    "TEMPLATE_NAME",
    "FunctionTooLarge",
    "function_values",
    "render_function",
]

TEMPLATE_NAME: Final = "viewer_request.js.tmpl"
MAX_FUNCTION_BYTES: Final = 10 * 1024
"""CloudFront's limit on a Function's code size."""
_PLACEHOLDER: Final = "/*POLICY*/{}"
# imgcore.params: a value with more significant digits than this is "huge" and clamps (rule 4).
# Seven digits keep every comparison exact in JavaScript's doubles; a test holds the two equal.
_MAX_DIGITS: Final = 7


class FunctionTooLarge(ImgcoreError, ValueError):
    """The generated Function would exceed CloudFront's 10 KB code limit."""


def function_values(policy: Policy = DEFAULT_POLICY) -> dict[str, Any]:
    """The policy values the Function needs, as injected into the template.

    Args:
        policy: The policy to generate for.

    Returns:
        A JSON-ready mapping: breakpoints, ladder, formats, `fmt=auto` preference and fallback,
        default qualities, the 4xx max-age and the key layout's limits.
    """
    return {
        "classes": [c.value for c in ContentClass],
        "defaultFormat": str(policy.default_format),
        "defaultQuality": {
            f.value: policy.default_quality.for_format(f) for f in policy.output_formats if f.lossy
        },
        "errorMaxAge": policy.ttl.client_error,
        "fallback": policy.auto_fallback.value,
        "formats": [f.value for f in policy.output_formats],
        "heights": list(policy.heights),
        "lossless": [f.value for f in OutputFormat if not f.lossy],
        "maxDigits": _MAX_DIGITS,
        "maxIdBytes": MAX_IMAGE_ID_BYTES,
        "media": {f.value: f.media_type for f in policy.output_formats},
        "preference": [f.value for f in policy.auto_preference],
        "qualities": list(policy.qualities),
        "widths": list(policy.widths),
    }


def _compact(template: str) -> str:
    """The template as deployed: its header comment, then its code lines, unindented.

    CloudFront counts every byte; the comments explain the code to its maintainers and the
    header says where they are. The rule works on whole lines only: it drops blank lines and
    lines that are nothing but a `//` comment, and strips the space around each line. ES5 has
    no multi-line string or regex literal except through a trailing backslash (refused below),
    so no literal can change, and every line break stays where it was (ASI sees the same code).
    """
    lines = template.splitlines()
    header = 0
    while header < len(lines) and lines[header].startswith("//"):
        header += 1
    kept = lines[:header]
    for line in lines[header:]:
        code = line.strip()
        if code and not code.startswith("//"):
            kept.append(code)
    continued = [line for line in kept if line.endswith("\\")]
    if continued:  # pragma: no cover - guards edits of the template
        msg = f"{TEMPLATE_NAME} continues a line with a backslash: {continued[0]!r}"
        raise RuntimeError(msg)
    return "\n".join(kept) + "\n"


def render_function(policy: Policy = DEFAULT_POLICY) -> str:
    """The viewer-request Function's JavaScript for `policy` (cloudfront-js-2.0, ES5 style).

    Args:
        policy: The policy whose values are injected.

    Returns:
        The source code, ready to publish.

    Raises:
        FunctionTooLarge: The code would exceed CloudFront's 10 KB limit.
    """
    template = files("imgcdn_edge").joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")
    if template.count(_PLACEHOLDER) != 1:  # pragma: no cover - guards edits of the template
        msg = f"{TEMPLATE_NAME} must hold the placeholder {_PLACEHOLDER} exactly once"
        raise RuntimeError(msg)
    # ensure_ascii: the literal is plain ASCII, whatever the policy holds.
    literal = json.dumps(function_values(policy), sort_keys=True, separators=(",", ":"))
    source = _compact(template).replace(_PLACEHOLDER, literal)
    size = len(source.encode("utf-8"))
    if size > MAX_FUNCTION_BYTES:
        msg = (
            f"the generated Function is {size:,} bytes; allowed: at most "
            f"{MAX_FUNCTION_BYTES:,} (CloudFront's limit). Shorten the policy's ladders."
        )
        raise FunctionTooLarge(msg)
    return source
