"""The key layout (R4, R7, R8): construction, strict inverses, hostile identifiers."""

from __future__ import annotations

import re
import unicodedata

import pytest

from imgcore import (
    DEFAULT_POLICY,
    ContentClass,
    ImageRef,
    InvalidKey,
    InvalidRequest,
    canonicalize,
    content_version,
    derivative_key,
    parse_derivative_key,
    parse_derivative_uri,
    parse_public_path,
    parse_source_key,
    rewrite,
    source_key,
)
from imgcore.keys import FORMAT_CHARACTERS
from imgcore.params import Fit, Gravity, TransformParams
from imgcore.percent import decode_component, encode_path
from imgcore.policy import OutputFormat, Policy, StandardSet

V = "0123456789abcdef"


def test_layout_of_every_key_of_one_image() -> None:
    params = canonicalize("w=320&fmt=webp")
    ref = ImageRef("acme", "shoes/red.jpg", ContentClass.STANDARD)
    assert source_key("acme", "shoes/red.jpg") == "img/acme/shoes/red.jpg"
    assert (
        derivative_key("acme", "shoes/red.jpg", V, params)
        == f"img/acme/shoes/red.jpg/{V}/w320-q80.webp"
    )
    assert ref.manifest_key(V) == f"img/acme/shoes/red.jpg/{V}/manifest.json"
    assert ref.public_path(V) == f"/img/acme/shoes/red.jpg/{V}"
    assert ref.invalidation_path == "/img/acme/shoes/red.jpg/*"


def test_takedown_content_has_its_own_prefix() -> None:
    key = derivative_key(
        "acme", "u/1.jpg", V, canonicalize("w=320&fmt=webp"), ContentClass.TAKEDOWN
    )
    assert key.startswith("ugc/acme/u/1.jpg/")


def test_every_variant_and_version_sits_under_the_image_prefix() -> None:
    ref = ImageRef("acme", "a b+c%.jpg")
    other_version = content_version(b"other bytes")
    for version in (V, other_version):
        for query in ("w=160&fmt=avif", "h=320&fmt=png", "", "w=2560&h=2560&fmt=jpeg&q=40"):
            derivative = rewrite(ref.public_path(version), query, "image/avif")
            assert derivative.key.startswith(ref.prefix)
            assert derivative.uri.startswith(ref.invalidation_path.rstrip("*"))
    # the public path, as a viewer requests it, falls under the same invalidation path
    assert ref.public_path(V).startswith(ref.invalidation_path.rstrip("*"))


@pytest.mark.parametrize(
    "image_id",
    [
        "red shoe.jpg",
        "a+b.jpg",
        "100%.jpg",
        "caf\u00e9/\u5199\u771f.png",
        "\U0001f600",
        "q?x#y",
        "a/b/c",
    ],
)
def test_hostile_but_legal_ids_round_trip(image_id: str) -> None:
    params = canonicalize("w=320&fmt=avif")
    key = derivative_key("acme", image_id, V, params)
    parsed = parse_derivative_key(key)
    assert (parsed.image.image_id, parsed.version, parsed.params) == (image_id, V, params)
    assert parse_derivative_uri(parsed.uri) == parsed
    assert parse_source_key(source_key("acme", image_id)).image_id == image_id
    assert parse_public_path(parsed.image.public_path(V)) == (parsed.image, V)


@pytest.mark.parametrize(
    "image_id",
    [
        "",
        "/abs.jpg",
        "trailing/",
        "a//b",
        "../x",
        "a/../b",
        ".",
        "a/./b",
        "a\\b",
        "a\x00b",
        "a\nb",
        "x" * 513,
        "\ud800",
    ],
)
def test_bad_ids_are_refused(image_id: str) -> None:
    with pytest.raises(InvalidKey, match="allowed"):
        source_key("acme", image_id)


@pytest.mark.parametrize(
    ("image_id", "code"),
    [
        ("gpj.\u202eexe", "U+202E"),  # right-to-left override: shows as "exe.jpg"
        ("a\u2066b", "U+2066"),
        ("a\u2028b", "U+2028"),
        ("a\u2029b", "U+2029"),
        ("\ufeffphoto.jpg", "U+FEFF"),
        ("a\u200bb", "U+200B"),
        ("a\u00adb", "U+00AD"),
        ("a\x85b", "U+0085"),
        ("a\x00b", "U+0000"),
    ],
)
def test_invisible_characters_are_refused(image_id: str, code: str) -> None:
    with pytest.raises(
        InvalidKey,
        match=rf"holds the invisible character {re.escape(code)}; allowed: .* no control, format",
    ):
        source_key("acme", image_id)


