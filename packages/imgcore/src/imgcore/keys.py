"""The key layout of originals, derivatives, manifests and public paths (R4, R7, R8).

Layout (`{id}` may hold `/`-separated segments; keys are stored decoded, URIs carry them encoded
with `imgcore.percent.encode_path`):

    original      {class}/{tenant}/{id}                          (originals bucket)
    derivative    {class}/{tenant}/{id}/{version}/{variant}      (derivatives bucket)
    manifest      {class}/{tenant}/{id}/{version}/manifest.json  (derivatives bucket)
    public path   /{class}/{tenant}/{id}/{version}?{canonical query}
    rewritten URI /{derivative key, encoded}

`class` is `img` for standard content (immutable, cached for a year) or `ugc` for
takedown-eligible content (cached for at most 60 s, R9). Every version and variant of one image
lives under `{class}/{tenant}/{id}/`, in the public path and the rewritten URI alike, so one
trailing-`*` invalidation removes all of it (R8). Parsing goes from the right: the last segment
of a public path is a version and the last of a derivative key is a variant, and neither form
can be mistaken for the other.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

from imgcore.errors import InvalidKey, InvalidRequest
from imgcore.params import Fit, Gravity, TransformParams, box_is_canonical
from imgcore.percent import decode_component, encode_path
from imgcore.policy import DEFAULT_POLICY, OutputFormat, Policy

__all__ = [
    "MANIFEST_NAME",
    "ContentClass",
    "DerivativeKey",
    "ImageRef",
    "content_version",
    "derivative_key",
    "parse_derivative_key",
    "parse_derivative_uri",
    "parse_public_path",
    "parse_source_key",
    "source_key",
    "validate_image_id",
    "validate_tenant",
    "validate_version",
]

MANIFEST_NAME = "manifest.json"
VERSION_LENGTH = 16
MAX_IMAGE_ID_BYTES = 512
"""UTF-8 bytes; keeps every derivative key well inside S3's 1,024-byte key limit."""

_TENANT = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
_VERSION = re.compile(r"[0-9a-f]{16}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
FORMAT_CHARACTERS = re.compile(
    r"[\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    r"\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]"
)
"""Invisible characters an image id may not hold: every code point of the Basic Multilingual
Plane in Unicode 15.1's categories Cf (format: the bidi overrides and isolates such as U+202E,
zero-width spaces and joiners, U+FEFF, the soft hyphen), Zl and Zp (U+2028, U+2029), plus
the unassigned U+2065 inside the U+2060-U+206F run (a shorter class for the Function). With
`_CONTROL` (category Cc) they would let an id display as another one in a log, a console or
an audit record. A fixed table, not `unicodedata`, so every Python and the CloudFront Function
(whose id check holds this same class) refuse exactly the same ids. The Cf code points above
the BMP are allowed: they are script-specific (Egyptian hieroglyph and shorthand format
controls, musical beams) or the tag characters of emoji subdivision flags, visible in use."""
_VARIANT = re.compile(
    r"(?:w(?P<w>[1-9][0-9]{0,4}))?-?(?:h(?P<h>[1-9][0-9]{0,4}))?"
    r"(?:-(?P<fit>contain|pad))?(?:-(?P<g>attention|entropy))?-?(?:q(?P<q>[1-9][0-9]{0,2}))?"
)


class ContentClass(StrEnum):
    """Which cache behaviour an image is served under; the first segment of every key."""

    STANDARD = "img"
    """Long-lived, immutable per version."""
    TAKEDOWN = "ugc"
    """Takedown-eligible (user uploads, anything a tenant flags): max TTL 60 s (R9)."""


_CLASSES = {c.value: c for c in ContentClass}


def validate_tenant(tenant: str) -> str:
    """Check a tenant id: 1-32 of `a-z 0-9 -`, starting and ending alphanumeric.

    Args:
        tenant: The tenant id.

    Returns:
        The tenant id, unchanged.

    Raises:
        InvalidKey: The id breaks the rule.
    """
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        msg = (
            f"tenant {tenant!r} is not valid; allowed: 1-32 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit"
        )
        raise InvalidKey(msg)
    return tenant


