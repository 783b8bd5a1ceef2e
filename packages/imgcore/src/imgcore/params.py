"""Canonical transform parameters: the query allowlist, snapping and `fmt=auto` (R1-R3).

The rules, in the order they apply (the CloudFront Function implements exactly the same):

1. The query is split on `&` (never `;`); empty pieces are skipped. A piece is `name=value` split
   at the first `=`; a piece without `=` has an empty value. Names and values are
   percent-decoded strictly (`+` is a space); a piece whose *name* does not decode is junk.
2. Only `w`, `h`, `dpr`, `fit`, `g`, `fmt` and `q` count, matched exactly (case-sensitive).
   A name that is plainly one of them misspelt (`W`, `Fmt`, `width`, `height`, `format`,
   `quality`, `gravity`...: `MISTAKEN_NAMES`, or an allowed name in other ASCII case) is a 400
   that says which name was meant; of several, the one first in code-point order is reported.
   Everything else is junk and dropped without a trace (R1): `utm_*`, cache-busters.
3. Each allowed name may appear at most once: a repeated name is a 400, even when the values
   agree (a URL with two widths is a bug in its builder, not a preference). When several
   things are wrong, the first reported is: a misspelt name, then a repeat (in the order of
   `PARAM_NAMES`), then the values in that same order.
4. `w`, `h`, `q` are ASCII digits only: no sign, no space, no decimal point, no other script's
   digits; empty is a 400. Leading zeros are ignored (`0320` is 320), zero is a 400.
   `q` must be 1-100 and snaps up to the next rung of the ladder, clamping at the top.
5. `dpr` is a decimal number of ASCII digits with at most one `.` (`2`, `1.5`, `2.0`), above
   zero; it snaps up to the next rung of the policy's ladder (1, 1.5, 2, 3) and clamps at the
   top. It multiplies `w` and `h` before they snap (rounding up), and never enters a key:
   `w=320&dpr=2` is `w=640`. Alone it changes nothing.
6. The box. `w` alone (times dpr) snaps *up* to the next width breakpoint and clamps at the
   largest, however huge the number (R2); `h` alone likewise on the height breakpoints.
   With both, the requested aspect ratio survives: `w` snaps as above, the ratio `w/h` (of
   the numbers as sent; a huge one counts as 10,000,000) snaps to the nearest rung of the
   policy's ratio ladder, nearest in log scale (the thresholds are the geometric means of
   neighbouring rungs rounded to 4 decimals, compared as doubles; a ratio on a threshold
   goes to the wider rung),
   and the height is `w * b / a` for the rung `a:b`, rounded half up. `w=300&h=200` is
   `w=320&h=213` (3:2); `w=1200&h=630` is `w=1280&h=670` (1.91:1).
7. `fit` (with both sides only; ignored otherwise) is `cover` (the default: crop to fill the
   box), `contain` (fit inside the box, no crop) or `pad` (contain, then fill the box with the
   policy's background, transparent where the format has alpha). `g` (gravity, with
   `fit=cover` only; ignored otherwise) is `center` (the default, `centre` too: the image's
   stored focal point, else the middle), `attention` or `entropy` (libvips' smart crops).
   Both are ASCII case-insensitive; defaults never appear in a key.
8. `fmt` is ASCII case-insensitive (`WebP` is `webp`; `jpg` is `jpeg`) and must be one of the
   policy's output formats or `auto`; absent means the policy's default format (`auto`).
9. `auto` resolves from `Accept` (R3): the first format of the policy's preference (avif, webp)
   that `Accept` names explicitly with q > 0 wins; wildcards (`image/*`, `*/*`) name nothing, a
   malformed q-value excludes its entry; otherwise the policy's fallback (jpeg).
10. For PNG, `q` is validated and then dropped: PNG output is lossless. For lossy formats an
    absent `q` becomes the policy's default for that format.

A query may also be a mapping of already-decoded names to values (what web frameworks hand
over): each value is a `str` or an iterable of `str`, and rules 2-10 apply to them as above. A
name mapped to no value at all (an empty list) is a 400, like `w=`. A value of another type
(`{"w": 320}`, `None`, bytes) is a `TypeError`: that is a bug in the calling code, not a request
to answer with a 400.

Canonicalization is idempotent: `canonicalize(params.query())` returns the same params.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from imgcore.errors import InvalidRequest
from imgcore.percent import decode_component
from imgcore.policy import AUTO, DEFAULT_POLICY, OutputFormat, Policy

__all__ = [
    "HUGE_SIDE",
    "MISTAKEN_NAMES",
    "PARAM_NAMES",
    "VALUE_ALIASES",
    "Fit",
    "Gravity",
    "TransformParams",
    "accepted_formats",
    "box_is_canonical",
    "canonicalize",
    "parse_query",
    "resolve_format",
    "snap_box",
    "snap_dpr",
    "snap_height",
    "snap_quality",
    "snap_width",
]

PARAM_NAMES = ("w", "h", "dpr", "fit", "g", "fmt", "q")
"""The only query parameters that change the bytes, in the order their errors are reported
(R1, R2). `dpr` never reaches a key: it is folded into `w` and `h`."""

MISTAKEN_NAMES = {
    "width": "w",
    "height": "h",
    "format": "fmt",
    "fm": "fmt",
    "quality": "q",
    "gravity": "g",
    "crop": "fit",
}
"""Names users write for a parameter, lower-cased: a 400 that names the right one, not the
2560 px master served as if nothing had been asked (rule 2). An allowed name in other ASCII
case (`W`, `Fmt`) is treated the same way."""


class Fit(StrEnum):
    """How an image meets a box with both sides (rule 7)."""

    COVER = "cover"
    """Fill the box, cropping what sticks out (the default)."""
    CONTAIN = "contain"
    """Fit inside the box, no crop: the output is smaller than the box on one side."""
    PAD = "pad"
    """Contain, then fill the rest of the box with the policy's background."""