def test_the_format_class_is_exactly_the_bmps_cf_zl_zp() -> None:
    table = {cp for cp in range(0x10000) if FORMAT_CHARACTERS.match(chr(cp))}
    by_category = {
        cp for cp in range(0x10000) if unicodedata.category(chr(cp)) in {"Cf", "Zl", "Zp"}
    }
    assert table - by_category == {0x2065}  # unassigned, kept so the class stays one range


def test_visible_neighbours_of_invisible_characters_stay_legal() -> None:
    # A variation selector, an emoji, a thin space, and the tag characters of England's flag.
    for image_id in (
        "\u2764\ufe0f",
        "\U0001f600\u2009x",
        "\U0001f3f4\U000e0067\U000e0062\U000e007f",
    ):
        assert parse_source_key(source_key("acme", image_id)).image_id == image_id


@pytest.mark.parametrize(
    "tenant", ["", "Acme", "-acme", "acme-", "ac_me", "a" * 33, "ac me", "acme/x"]
)
def test_bad_tenants_are_refused(tenant: str) -> None:
    with pytest.raises(InvalidKey, match="allowed"):
        source_key(tenant, "x.jpg")


@pytest.mark.parametrize(
    "key",
    [
        f"img/acme/x.jpg/{V}/w321-q80.webp",  # off the breakpoints
        f"img/acme/x.jpg/{V}/w320-q81.webp",  # off the ladder
        f"img/acme/x.jpg/{V}/w320.webp",  # lossy without q
        f"img/acme/x.jpg/{V}/w320-q80.png",  # lossless with q
        f"img/acme/x.jpg/{V}/w0320-q80.webp",  # not canonical
        f"img/acme/x.jpg/{V}/q80-w320.webp",  # wrong order
        f"img/acme/x.jpg/{V}/w320q80.webp",  # no separator
        f"img/acme/x.jpg/{V}/w320-q80.jpg",  # alias is not a key format
        f"img/acme/x.jpg/{V}/w320-q80.gif",
        f"img/acme/x.jpg/{V}/manifest.json",
        f"img/acme/x.jpg/{V}/.webp",
        f"img/acme/x.jpg/{V.upper()}/w320-q80.webp",
        f"raw/acme/x.jpg/{V}/w320-q80.webp",
        f"img/acme/{V}/w320-q80.webp",
        f"img/acme/../x.jpg/{V}/w320-q80.webp",
        "w320-q80.webp",
    ],
)
def test_only_keys_the_layout_could_produce_parse(key: str) -> None:
    with pytest.raises(InvalidKey):
        parse_derivative_key(key)


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        (
            TransformParams(OutputFormat.WEBP, w=287, q=80),
            "w",
            r"w=287 is not a width breakpoint; allowed: 160, 320, 480, 640, 960, 1280, 1920, 2560",
        ),
        (TransformParams(OutputFormat.WEBP, h=100, q=80), "h", r"h=100 is not a height breakpoint"),
        (
            TransformParams(OutputFormat.WEBP, w=320),
            "q",
            r"webp is lossy and needs a q on the ladder \(got None\); allowed: 40, 50, 60",
        ),
        (
            TransformParams(OutputFormat.AVIF, q=81),
            "q",
            r"avif is lossy and needs a q on the ladder \(got 81\)",
        ),
        (
            TransformParams(OutputFormat.PNG, w=320, q=80),
            "q",
            r"png is lossless and takes no q \(got 80\); allowed: no q",
        ),
    ],
)
def test_derivative_key_refuses_params_canonicalize_could_not_produce(
    params: TransformParams, field: str, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=r"^params '.*' are not canonical: " + message) as e:
        derivative_key("acme", "x.jpg", V, params)
    assert e.value.field == field


