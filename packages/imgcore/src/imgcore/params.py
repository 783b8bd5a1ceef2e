"""Canonical transform parameters: the query allowlist, snapping and `fmt=auto` (R1-R3).

The rules, in the order they apply (the CloudFront Function implements exactly the same):

1. The query is split on `&` (never `;`); empty pieces are skipped. A piece is `name=value` split
   at the first `=`; a piece without `=` has an empty value. Names and values are
   percent-decoded strictly (`+` is a space); a piece whose *name* does not decode is junk.
2. Only `w`, `h`, `fmt` and `q` count, matched exactly (case-sensitive). Everything else is junk
   and dropped without a trace (R1): `utm_*`, cache-busters, `W=`, `width=`.
3. Each of `w`, `h`, `fmt`, `q` may appear at most once: a repeated name is a 400, even when the
   values agree (a URL with two widths is a bug in its builder, not a preference).
   When several things are wrong, the first reported is: a repeat (in the order w, h, fmt, q),
   then w, h, fmt, q.
4. `w`, `h`, `q` are ASCII digits only: no sign, no space, no decimal point, no other script's
   digits; empty is a 400. Leading zeros are ignored (`0320` is 320), zero is a 400.
   `w` and `h` snap *up* to the next breakpoint and clamp at the largest, however huge the number
   (R2). `q` must be 1-100 and snaps up to the next rung of the ladder, clamping at the top.
5. `fmt` is ASCII case-insensitive (`WebP` is `webp`; `jpg` is `jpeg`) and must be one of the
   policy's output formats or `auto`; absent means the policy's default format (`auto`).
6. `auto` resolves from `Accept` (R3): the first format of the policy's preference (avif, webp)
   that `Accept` names explicitly with q > 0 wins; wildcards (`image/*`, `*/*`) name nothing, a
   malformed q-value excludes its entry; otherwise the policy's fallback (jpeg).
7. For PNG, `q` is validated and then dropped: PNG output is lossless. For lossy formats an
   absent `q` becomes the policy's default for that format.

A query may also be a mapping of already-decoded names to values (what web frameworks hand
over): each value is a `str` or an iterable of `str`, and rules 2-7 apply to them as above. A
name mapped to no value at all (an empty list) is a 400, like `w=`. A value of another type
(`{"w": 320}`, `None`, bytes) is a `TypeError`: that is a bug in the calling code, not a request
to answer with a 400.

Canonicalization is idempotent: `canonicalize(params.query())` returns the same params.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from imgcore.errors import InvalidRequest
from imgcore.percent import decode_component
from imgcore.policy import AUTO, DEFAULT_POLICY, OutputFormat, Policy

__all__ = [
    "PARAM_NAMES",
    "TransformParams",
    "accepted_formats",
    "canonicalize",
    "parse_query",
    "resolve_format",
    "snap_height",
    "snap_quality",
    "snap_width",
]

PARAM_NAMES = ("w", "h", "fmt", "q")
"""The only query parameters that change the bytes, in their canonical order (R1, R2)."""

_DIGITS = re.compile(r"[0-9]+")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_FORMAT_ALIASES = {"jpg": "jpeg"}
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
        h: Target height on a height breakpoint, or None. With both, the output is a cover crop.
        q: Quality on the ladder; None exactly when `fmt` is lossless (PNG).
    """

    fmt: OutputFormat
    w: int | None = None
    h: int | None = None
    q: int | None = None

    @property
    def variant(self) -> str:
        """The variant's file name in the key layout, e.g. `w320-q80.webp` or `full.png`."""
        parts = []
        if self.w is not None:
            parts.append(f"w{self.w}")
        if self.h is not None:
            parts.append(f"h{self.h}")
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
        msg = f"{name} is given with no value; give each of w, h, fmt, q at most once, with a value"
        checked.append(InvalidRequest(msg, field=name))
    return checked


def _collect(
    query: str | Mapping[str, str | Iterable[str]],
) -> dict[str, list[str | InvalidRequest]]:
    """Rules 1-2: the allowlisted values in order; an undecodable value is kept as its error,
    so that it is reported in its name's turn (after the repeat check), as the Function does."""
    found: dict[str, list[str | InvalidRequest]] = {}
    if isinstance(query, Mapping):
        for name, values in query.items():
            if name in PARAM_NAMES:
                found[name] = _mapping_values(name, values)
        return found
    for piece in query.removeprefix("?").split("&"):
        if not piece:
            continue
        raw_name, _, raw_value = piece.partition("=")
        try:
            name = decode_component(raw_name, plus_is_space=True)
        except ValueError:
            continue
        if name not in PARAM_NAMES:
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
    return found


def parse_query(query: str | Mapping[str, str | Iterable[str]]) -> dict[str, list[str]]:
    """Collect the allowlisted parameters of a query, dropping junk (rules 1-2).

    Args:
        query: A raw query string (with or without a leading `?`), or a mapping of names to one
            value or a sequence of values (already decoded, as web frameworks hand them over).

    Returns:
        A mapping from each allowlisted name present to its values, in order of appearance.

    Raises:
        InvalidRequest: An allowlisted parameter's value is not valid percent-encoding, or a
            mapping gives it no value (the first such name in the order w, h, fmt, q).
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


def _requested_format(value: str, policy: Policy) -> OutputFormat | str:
    names = [f.value for f in policy.output_formats]
    allowed = f"allowed: {', '.join([*names, AUTO])} (jpg means jpeg)"
    if not value:
        msg = f"fmt is empty; {allowed}"
        raise InvalidRequest(msg, field="fmt")
    lowered = value.translate(_ASCII_LOWER)
    lowered = _FORMAT_ALIASES.get(lowered, lowered)
    if lowered == AUTO:
        return AUTO
    if lowered not in names:
        msg = f"fmt {_shown(value)} is not supported; {allowed}"
        raise InvalidRequest(msg, field="fmt")
    return OutputFormat(lowered)


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
            msg = f"{name} is given {len(values)} times; give each of w, h, fmt, q at most once"
            raise InvalidRequest(msg, field=name)

    def single(name: str) -> str:
        value = found[name][0]
        if isinstance(value, InvalidRequest):
            raise value  # an undecodable value is reported in its name's turn, as in the Function
        return value

    w = h = q = None
    if "w" in found:
        w = _snap_up(
            _integer("w", single("w"), _breakpoints_text("w", policy.widths)), policy.widths
        )
    if "h" in found:
        h = _snap_up(
            _integer("h", single("h"), _breakpoints_text("h", policy.heights)), policy.heights
        )
    requested = (
        _requested_format(single("fmt"), policy) if "fmt" in found else policy.default_format
    )
    if "q" in found:
        sent = single("q")
        raw_q = _integer("q", sent, _quality_text(policy))
        if raw_q is None or raw_q > 100:
            msg = f"q must be between 1 and 100 (got {_shown(sent)}); {_quality_text(policy)}"
            raise InvalidRequest(msg, field="q")
        q = _snap_up(raw_q, policy.qualities)
    fmt = resolve_format(accept, policy) if requested == AUTO else OutputFormat(requested)
    if not fmt.lossy:
        q = None
    elif q is None:
        q = policy.default_quality.for_format(fmt)
    return TransformParams(fmt=fmt, w=w, h=h, q=q)