class Gravity(StrEnum):
    """Where a cover crop keeps its pixels (rule 7)."""

    CENTER = "center"
    """The image's stored focal point, else the middle (the default)."""
    ATTENTION = "attention"
    """libvips' attention smart crop: skin tones, saturated colour, edges."""
    ENTROPY = "entropy"
    """libvips' entropy smart crop: the busiest region."""


_ONCE = f"give each of {', '.join(PARAM_NAMES)} at most once"
VALUE_ALIASES = {"fmt": {"jpg": "jpeg"}, "g": {"centre": "center"}}
"""Other spellings of a value, per parameter (rules 7-8)."""
_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
HUGE_SIDE = 10_000_000
"""A side with more digits than `_MAX_DIGITS` counts as this many pixels in the ratio (rule 6)."""
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
# More significant digits than this is "huge": it clamps to the largest breakpoint. Seven digits
# keep every comparison exact in JavaScript's doubles too.
_MAX_DIGITS = 7
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class TransformParams:
    """One canonical derivative request: the only things that change the output bytes.

    Attributes:
        fmt: The concrete output format (never `auto`).
        w: Target width on a width breakpoint, or None.
        h: Target height: on a height breakpoint alone; with `w`, the height of a box on the
            ratio ladder (rule 6).
        q: Quality on the ladder; None exactly when `fmt` is lossless (PNG).
        fit: How the image meets a box with both sides; `cover` unless both are set.
        g: Where a cover crop keeps its pixels; `center` unless both sides are set and
            `fit` is `cover`.
    """

    fmt: OutputFormat
    w: int | None = None
    h: int | None = None
    q: int | None = None
    fit: Fit = Fit.COVER
    g: Gravity = Gravity.CENTER

    @property
    def variant(self) -> str:
        """The variant's file name in the key layout, e.g. `w320-q80.webp`, `full.png` or
        `w320-h213-pad-q80.webp` (a non-default fit or gravity follows the box)."""
        parts = []
        if self.w is not None:
            parts.append(f"w{self.w}")
        if self.h is not None:
            parts.append(f"h{self.h}")
        if self.fit is not Fit.COVER:
            parts.append(self.fit.value)
        if self.g is not Gravity.CENTER:
            parts.append(self.g.value)
        if self.q is not None:
            parts.append(f"q{self.q}")
        stem = "-".join(parts) if parts else "full"
        return f"{stem}.{self.fmt.value}"

    def query(self) -> str:
        """The canonical query string that requests exactly these params (no leading `?`)."""
        pairs = [
            (name, value)
            for name, value in (
                ("w", self.w),
                ("h", self.h),
                ("fit", None if self.fit is Fit.COVER else self.fit.value),
                ("g", None if self.g is Gravity.CENTER else self.g.value),
                ("fmt", self.fmt.value),
                ("q", self.q),
            )
            if value is not None
        ]
        return "&".join(f"{name}={value}" for name, value in pairs)

    @property
    def media_type(self) -> str:
        """The `Content-Type` of the rendered output."""
        return self.fmt.media_type


