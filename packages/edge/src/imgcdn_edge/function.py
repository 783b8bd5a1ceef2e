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
from imgcore.params import (
    HUGE_SIDE,
    MISTAKEN_NAMES,
    PARAM_NAMES,
    VALUE_ALIASES,
    Fit,
    Gravity,
)

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
        "aliases": VALUE_ALIASES,
        "classes": [c.value for c in ContentClass],
        "dprs": list(policy.dprs),
        "fits": [f.value for f in Fit],
        "gravities": [g.value for g in Gravity],
        "huge": HUGE_SIDE,
        "mistaken": MISTAKEN_NAMES,
        "names": list(PARAM_NAMES),
        "ratios": [[r.width, r.height] for r in policy.ratio_ladder],
        "thresholds": list(policy.ratio_thresholds),
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


_WORD = re.compile(r"[A-Za-z0-9_$]")
# After these tokens a `/` starts a regex literal; after anything else it divides.
_BEFORE_REGEX = frozenset("(,=:[!&|?{};+-*%<>~^") | {"return", "typeof"}
# A line ending in one of these continues on the next, or ends a statement by itself.
_JOINS = tuple("{};,([+-*/%=&|?:!<>")


def _token_end(line: str, i: int, previous: str) -> int:
    """Where the token that starts at `line[i]` ends (strings and regexes whole)."""
    c = line[i]
    if c in "'\"" or (c == "/" and previous in _BEFORE_REGEX):
        j, in_class = i + 1, False
        while line[j] != c or in_class:
            if line[j] == "\\":
                j += 1
            elif c == "/" and line[j] in "[]":
                in_class = line[j] == "["
            j += 1
        j += 1
        while c == "/" and j < len(line) and _WORD.match(line[j]):
            j += 1  # flags
        return j
    if _WORD.match(c):
        j = i
        while j < len(line) and _WORD.match(line[j]):
            j += 1
        return j
    return i + 1


def _squeeze(line: str) -> str:
    """One code line without the spaces it does not need and without a trailing comment.

    A small tokenizer (identifiers, strings, regex literals, single punctuation), enough for
    the template's ES5: a space stays only between two word characters, or between two `+`
    or two `-` (`a + +b`); strings and regex literals are copied as they are.
    """
    out: list[str] = []
    i, spaced = 0, False
    while i < len(line):
        if line[i] in " \t":
            i, spaced = i + 1, True
            continue
        if line.startswith("//", i):
            break
        previous = out[-1] if out else ";"
        end = _token_end(line, i, previous)
        token = line[i:end]
        last = previous[-1]
        if (
            spaced
            and out
            and (
                (_WORD.match(last) and _WORD.match(token[0])) or (last in "+-" and token[0] == last)
            )
        ):
            out.append(" ")
        out.append(token)
        i, spaced = end, False
    return "".join(out)


def _compact(template: str) -> str:
    """The template as deployed: its header comment, then its code, minified.

    CloudFront counts every byte; the comments and the spacing explain the code to its
    maintainers and the header says where they are. Blank lines, comments and the spaces
    between tokens go (see `_squeeze`), and a line joins the next when it ends in a token that
    cannot end a statement silently (`{ } ; ,` or an operator), so automatic semicolon
    insertion sees the same code. ES5 has no multi-line string or regex literal except through
    a trailing backslash (refused below), so no literal can change. The golden vectors run on
    this output in node and njs.
    """
    lines = template.splitlines()
    header = 0
    while header < len(lines) and lines[header].startswith("//"):
        header += 1
    code: list[str] = []
    for line in lines[header:]:
        squeezed = _squeeze(line.strip())
        if not squeezed:
            continue
        if squeezed.endswith("\\"):  # pragma: no cover - guards edits of the template
            msg = f"{TEMPLATE_NAME} continues a line with a backslash: {line!r}"
            raise RuntimeError(msg)
        if code and code[-1].endswith(_JOINS):
            code[-1] += squeezed
        else:
            code.append(squeezed)
    return "\n".join([*lines[:header], *code]) + "\n"


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
