"""The URL builder: only what the canonicalizer accepts comes out; wrong input is a typed error."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgcore import InvalidRequest, SigningKey, build_url, rewrite, sign_url, verify_signed_url
from imgcore.keys import ContentClass
from imgcore.params import PARAM_NAMES
from imgcore.urls import PARAM_CHECKS, srcset_entries

V = "0123456789abcdef"
BASE = "https://cdn.example"


def test_every_query_parameter_has_a_builder_check() -> None:
    assert set(PARAM_CHECKS) == set(PARAM_NAMES)


@pytest.mark.parametrize("name", ["w", "h", "q"])
@pytest.mark.parametrize("value", [320.0, 320.5, math.nan, math.inf, True, "320", b"320", [320]])
def test_a_number_parameter_of_the_wrong_type_is_a_typed_error(name: str, value: object) -> None:
    with pytest.raises(InvalidRequest, match=rf"^{name} must be an int \(got .*allowed") as caught:
        build_url("acme", "x.jpg", V, **{name: value})  # type: ignore[arg-type]
    assert caught.value.field == name


@pytest.mark.parametrize("value", [7, b"webp", ("webp",)])
def test_a_format_of_the_wrong_type_is_a_typed_error(value: object) -> None:
    with pytest.raises(InvalidRequest, match=r"^fmt must be a str .*allowed: avif, ") as caught:
        build_url("acme", "x.jpg", V, fmt=value)  # type: ignore[arg-type]
    assert caught.value.field == "fmt"


@pytest.mark.parametrize("value", ["standard", "IMG", "", 1, None])
def test_an_unknown_content_class_is_a_typed_error(value: object) -> None:
    with pytest.raises(InvalidRequest, match=r"is not a content class; allowed: img, ugc$") as got:
        build_url("acme", "x.jpg", V, content_class=value)  # type: ignore[arg-type]
    assert got.value.field == "path"


def test_a_q_that_png_drops_is_still_checked() -> None:
    with pytest.raises(InvalidRequest, match="q must be an int"):
        build_url("acme", "x.png", V, fmt="png", q=math.nan)  # type: ignore[arg-type]


def test_srcset_refuses_float_widths_and_source_widths() -> None:
    with pytest.raises(InvalidRequest, match="w must be an int"):
        srcset_entries("acme", "x.jpg", V, widths=[320.0])  # type: ignore[list-item]
    with pytest.raises(InvalidRequest, match="source_width must be an int"):
        srcset_entries("acme", "x.jpg", V, source_width=math.nan)  # type: ignore[arg-type]


def test_identifiers_of_the_wrong_type_are_typed_errors() -> None:
    with pytest.raises(InvalidRequest, match="image_id must be a str"):
        build_url("acme", 12, V)  # type: ignore[arg-type]


# --- properties ----------------------------------------------------------------------------------

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
NUMBERS = st.one_of(st.integers(min_value=-5, max_value=20_000), ANYTHING)
FORMATS = st.one_of(
    st.sampled_from(["jpeg", "jpg", "JPG", "png", "webp", "avif", "auto", "AUTO", "gif", ""]),
    ANYTHING,
)
DPRS = st.one_of(st.sampled_from([1, 1.5, 2, 3, 0.5, 7, 0, -1]), ANYTHING)
SHAPES = st.one_of(
    st.sampled_from(["cover", "contain", "pad", "PAD", "center", "centre", "attention", "x"]),
    ANYTHING,
)
CLASSES = st.one_of(st.sampled_from([*ContentClass, "img", "ugc", "Img", "x"]), ANYTHING)
IDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


def _kwargs(w: object, h: object, fmt: object, q: object, cls: object) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"w": w, "h": h, "fmt": fmt, "q": q, "base_url": BASE}
    if cls is not None:
        kwargs["content_class"] = cls
    return kwargs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=NUMBERS,
    h=NUMBERS,
    fmt=FORMATS,
    q=NUMBERS,
    cls=CLASSES,
    image_id=IDS,
    dpr=DPRS,
    fit=SHAPES,
    g=SHAPES,
)
def test_every_built_url_canonicalizes_to_itself(
    *,
    w: object,
    h: object,
    fmt: object,
    q: object,
    cls: object,
    image_id: str,
    dpr: object,
    fit: object,
    g: object,
) -> None:
    shape = {"dpr": dpr, "fit": fit, "g": g}
    try:
        url = build_url("acme", image_id, V, **_kwargs(w, h, fmt, q, cls), **shape)
    except InvalidRequest:
        return  # wrong input is a typed error (InvalidKey for an id the layout refuses)
    parts = urlsplit(url)
    derivative = rewrite(parts.path, parts.query, None)  # the edge accepts it
    sent = parse_qs(parts.query, keep_blank_values=True)
    again = build_url(
        "acme",
        image_id,
        V,
        w=derivative.params.w,
        h=derivative.params.h,
        fit=derivative.params.fit.value if "fit" in sent else None,
        g=derivative.params.g.value if "g" in sent else None,
        fmt=derivative.params.fmt.value if "fmt" in sent else None,
        q=derivative.params.q if "q" in sent else None,
        base_url=BASE,
        content_class=derivative.image.content_class,
    )
    assert again == url


@cache
def _signing_key() -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SigningKey("K1", pem)


NOW = int(datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=st.one_of(st.none(), st.integers(min_value=1, max_value=5000)),
    fmt=st.sampled_from([None, "jpeg", "png", "auto"]),
    image_id=IDS,
    lifetime=st.integers(min_value=1, max_value=10**8),
    started=st.one_of(st.none(), st.integers(min_value=1, max_value=10**6)),
    ip_range=st.sampled_from([None, "203.0.113.0/24", "0.0.0.0/0", "2001:db8::/32"]),
    wildcard=st.booleans(),
)
def test_every_signed_url_verifies(
    *,
    w: int | None,
    fmt: str | None,
    image_id: str,
    lifetime: int,
    started: int | None,
    ip_range: str | None,
    wildcard: bool,
) -> None:
    try:
        url = build_url("acme", image_id, V, w=w, fmt=fmt, base_url=BASE)
    except InvalidRequest:
        return
    resource = url.split("?")[0].rsplit("/", 1)[0] + "/*" if wildcard else None
    starts = None if started is None else NOW - started
    signed = sign_url(
        url, _signing_key(), expires=NOW + lifetime, starts=starts, ip_range=ip_range,
        resource=resource,
    )  # fmt: skip
    viewer = {None: None, "203.0.113.0/24": "203.0.113.5", "0.0.0.0/0": "198.51.100.1"}
    viewer["2001:db8::/32"] = "2001:db8::7"
    verify_signed_url(
        signed,
        {"K1": _signing_key().public_key_pem()},
        datetime.fromtimestamp(NOW, UTC),
        viewer_ip=viewer[ip_range],
    )