def _shown(value: str) -> str:
    """A value as a message quotes it: `ascii()`, cut after 32 characters.

    `ascii()`, not `repr()`: its escapes do not depend on the Unicode database, so the
    CloudFront Function writes the very same text, and a 400's body stays one ASCII line.
    """
    return ascii(value) if len(value) <= 32 else ascii(value[:32]) + "..."


def _mapping_values(name: str, values: object) -> list[str | InvalidRequest]:
    if isinstance(values, str):
        return [values]
    expected = "allowed: a str or an iterable of str, already percent-decoded"
    if isinstance(values, bytes | bytearray) or not isinstance(values, Iterable):
        msg = f"the value of query parameter {name!r} is a {type(values).__name__}; {expected}"
        raise TypeError(msg)
    checked: list[str | InvalidRequest] = []
    for value in values:
        if not isinstance(value, str):
            msg = (
                f"a value of query parameter {name!r} is a {type(value).__name__} "
                f"({value!r}); {expected}"
            )
            raise TypeError(msg)
        checked.append(value)
    if not checked:
        msg = f"{name} is given with no value; {_ONCE}, with a value"
        checked.append(InvalidRequest(msg, field=name))
    return checked


def _meant(name: str) -> str | None:
    """The allowed name that `name` is a misspelling of (rule 2), or None."""
    lowered = name.translate(_ASCII_LOWER)
    if lowered in PARAM_NAMES:
        return lowered if lowered != name else None
    return MISTAKEN_NAMES.get(lowered)


def _collect(
    query: str | Mapping[str, str | Iterable[str]],
) -> dict[str, list[str | InvalidRequest]]:
    """Rules 1-2: the allowlisted values in order; an undecodable value is kept as its error,
    so that it is reported in its name's turn (after the repeat check), as the Function does.
    A misspelt name is raised at once (the first in code-point order)."""
    found: dict[str, list[str | InvalidRequest]] = {}
    mistaken: set[str] = set()
    if isinstance(query, Mapping):
        for name, values in query.items():
            if name in PARAM_NAMES:
                found[name] = _mapping_values(name, values)
            elif _meant(name):
                mistaken.add(name)
    else:
        for piece in query.removeprefix("?").split("&"):
            if not piece:
                continue
            raw_name, _, raw_value = piece.partition("=")
            try:
                name = decode_component(raw_name, plus_is_space=True)
            except ValueError:
                continue
            if name not in PARAM_NAMES:
                if _meant(name):
                    mistaken.add(name)
                continue
            value: str | InvalidRequest
            try:
                value = decode_component(raw_value, plus_is_space=True)
            except ValueError as exc:
                msg = (
                    f"{name} is not valid percent-encoding: {exc} (got {_shown(raw_value)}); "
                    "allowed: UTF-8"
                )
                value = InvalidRequest(msg, field=name)
            found.setdefault(name, []).append(value)
    if mistaken:
        name = min(mistaken)
        meant = _meant(name) or ""
        msg = (
            f"query parameter {_shown(name)} is not one imgcdn reads: did you mean {meant}? "
            f"allowed: {', '.join(PARAM_NAMES)} (lower case)"
        )
        raise InvalidRequest(msg, field=meant)
    return found


def parse_query(query: str | Mapping[str, str | Iterable[str]]) -> dict[str, list[str]]:
    """Collect the allowlisted parameters of a query, dropping junk (rules 1-2).

    Args:
        query: A raw query string (with or without a leading `?`), or a mapping of names to one
            value or a sequence of values (already decoded, as web frameworks hand them over).

    Returns:
        A mapping from each allowlisted name present to its values, in order of appearance.

    Raises:
        InvalidRequest: A name is a misspelt parameter, or an allowlisted parameter's value is
            not valid percent-encoding, or a mapping gives it no value (the first such name in
            the order of `PARAM_NAMES`).
        TypeError: A mapping's value for an allowlisted name is not a str or an iterable of str.
    """
    collected = _collect(query)
    for name in PARAM_NAMES:
        for value in collected.get(name, []):
            if isinstance(value, InvalidRequest):
                raise value
    return {name: [str(v) for v in values] for name, values in collected.items()}