def test_derivative_key_checks_params_against_the_given_policy() -> None:
    small = Policy(
        widths=(100, 200),
        heights=(100, 200),
        output_formats=(OutputFormat.JPEG,),
        auto_preference=(),
        standard=StandardSet(widths=(100,), formats=(OutputFormat.JPEG,)),
    )
    params = TransformParams(OutputFormat.JPEG, w=200, q=80)
    key = derivative_key("acme", "x.jpg", V, params, policy=small)
    assert parse_derivative_key(key, small).params == params
    with pytest.raises(InvalidRequest, match=r"w=200 is not a width breakpoint"):
        derivative_key("acme", "x.jpg", V, params)  # not a DEFAULT_POLICY breakpoint
    webp = TransformParams(OutputFormat.WEBP, w=200, q=80)
    with pytest.raises(InvalidRequest, match=r"fmt webp is not an output format.*allowed: jpeg$"):
        derivative_key("acme", "x.jpg", V, webp, policy=small)


def test_derivative_key_round_trips_every_canonical_variant() -> None:
    policy = DEFAULT_POLICY
    boxes: list[tuple[int | None, int | None]] = [(None, None), (None, 160), (None, 2560)]
    for w in policy.widths:
        boxes += [(w, None), *((w, r.height_for(w)) for r in policy.ratio_ladder)]
    for fmt in OutputFormat:
        for w, h in boxes:
            shapes = [(Fit.COVER, Gravity.CENTER)]
            if w is not None and h is not None:
                shapes += [(Fit.CONTAIN, Gravity.CENTER), (Fit.PAD, Gravity.CENTER)]
                shapes += [(Fit.COVER, Gravity.ATTENTION), (Fit.COVER, Gravity.ENTROPY)]
            for fit, g in shapes:
                for q in policy.qualities if fmt.lossy else (None,):
                    params = TransformParams(fmt, w=w, h=h, q=q, fit=fit, g=g)
                    key = derivative_key("acme", "a b/c.jpg", V, params)
                    assert parse_derivative_key(key).params == params


@pytest.mark.parametrize(
    "variant",
    [
        "w320-h320-contain-pad-q80.webp",  # two fits
        "w320-h200-q80.webp",  # 1.6 is no rung's box (3:2 is h213, 16:9 is h180)
        "w320-pad-q80.webp",  # a fit needs both sides
        "h320-attention-q80.webp",
        "w320-h213-pad-attention-q80.webp",  # gravity is for cover only
        "w320-h213-cover-q80.webp",  # the default is never written
        "w320-h213-center-q80.webp",
    ],
)
def test_non_canonical_boxes_fits_and_gravities_are_refused(variant: str) -> None:
    with pytest.raises(InvalidKey):
        parse_derivative_key(f"img/acme/x/{V}/{variant}")


def test_full_size_png_has_a_name() -> None:
    params = canonicalize("fmt=png")
    assert params.variant == "full.png"
    assert parse_derivative_key(derivative_key("acme", "x", V, params)).params == params


@pytest.mark.parametrize(
    "uri",
    [
        f"/img/acme/a%2Fb/{V}/w320-q80.webp",
        f"/img/acme/a%5Cb/{V}/w320-q80.webp",
        f"/img/acme/%2E%2E/{V}/w320-q80.webp",
    ],
)
def test_encoded_separators_and_traversal_are_refused(uri: str) -> None:
    with pytest.raises(InvalidKey):
        parse_derivative_uri(uri)


def test_content_version_is_a_content_hash() -> None:
    assert content_version(b"abc") == content_version(b"abc")
    assert content_version(b"abc") != content_version(b"abd")
    assert len(content_version(b"")) == 16


def test_rewrite_reports_path_errors_as_path() -> None:
    with pytest.raises(InvalidRequest) as caught:
        rewrite("/img/acme/x.jpg/latest", "w=320")
    assert caught.value.field == "path"


def test_percent_encoding_is_canonical_and_strict() -> None:
    assert encode_path("a b+c%/\u00e9~") == "a%20b%2Bc%25/%C3%A9~"
    assert decode_component("a%20b+c", plus_is_space=False) == "a b+c"
    for bad in ("%", "%4", "%zz", "%C3", "%C0%AF", "%ED%A0%80", "%FF"):
        with pytest.raises(ValueError, match=r"hex digits|UTF-8"):
            decode_component(bad, plus_is_space=False)
