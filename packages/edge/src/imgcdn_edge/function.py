"""Generate the viewer-request CloudFront Function from the policy (R1-R5).

The logic is one hand-written template, `viewer_request.js.tmpl`; the policy's values are
injected as one JSON literal, so the Function and `imgcore.rewrite` can never disagree on a
breakpoint, a rung of the ladder or a format. Both are held to the golden vectors in tests.
"""

from __future__ import annotations

import json
import re
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
_INDENTED_COMMENT: Final = re.compile(r"^[ \t]+//[^\n]*\n", re.MULTILINE)
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
    # The template's indented comments explain the code to its maintainers; the deployed copy
    # drops them (CloudFront counts every byte) and keeps the header that says where they are.
    template = _INDENTED_COMMENT.sub("", template)
    source = template.replace(_PLACEHOLDER, literal)
    size = len(source.encode("utf-8"))
    if size > MAX_FUNCTION_BYTES:
        msg = (
            f"the generated Function is {size:,} bytes; allowed: at most "
            f"{MAX_FUNCTION_BYTES:,} (CloudFront's limit). Shorten the policy's ladders."
        )
        raise FunctionTooLarge(msg)
    return source