def _integer(name: str, value: str, allowed: str) -> int | None:
    """Parse rule 4's digits; None means "huge" (more digits than any allowed value)."""
    if not value:
        msg = f"{name} is empty; {allowed}"
        raise InvalidRequest(msg, field=name)
    if not _DIGITS.fullmatch(value):
        msg = f"{name} must be written with the digits 0-9 only (got {_shown(value)}); {allowed}"
        raise InvalidRequest(msg, field=name)
    significant = value.lstrip("0")
    if not significant:
        msg = f"{name} must be at least 1; {allowed}"
        raise InvalidRequest(msg, field=name)
    if len(significant) > _MAX_DIGITS:
        return None
    return int(significant)


def _snap_up(value: int | None, ladder: tuple[int, ...]) -> int:
    """The first rung at or above `value`; the top for a larger one or None ("huge")."""
    if value is None:
        return ladder[-1]
    i = bisect_left(ladder, value)
    return ladder[i] if i < len(ladder) else ladder[-1]


def _breakpoints_text(name: str, ladder: tuple[int, ...]) -> str:
    values = ", ".join(str(v) for v in ladder)
    return f"allowed: a whole number of pixels >= 1, snapped up to one of {values} ({name})"


def snap_width(w: int, policy: Policy = DEFAULT_POLICY) -> int:
    """Snap a width up to the next breakpoint, clamping at the largest (287 -> 320).

    Args:
        w: A requested width, at least 1.
        policy: The policy whose breakpoints apply.

    Returns:
        A member of `policy.widths`.

    Raises:
        InvalidRequest: `w` is below 1.
    """
    if w < 1:
        msg = "w must be at least 1; " + _breakpoints_text("w", policy.widths)
        raise InvalidRequest(msg, field="w")
    return _snap_up(w, policy.widths)


def snap_height(h: int, policy: Policy = DEFAULT_POLICY) -> int:
    """Snap a height up to the next breakpoint, clamping at the largest.

    Args:
        h: A requested height, at least 1.
        policy: The policy whose breakpoints apply.

    Returns:
        A member of `policy.heights`.

    Raises:
        InvalidRequest: `h` is below 1.
    """
    if h < 1:
        msg = "h must be at least 1; " + _breakpoints_text("h", policy.heights)
        raise InvalidRequest(msg, field="h")
    return _snap_up(h, policy.heights)


def _quality_text(policy: Policy) -> str:
    rungs = ", ".join(str(v) for v in policy.qualities)
    return f"allowed: 1-100, snapped up to one of {rungs}"


def snap_quality(q: int, policy: Policy = DEFAULT_POLICY) -> int:
    """Snap a quality up to the next rung of the ladder, clamping at the top.

    Args:
        q: A requested quality, 1-100.
        policy: The policy whose ladder applies.

    Returns:
        A member of `policy.qualities`.

    Raises:
        InvalidRequest: `q` is outside 1-100.
    """
    if not 1 <= q <= 100:
        msg = f"q must be between 1 and 100 (got {q}); {_quality_text(policy)}"
        raise InvalidRequest(msg, field="q")
    return _snap_up(q, policy.qualities)


def _choice(name: str, value: str, allowed_values: list[str]) -> str:
    """Rules 7-8: an ASCII case-insensitive word of `allowed_values`, aliases applied."""
    aliases = VALUE_ALIASES.get(name, {})
    shown_aliases = "".join(f" ({a} means {b})" for a, b in sorted(aliases.items()))
    allowed = f"allowed: {', '.join(allowed_values)}{shown_aliases}"
    if not value:
        msg = f"{name} is empty; {allowed}"
        raise InvalidRequest(msg, field=name)
    lowered = value.translate(_ASCII_LOWER)
    lowered = aliases.get(lowered, lowered)
    if lowered not in allowed_values:
        msg = f"{name} {_shown(value)} is not supported; {allowed}"
        raise InvalidRequest(msg, field=name)
    return lowered