def validate_image_id(image_id: str) -> str:
    """Check an image id: `/`-separated segments of visible Unicode, at most 512 bytes.

    Spaces, `+`, `%`, `?`, `#` and non-ASCII are allowed and round-trip through URLs; empty
    segments, `.` and `..`, a leading or trailing `/` and backslashes are refused so that no id
    can name another id's path; control, format and line/paragraph separator characters
    (`FORMAT_CHARACTERS`: U+202E, U+200B, U+2028, U+FEFF...) are refused so that no id can
    look like another one in a log, a console or an audit record.

    Args:
        image_id: The image id.

    Returns:
        The id, unchanged (never normalized: what a user uploads is not altered).

    Raises:
        InvalidKey: The id breaks the rule.
    """
    allowed = (
        "allowed: 1-512 bytes of UTF-8 in '/'-separated segments, none empty, '.' or '..', "
        "no backslash and no control, format (bidi, zero-width, BOM) or line/paragraph "
        "separator characters"
    )
    if not isinstance(image_id, str) or not image_id:
        msg = f"image id is empty; {allowed}"
        raise InvalidKey(msg)
    try:
        size = len(image_id.encode("utf-8"))
    except UnicodeEncodeError:
        msg = f"image id {image_id!r} is not valid Unicode text; {allowed}"
        raise InvalidKey(msg) from None
    if size > MAX_IMAGE_ID_BYTES:
        msg = f"image id is {size} bytes long; {allowed}"
        raise InvalidKey(msg)
    if "\\" in image_id:
        msg = f"image id {image_id!r} holds a backslash; {allowed}"
        raise InvalidKey(msg)
    invisible = _CONTROL.search(image_id) or FORMAT_CHARACTERS.search(image_id)
    if invisible:
        code = f"U+{ord(invisible.group()):04X}"
        msg = f"image id {image_id!r} holds the invisible character {code}; {allowed}"
        raise InvalidKey(msg)
    for segment in image_id.split("/"):
        if segment in ("", ".", ".."):
            msg = f"image id {image_id!r} has an empty, '.' or '..' segment; {allowed}"
            raise InvalidKey(msg)
    return image_id


def validate_version(version: str) -> str:
    """Check a version: 16 lower-case hex digits (see `content_version`).

    Args:
        version: The version, as it appears in a key or a public path.

    Returns:
        The version, unchanged.

    Raises:
        InvalidKey: The version breaks the rule.
    """
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        msg = f"version {version!r} is not valid; allowed: 16 lower-case hex digits"
        raise InvalidKey(msg)
    return version


def content_version(data: bytes) -> str:
    """The version of an original: the first 16 hex digits of its SHA-256 (R7).

    Different bytes make a different version, so a re-upload never serves old derivatives and a
    launch needs no invalidation; the same bytes make the same version, so a duplicate upload
    renders nothing new.

    Args:
        data: The original's bytes, exactly as stored.

    Returns:
        16 lower-case hex digits.
    """
    return hashlib.sha256(data).hexdigest()[:VERSION_LENGTH]


def _content_class(value: str | ContentClass) -> ContentClass:
    found = _CLASSES.get(str(value))
    if found is None:
        names = ", ".join(_CLASSES)
        msg = f"content class {value!r} is not valid; allowed: {names}"
        raise InvalidKey(msg)
    return found


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One image of one tenant in one content class: everything but the version."""

    tenant: str
    image_id: str
    content_class: ContentClass = ContentClass.STANDARD

    def __post_init__(self) -> None:
        validate_tenant(self.tenant)
        validate_image_id(self.image_id)
        object.__setattr__(self, "content_class", _content_class(self.content_class))

    @property
    def source_key(self) -> str:
        """The original's key in the originals bucket."""
        return f"{self.content_class.value}/{self.tenant}/{self.image_id}"

    @property
    def prefix(self) -> str:
        """The key prefix of every version, variant and manifest of this image (R8)."""
        return self.source_key + "/"

    @property
    def invalidation_path(self) -> str:
        """The one CloudFront invalidation path that covers the public and rewritten URIs (R8)."""
        return "/" + encode_path(self.prefix) + "*"

    def owns(self, key: str) -> bool:
        """Whether `key` is one of this image's derivatives or manifests: `{prefix}{version}/
        {name}` with exactly one name segment, never a key of an id that extends this one
        (`a/b/{version}/...` is not `a`'s)."""
        if not key.startswith(self.prefix):
            return False
        version, sep, name = key[len(self.prefix) :].partition("/")
        return bool(sep and name and "/" not in name and _VERSION.fullmatch(version))

    def version_prefix(self, version: str) -> str:
        """The key prefix of one version's derivatives and manifest."""
        return f"{self.prefix}{validate_version(version)}/"

    def manifest_key(self, version: str) -> str:
        """The key of one version's manifest."""
        return self.version_prefix(version) + MANIFEST_NAME

    def public_path(self, version: str) -> str:
        """The encoded public path of one version, without a query."""
        return "/" + encode_path(f"{self.source_key}/{validate_version(version)}")


@dataclass(frozen=True, slots=True)
class DerivativeKey:
    """A parsed derivative key: which image, which version, which params."""

    image: ImageRef
    version: str
    params: TransformParams

    @property
    def key(self) -> str:
        """The derivative's key in the derivatives bucket."""
        return self.image.version_prefix(self.version) + self.params.variant

    @property
    def uri(self) -> str:
        """The rewritten URI: the key, encoded, with a leading `/` (R4)."""
        return "/" + encode_path(self.key)