def _requested_format(value: str, policy: Policy) -> OutputFormat | str:
    chosen = _choice("fmt", value, [*(f.value for f in policy.output_formats), AUTO])
    return AUTO if chosen == AUTO else OutputFormat(chosen)


def _number_text(value: float) -> str:
    """A rung as JavaScript's `String()` writes it: `2`, `1.5`."""
    return str(int(value)) if value.is_integer() else repr(value)


def _dpr_text(policy: Policy) -> str:
    rungs = ", ".join(_number_text(d) for d in policy.dprs)
    return f"allowed: a number above 0 such as 2 or 1.5, snapped up to one of {rungs}"


def snap_dpr(value: str, policy: Policy = DEFAULT_POLICY) -> float:
    """Rule 5: a `dpr` value as sent, snapped up to the policy's ladder (clamped at the top).

    Args:
        value: The decoded value, e.g. `2` or `1.5`.
        policy: The policy whose ladder applies.

    Returns:
        A member of `policy.dprs`.

    Raises:
        InvalidRequest: The value is empty, not a plain decimal number, or zero.
    """
    if not value:
        msg = f"dpr is empty; {_dpr_text(policy)}"
        raise InvalidRequest(msg, field="dpr")
    if not _DECIMAL.fullmatch(value):
        msg = (
            "dpr must be written with the digits 0-9 and at most one '.' "
            f"(got {_shown(value)}); {_dpr_text(policy)}"
        )
        raise InvalidRequest(msg, field="dpr")
    number = float(value)
    if number <= 0:
        msg = f"dpr must be above 0; {_dpr_text(policy)}"
        raise InvalidRequest(msg, field="dpr")
    i = bisect_left(policy.dprs, number)
    return policy.dprs[i] if i < len(policy.dprs) else policy.dprs[-1]


def snap_box(
    w: int | None, h: int | None, policy: Policy = DEFAULT_POLICY, dpr: float = 1.0
) -> tuple[int | None, int | None]:
    """Rules 5-6: the canonical box of a request's `w` and `h` (each None when absent).

    Args:
        w: The requested width (at least 1), or None.
        h: The requested height (at least 1), or None.
        policy: The policy whose breakpoints and ratio ladder apply.
        dpr: A rung of `policy.dprs` (see `snap_dpr`).

    Returns:
        `(w, h)`: alone, each on its breakpoints; together, `w` on a width breakpoint and `h`
        following from the nearest rung of the ratio ladder.
    """
    return _box(w, h, policy, dpr)


def box_is_canonical(params: TransformParams, policy: Policy = DEFAULT_POLICY) -> bool:
    """Whether `params`' `w` and `h` are a box that canonicalization can produce (rule 6)."""
    return _box(params.w, params.h, policy, 1.0) == (params.w, params.h)


def _box(
    w: int | Literal["huge"] | None, h: int | Literal["huge"] | None, policy: Policy, dpr: float
) -> tuple[int | None, int | None]:
    def scaled(value: int | Literal["huge"]) -> int | None:
        return None if value == "huge" else math.ceil(value * dpr)

    if w is None:
        return None, None if h is None else _snap_up(scaled(h), policy.heights)
    width = _snap_up(scaled(w), policy.widths)
    if h is None:
        return width, None
    ratio = (HUGE_SIDE if w == "huge" else w) / (HUGE_SIDE if h == "huge" else h)
    rung = policy.ratio_ladder[bisect_right(policy.ratio_thresholds, ratio)]
    return width, rung.height_for(width)


def _strip_ows(text: str) -> str:
    # HTTP optional whitespace is space and tab only; str.strip() would take more than JS does.
    return text.strip(" \t")


def accepted_formats(accept: str | None) -> frozenset[str]:
    """The media types an `Accept` header names explicitly with a q-value above zero.

    Media types are compared ASCII case-insensitively; wildcards are kept as written but never
    match a concrete format; an entry whose first `q` parameter is malformed counts as q=0.

    Args:
        accept: The raw header, or None when the request had none.

    Returns:
        The lower-cased media types that are acceptable.
    """
    if not accept:
        return frozenset()
    acceptable = set()
    for entry in accept.split(","):
        media_type, *params = entry.split(";")
        media_type = _strip_ows(media_type).translate(_ASCII_LOWER)
        if not media_type:
            continue
        weight_ok = True
        for param in params:
            key, _, value = param.partition("=")
            if _strip_ows(key).translate(_ASCII_LOWER) == "q":
                value = _strip_ows(value)
                weight_ok = bool(_QVALUE.fullmatch(value)) and any(c in "123456789" for c in value)
                break
        if weight_ok:
            acceptable.add(media_type)
    return frozenset(acceptable)


def resolve_format(accept: str | None, policy: Policy = DEFAULT_POLICY) -> OutputFormat:
    """Resolve `fmt=auto` from an `Accept` header into a concrete format (R3).

    Args:
        accept: The raw `Accept` header, or None.
        policy: The policy whose preference and fallback apply.

    Returns:
        The first of `policy.auto_preference` that `Accept` names, else `policy.auto_fallback`.
    """
    acceptable = accepted_formats(accept)
    for fmt in policy.auto_preference:
        if fmt.media_type in acceptable:
            return fmt
    return policy.auto_fallback


def canonicalize(
    query: str | Mapping[str, str | Iterable[str]],
    accept: str | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> TransformParams:
    """Turn a request's query and `Accept` header into canonical params (R1-R3).

    See this module's docstring for the rules; the CloudFront Function applies the same ones
    and both are held to the golden vectors.

    Args:
        query: The raw query string, or a mapping of decoded names to values.
        accept: The request's `Accept` header, used only when the format is `auto`.
        policy: The policy whose breakpoints, ladder and formats apply.

    Returns:
        The canonical params; `fmt` is always concrete.

    Raises:
        InvalidRequest: A parameter is repeated, has no value or is outside the policy; the
            message says what is allowed.
        TypeError: `query` is a mapping whose value for w, h, fmt or q is not a str or an
            iterable of str (a caller's bug, see this module's docstring).
    """
    found = _collect(query)
    for name in PARAM_NAMES:  # a fixed order, so the first error reported never depends on order
        values = found.get(name, [])
        if len(values) > 1:
            msg = f"{name} is given {len(values)} times; {_ONCE}"
            raise InvalidRequest(msg, field=name)

    def single(name: str) -> str | None:
        if name not in found:
            return None
        value = found[name][0]
        if isinstance(value, InvalidRequest):
            raise value  # an undecodable value is reported in its name's turn, as in the Function
        return value

    def side(name: str, ladder: tuple[int, ...]) -> int | Literal["huge"] | None:
        sent = single(name)
        if sent is None:
            return None
        value = _integer(name, sent, _breakpoints_text(name, ladder))
        return "huge" if value is None else value

    w = side("w", policy.widths)
    h = side("h", policy.heights)
    sent_dpr = single("dpr")
    dpr = 1.0 if sent_dpr is None else snap_dpr(sent_dpr, policy)
    sent_fit = single("fit")
    fit = Fit.COVER if sent_fit is None else Fit(_choice("fit", sent_fit, list(Fit)))
    sent_g = single("g")
    g = Gravity.CENTER if sent_g is None else Gravity(_choice("g", sent_g, list(Gravity)))
    sent_fmt = single("fmt")
    requested = policy.default_format if sent_fmt is None else _requested_format(sent_fmt, policy)
    sent_q = single("q")
    q = None
    if sent_q is not None:
        raw_q = _integer("q", sent_q, _quality_text(policy))
        if raw_q is None or raw_q > 100:
            msg = f"q must be between 1 and 100 (got {_shown(sent_q)}); {_quality_text(policy)}"
            raise InvalidRequest(msg, field="q")
        q = _snap_up(raw_q, policy.qualities)
    width, height = _box(w, h, policy, dpr)
    fmt = resolve_format(accept, policy) if requested == AUTO else OutputFormat(requested)
    if not fmt.lossy:
        q = None
    elif q is None:
        q = policy.default_quality.for_format(fmt)
    if width is None or height is None:
        fit, g = Fit.COVER, Gravity.CENTER
    elif fit is not Fit.COVER:
        g = Gravity.CENTER
    return TransformParams(fmt=fmt, w=width, h=height, q=q, fit=fit, g=g)