def source_key(
    tenant: str, image_id: str, content_class: ContentClass | str = ContentClass.STANDARD
) -> str:
    """The key of an original in the originals bucket.

    Args:
        tenant: The tenant id.
        image_id: The image id.
        content_class: Standard or takedown-eligible.

    Returns:
        `{class}/{tenant}/{id}`.

    Raises:
        InvalidKey: An argument breaks the layout's rules.
    """
    return ImageRef(tenant, image_id, _content_class(content_class)).source_key


def parse_source_key(key: str) -> ImageRef:
    """The strict inverse of `source_key`.

    Args:
        key: An original's key in the originals bucket, decoded (`{class}/{tenant}/{id}`).

    Returns:
        The image it names.

    Raises:
        InvalidKey: The key does not follow the layout, or its tenant, id or class is invalid.
    """
    parts = key.split("/", 2)
    if len(parts) != 3:
        msg = f"original key {key!r} does not follow the layout {{class}}/{{tenant}}/{{image id}}"
        raise InvalidKey(msg)
    return ImageRef(parts[1], parts[2], _content_class(parts[0]))


def derivative_key(
    tenant: str,
    image_id: str,
    version: str,
    params: TransformParams,
    content_class: ContentClass | str = ContentClass.STANDARD,
    *,
    policy: Policy = DEFAULT_POLICY,
) -> str:
    """The key of one derivative in the derivatives bucket, which is also its rewritten URI (R4).

    The strict inverse of `parse_derivative_key`: params that `canonicalize` could not have
    produced under `policy` are refused, so every key written parses back to the same params.

    Args:
        tenant: The tenant id.
        image_id: The image id.
        version: The original's version (see `content_version`).
        params: Canonical params (from `canonicalize`).
        content_class: Standard or takedown-eligible.
        policy: The policy the params must be canonical under.

    Returns:
        `{class}/{tenant}/{id}/{version}/{variant}`, decoded (use `DerivativeKey.uri` for a URI).

    Raises:
        InvalidKey: The tenant, image id, version or content class breaks the layout's rules.
        InvalidRequest: The params are not canonical under the policy (off the breakpoints or
            the ladder, a lossy format without `q`, a lossless one with it, or a format the
            policy does not offer); the message says what is allowed.
    """
    ref = ImageRef(tenant, image_id, _content_class(content_class))
    checked = validate_version(version)
    _check_canonical(params, policy)
    return DerivativeKey(ref, checked, params).key


def _check_canonical(params: TransformParams, policy: Policy) -> None:
    def refuse(field: str, problem: str, allowed: str) -> None:
        msg = f"params {params.query()!r} are not canonical: {problem}; allowed: {allowed}"
        raise InvalidRequest(msg, field=field)

    def listed(values: tuple[int, ...]) -> str:
        return ", ".join(str(v) for v in values)

    if params.fmt not in policy.output_formats:
        names = ", ".join(f.value for f in policy.output_formats)
        refuse("fmt", f"fmt {params.fmt.value} is not an output format of the policy", names)
    if params.w is not None and params.w not in policy.widths:
        refuse("w", f"w={params.w} is not a width breakpoint", listed(policy.widths))
    if params.h is not None and params.w is None and params.h not in policy.heights:
        refuse("h", f"h={params.h} is not a height breakpoint", listed(policy.heights))
    if params.h is not None and params.w is not None and not box_is_canonical(params, policy):
        ratios = ", ".join(policy.ratios)
        refuse("h", f"w={params.w}&h={params.h} is not a box of the ratio ladder", ratios)
    if (params.w is None or params.h is None) and (params.fit, params.g) != (
        Fit.COVER,
        Gravity.CENTER,
    ):
        refuse("fit", "fit and g apply to a box with both w and h", "cover and center")
    if params.fit is not Fit.COVER and params.g is not Gravity.CENTER:
        refuse("g", "g applies to fit=cover only", "center")
    if params.fmt.lossy and params.q not in policy.qualities:
        problem = f"{params.fmt.value} is lossy and needs a q on the ladder (got {params.q})"
        refuse("q", problem, listed(policy.qualities))
    if not params.fmt.lossy and params.q is not None:
        refuse("q", f"{params.fmt.value} is lossless and takes no q (got {params.q})", "no q")


def _parse_variant(name: str, policy: Policy) -> TransformParams:
    layout = (
        "allowed: [w{width}][-h{height}][-contain|-pad|-attention|-entropy][-q{quality}]"
        ".{format}, or full.png"
    )
    stem, dot, ext = name.rpartition(".")
    if not dot or ext not in {f.value for f in policy.output_formats}:
        msg = f"variant {name!r} does not name an output format of the policy; {layout}"
        raise InvalidKey(msg)
    fmt = OutputFormat(ext)
    match = _VARIANT.fullmatch(stem)
    if stem == "full" and not fmt.lossy:
        return TransformParams(fmt=fmt)
    if not stem or match is None:
        msg = f"variant {name!r} is not in the canonical layout; {layout}"
        raise InvalidKey(msg)
    w, h, q = (int(v) if v else None for v in match.group("w", "h", "q"))
    fit = Fit(match.group("fit") or Fit.COVER)
    g = Gravity(match.group("g") or Gravity.CENTER)
    params = TransformParams(fmt=fmt, w=w, h=h, q=q, fit=fit, g=g)
    if params.variant != name:
        msg = f"variant {name!r} is not in the canonical layout (expected {params.variant!r})"
        raise InvalidKey(msg)
    if (w is not None and w not in policy.widths) or (
        h is not None
        and (h not in policy.heights if w is None else not box_is_canonical(params, policy))
    ):
        msg = f"variant {name!r} is not on the policy's breakpoints and ratio ladder"
        raise InvalidKey(msg)
    if (w is None or h is None) and (fit, g) != (Fit.COVER, Gravity.CENTER):
        msg = f"variant {name!r}: a fit or gravity needs a box with both w and h"
        raise InvalidKey(msg)
    if fit is not Fit.COVER and g is not Gravity.CENTER:
        msg = f"variant {name!r}: a gravity applies to a cover crop only"
        raise InvalidKey(msg)
    if fmt.lossy and q not in policy.qualities:
        msg = f"variant {name!r} has no quality on the policy's ladder {list(policy.qualities)}"
        raise InvalidKey(msg)
    if not fmt.lossy and q is not None:
        msg = f"variant {name!r}: {fmt.value} is lossless and takes no q"
        raise InvalidKey(msg)
    return params


def parse_derivative_key(key: str, policy: Policy = DEFAULT_POLICY) -> DerivativeKey:
    """The strict inverse of `derivative_key`: only keys it could have produced parse.

    Args:
        key: A decoded derivative key (no leading `/`).
        policy: The policy the variant must belong to (a key off the breakpoints is refused, so
            no request can render a size the edge would never ask for).

    Returns:
        The parsed key; `parsed.key == key`.

    Raises:
        InvalidKey: The key does not follow the layout or the policy.
    """
    head, sep, variant = key.rpartition("/")
    head, sep2, version = head.rpartition("/")
    if not sep or not sep2:
        layout = "{class}/{tenant}/{id}/{version}/{variant}"
        msg = f"derivative key {key!r} does not follow {layout}"
        raise InvalidKey(msg)
    parsed = DerivativeKey(
        parse_source_key(head), validate_version(version), _parse_variant(variant, policy)
    )
    if parsed.key != key:  # pragma: no cover - guarded by the checks above; kept as the contract
        msg = f"derivative key {key!r} is not canonical"
        raise InvalidKey(msg)
    return parsed


def _decode_path(path: str) -> str:
    if not path.startswith("/"):
        msg = f"path {path!r} must start with '/'"
        raise InvalidKey(msg)
    segments = []
    for raw in path[1:].split("/"):
        try:
            segment = decode_component(raw, plus_is_space=False)
        except ValueError as exc:
            msg = f"path segment {raw!r}: {exc}"
            raise InvalidKey(msg) from None
        if "/" in segment or "\\" in segment:
            msg = f"path segment {raw!r} encodes a '/' or '\\'; allowed: plain segments only"
            raise InvalidKey(msg)
        segments.append(segment)
    return "/".join(segments)


def parse_derivative_uri(uri: str, policy: Policy = DEFAULT_POLICY) -> DerivativeKey:
    """Parse a rewritten URI (what the fallback receives) into a derivative key.

    Args:
        uri: The URI path as received: percent-encoded, with a leading `/`.
        policy: The policy the variant must belong to (see `parse_derivative_key`).

    Returns:
        The parsed key; `parsed.uri` is the canonical form of `uri`.

    Raises:
        InvalidKey: The URI is not a canonical derivative URI under the policy.
    """
    return parse_derivative_key(_decode_path(uri), policy)


def parse_public_path(path: str) -> tuple[ImageRef, str]:
    """Parse a viewer's public path `/{class}/{tenant}/{id}/{version}`.

    Args:
        path: The URI path as received (percent-encoded, leading `/`).

    Returns:
        The image and the version.

    Raises:
        InvalidKey: The path does not name a versioned image; the message says the layout.
    """
    decoded = _decode_path(path)
    head, sep, version = decoded.rpartition("/")
    if not sep or head.count("/") < 2:
        msg = (
            f"path {path!r} does not name an image; allowed: "
            "/{class}/{tenant}/{image id}/{version}?w=&h=&fmt=&q="
        )
        raise InvalidKey(msg)
    return parse_source_key(head), validate_version(version)
