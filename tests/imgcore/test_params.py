"""Canonicalization rules R1-R3, each stated as an example someone could check by hand."""

from __future__ import annotations

import re

import pytest

from imgcore import DEFAULT_POLICY, InvalidRequest, OutputFormat, Policy, TransformParams
from imgcore import canonicalize as canon
from imgcore.params import accepted_formats, parse_query, resolve_format, snap_quality, snap_width

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


def p(
    fmt: str, w: int | None = None, h: int | None = None, q: int | None = None
) -> TransformParams:
    return TransformParams(fmt=OutputFormat(fmt), w=w, h=h, q=q)


def test_only_allowlisted_parameters_count() -> None:
    junk = "utm_source=x&utm_medium=y&fbclid=1&_=1700000000&Wx=900&widths=900&session=abc"
    assert canon(f"{junk}&w=320&fmt=webp") == canon("w=320&fmt=webp") == p("webp", 320, q=80)


def test_order_does_not_matter() -> None:
    assert canon("q=70&fmt=jpeg&h=300&w=300") == canon("w=300&h=300&fmt=jpeg&q=70")


def test_widths_snap_up_to_breakpoints_and_clamp_at_the_largest() -> None:
    assert canon("w=287&fmt=webp").w == 320
    assert canon("w=320&fmt=webp").w == 320
    assert canon("w=321&fmt=webp").w == 480
    assert canon("w=1&fmt=webp").w == DEFAULT_POLICY.widths[0]
    assert canon("w=99999&fmt=webp").w == DEFAULT_POLICY.widths[-1]
    assert canon("w=" + "9" * 40 + "&fmt=webp").w == DEFAULT_POLICY.widths[-1]


def test_heights_snap_like_widths() -> None:
    assert canon("h=200&fmt=webp") == p("webp", h=320, q=80)
    assert canon("h=5000&fmt=webp").h == DEFAULT_POLICY.heights[-1]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("w=-320", "w"),
        ("w=+320", "w"),
        ("w=320.0", "w"),
        ("w=0x140", "w"),
        ("w= 320", "w"),
        ("w=\u0663\u0662\u0660", "w"),  # Arabic-Indic digits: Python's int() would accept them
        ("w=\uff13\uff12\uff10", "w"),  # full-width digits: likewise
        ("w=0", "w"),
        ("w=000", "w"),
        ("w=", "w"),
        ("w", "w"),
        ("w=%zz", "w"),
        ("w=%C3", "w"),
        ("h=abc", "h"),
        ("q=0&fmt=webp", "q"),
        ("q=101&fmt=webp", "q"),
        ("q=99999999999&fmt=webp", "q"),
        ("fmt=gif", "fmt"),
        ("fmt=", "fmt"),
        ("fmt=webp%00", "fmt"),
        ("fmt=\u0130mage", "fmt"),
    ],
)
def test_malformed_values_are_rejected_with_what_is_allowed(query: str, field: str) -> None:
    with pytest.raises(InvalidRequest, match="allowed") as caught:
        canon(query)
    assert caught.value.field == field
    assert caught.value.http_status == 400


def test_leading_zeros_are_the_same_number() -> None:
    assert canon("w=0320&fmt=webp") == canon("w=320&fmt=webp")
    assert canon("w=" + "0" * 50 + "320&fmt=webp") == canon("w=320&fmt=webp")


@pytest.mark.parametrize("query", ["w=320&w=320", "w=320&w=640", "fmt=webp&fmt=avif", "q=80&q=80"])
def test_repeated_parameters_are_rejected_even_when_equal(query: str) -> None:
    with pytest.raises(InvalidRequest, match="at most once"):
        canon(query)


def test_the_first_error_reported_does_not_depend_on_order() -> None:
    for query in ("fmt=gif&w=abc", "w=abc&fmt=gif", "q=1000&w=abc&h=x"):
        with pytest.raises(InvalidRequest) as caught:
            canon(query)
        assert caught.value.field == "w"


def test_quality_snaps_up_to_the_ladder() -> None:
    assert canon("fmt=webp&q=75").q == 80
    assert canon("fmt=webp&q=1").q == 40
    assert canon("fmt=webp&q=100").q == 90
    assert snap_quality(90) == 90
    with pytest.raises(InvalidRequest, match="between 1 and 100"):
        snap_quality(0)


def test_absent_quality_is_the_formats_default() -> None:
    assert canon("fmt=jpeg").q == 80
    assert canon("fmt=webp").q == 80
    assert canon("fmt=avif").q == 60


def test_png_is_lossless_so_q_is_validated_then_dropped() -> None:
    assert canon("fmt=png&q=50&w=320") == canon("fmt=png&w=320") == p("png", 320)
    with pytest.raises(InvalidRequest):
        canon("fmt=png&q=abc")


def test_format_names_are_ascii_case_insensitive_and_jpg_means_jpeg() -> None:
    assert canon("fmt=JPG").fmt is OutputFormat.JPEG
    assert canon("fmt=WebP").fmt is OutputFormat.WEBP
    # KELVIN SIGN lower-cases to 'k' in Unicode; it must never sneak into a format name.
    with pytest.raises(InvalidRequest):
        canon("fmt=\u212a")


def test_percent_encoding_is_decoded_strictly() -> None:
    assert canon("%77=320&fmt=web%70") == canon("w=320&fmt=webp")
    assert parse_query("w=320&%zz=1") == {"w": ["320"]}  # junk names that do not decode vanish
    assert parse_query("w=1+2") == {"w": ["1 2"]}  # '+' is a space in a query


def test_auto_resolves_from_accept_in_the_policys_preference() -> None:
    assert canon("fmt=auto", CHROME).fmt is OutputFormat.AVIF
    assert canon("fmt=auto", "image/webp,*/*").fmt is OutputFormat.WEBP
    assert canon("fmt=auto", "image/webp,image/avif").fmt is OutputFormat.AVIF  # ours, not theirs
    assert canon("fmt=auto", "*/*").fmt is OutputFormat.JPEG
    assert canon("fmt=auto", "image/*").fmt is OutputFormat.JPEG
    assert canon("fmt=auto", None).fmt is OutputFormat.JPEG
    assert canon("", CHROME) == canon("fmt=auto", CHROME)  # auto is the default


def test_accept_q_values() -> None:
    assert canon("fmt=auto", "image/avif;q=0,image/webp").fmt is OutputFormat.WEBP
    assert canon("fmt=auto", "image/avif;q=0.000").fmt is OutputFormat.JPEG
    assert canon("fmt=auto", "image/avif;q=0.001").fmt is OutputFormat.AVIF
    assert canon("fmt=auto", "image/avif;q=abc").fmt is OutputFormat.JPEG  # malformed is q=0
    assert canon("fmt=auto", "image/avif;q=2").fmt is OutputFormat.JPEG
    assert canon("fmt=auto", "IMAGE/AVIF ; Q=0.5").fmt is OutputFormat.AVIF
    assert accepted_formats("image/webp;q=0.5, text/html;q=0") == {"image/webp"}


def test_only_http_whitespace_is_trimmed_in_accept() -> None:
    # NBSP and vertical tab are not HTTP whitespace; JavaScript's trim() would strip them.
    assert resolve_format("\u00a0image/avif") is OutputFormat.JPEG
    assert resolve_format("image/avif\u000b") is OutputFormat.JPEG
    assert resolve_format("\timage/avif ") is OutputFormat.AVIF


def test_auto_fallback_can_keep_png_for_alpha() -> None:
    policy = Policy(auto_fallback=OutputFormat.PNG)
    assert canon("fmt=auto&w=320&q=50", "*/*", policy) == p("png", 320)


def test_canonical_query_round_trips() -> None:
    params = canon("w=287&h=400&fmt=WEBP&q=77&utm=x")
    assert params.query() == "w=320&h=427&fmt=webp&q=80"  # 287:400 is nearest 3:4
    assert canon(params.query()) == params


def test_mapping_queries_are_accepted() -> None:
    assert canon({"w": "287", "fmt": ["webp"], "utm": "x"}) == p("webp", 320, q=80)
    with pytest.raises(InvalidRequest, match="at most once"):
        canon({"w": ["320", "640"]})


def test_mapping_values_must_be_strings() -> None:
    # No value at all is a request error, in the name's turn like any other.
    with pytest.raises(InvalidRequest, match=r"^w is given with no value; give each") as caught:
        canon({"w": [], "fmt": "webp"})
    assert caught.value.field == "w"
    with pytest.raises(InvalidRequest, match="h is given with no value"):
        parse_query({"h": ()})
    with pytest.raises(InvalidRequest, match=r"fmt 'gif' is not supported"):
        canon({"fmt": "gif", "q": []})  # fmt is reported before q, as in a query string
    # Another type is the caller's bug: a TypeError that says what is allowed.
    for value, shown in ((320, "int"), (None, "NoneType"), (b"320", "bytes")):
        with pytest.raises(
            TypeError,
            match=rf"query parameter 'w' is a {shown}; allowed: a str or an iterable of str",
        ):
            canon({"w": value})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"a value of query parameter 'q' is a int \(80\)"):
        canon({"q": ["80", 80]})  # type: ignore[list-item]
    # Junk is dropped whatever its type.
    assert canon({"w": "320", "utm": 5, "x": None}) == canon("w=320")  # type: ignore[dict-item]


def test_huge_quality_reports_what_was_sent() -> None:
    with pytest.raises(InvalidRequest, match=r"q must be between 1 and 100 \(got '101'\)"):
        canon("fmt=webp&q=101")
    with pytest.raises(InvalidRequest, match=r"\(got '99999999999'\); allowed: 1-100"):
        canon("fmt=webp&q=99999999999")
    with pytest.raises(InvalidRequest, match=r"\(got '0{32}'\.\.\.\)"):
        canon("fmt=webp&q=" + "0" * 32 + "999")  # 999, but only the first 32 characters show


def test_snap_width_refuses_zero() -> None:
    with pytest.raises(InvalidRequest, match="at least 1"):
        snap_width(0)


def test_policy_rejects_incoherent_values() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        Policy(widths=(320, 160))
    with pytest.raises(ValueError, match="not a rung"):
        Policy(qualities=(50, 90))
    with pytest.raises(ValueError, match="standard width"):
        Policy(widths=(100, 200), heights=(100, 200))
    with pytest.raises(ValueError, match="not one of output_formats"):
        Policy(output_formats=(OutputFormat.JPEG,))
    with pytest.raises(ValueError, match="less than or equal to 60"):
        Policy.model_validate({"ttl": {"takedown": 3600}})


def test_policy_is_frozen_and_serializes() -> None:
    with pytest.raises(ValueError, match="frozen"):
        DEFAULT_POLICY.widths = (1,)  # type: ignore[misc]
    assert Policy.model_validate_json(DEFAULT_POLICY.to_json()) == DEFAULT_POLICY


# -- the box: aspect ratio, dpr, fit and gravity (rules 5-7) ------------------------------------


@pytest.mark.parametrize(
    ("query", "box"),
    [
        ("w=300&h=200", (320, 213)),  # a 3:2 product card, not a 320x320 square
        ("w=640&h=360", (640, 360)),  # 16:9, not 640x480
        ("w=1200&h=630", (1280, 670)),  # the Open Graph card: 1.91:1, not 1280x640
        ("w=320&h=320", (320, 320)),
        ("w=320&h=400", (320, 400)),  # 4:5
        ("w=90&h=160", (160, 284)),  # 9:16
        ("w=160&h=1", (160, 69)),  # wider than 21:9 clamps to it
        ("w=160&h=9999", (160, 284)),  # taller than 9:16 clamps to it
        ("w=99999999&h=1", (2560, 1097)),  # huge counts as 10,000,000: 21:9
        ("w=1&h=99999999", (160, 284)),
    ],
)
def test_both_sides_keep_the_requested_aspect_ratio(query: str, box: tuple[int, int]) -> None:
    params = canon(query + "&fmt=webp")
    assert (params.w, params.h) == box
    assert canon(params.query()) == params


def test_every_rung_of_every_width_is_a_fixed_point() -> None:
    for w in DEFAULT_POLICY.widths:
        for rung in DEFAULT_POLICY.ratio_ladder:
            params = canon(f"w={w}&h={rung.height_for(w)}&fmt=jpeg")
            assert (params.w, params.h) == (w, rung.height_for(w)), (w, rung.text)


def test_a_ratio_on_a_threshold_goes_to_the_wider_rung() -> None:
    policy = Policy(ratios=("1:1", "4:1"))  # threshold exactly 2.0
    assert canon("w=320&h=160&fmt=jpeg", policy=policy).h == 80  # 4:1
    assert canon("w=320&h=161&fmt=jpeg", policy=policy).h == 320  # 1:1


def test_a_height_alone_still_snaps_to_the_height_breakpoints() -> None:
    assert canon("h=200&fmt=webp") == p("webp", h=320, q=80)


@pytest.mark.parametrize(
    ("query", "same_as"),
    [
        ("w=320&dpr=2", "w=640"),
        ("w=320&dpr=1.5", "w=480"),
        ("w=320&dpr=1.4", "w=480"),  # snaps up to 1.5
        ("w=320&dpr=2.0", "w=640"),
        ("w=320&dpr=7", "w=960"),  # clamps at 3
        ("w=320&dpr=0.5", "w=320"),  # snaps up to 1
        ("w=300&h=200&dpr=2", "w=600&h=400"),
        ("h=200&dpr=3", "h=600"),
        ("dpr=2", ""),
        ("w=99999999&dpr=2", "w=2560"),
    ],
)
def test_dpr_multiplies_before_snapping_and_never_enters_the_key(query: str, same_as: str) -> None:
    assert canon(query + "&fmt=webp") == canon(same_as + "&fmt=webp")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "dpr is empty"),
        ("0", "dpr must be above 0"),
        ("0.00", "dpr must be above 0"),
        ("-2", "digits 0-9 and at most one '.'"),
        ("2x", "digits 0-9"),
        ("1.5.1", "digits 0-9"),
        (".5", "digits 0-9"),
        ("2.", "digits 0-9"),
        ("\u0662", "digits 0-9"),
        ("1e1", "digits 0-9"),
    ],
)
def test_bad_dpr_values_are_400s_that_say_what_is_allowed(value: str, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem) as caught:
        canon({"w": "320", "dpr": value})
    assert caught.value.field == "dpr"
    assert "snapped up to one of 1, 1.5, 2, 3" in str(caught.value)


def test_fit_and_gravity_shape_a_box_with_both_sides() -> None:
    assert canon("w=300&h=200&fit=pad&fmt=webp").variant == "w320-h213-pad-q80.webp"
    assert canon("w=300&h=200&fit=CONTAIN&fmt=webp").variant == "w320-h213-contain-q80.webp"
    assert canon("w=300&h=200&g=attention&fmt=webp").variant == "w320-h213-attention-q80.webp"
    assert canon("w=300&h=200&g=Entropy&fmt=webp").variant == "w320-h213-entropy-q80.webp"
    # Defaults and shapes without a box never reach the key.
    plain = canon("w=300&h=200&fmt=webp")
    assert canon("w=300&h=200&fit=cover&g=centre&fmt=webp") == plain
    assert canon("w=300&fit=pad&g=attention&fmt=webp") == canon("w=300&fmt=webp")
    assert canon("w=300&h=200&fit=contain&g=entropy&fmt=webp").variant.count("-") == 3


@pytest.mark.parametrize(
    ("query", "field", "allowed"),
    [
        ("fit=fill", "fit", "allowed: cover, contain, pad"),
        ("fit=", "fit", "fit is empty"),
        ("g=north", "g", "allowed: center, attention, entropy (centre means center)"),
        ("g=", "g", "g is empty"),
    ],
)
def test_bad_fit_and_gravity_values_name_the_allowed_ones(
    query: str, field: str, allowed: str
) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(allowed)) as caught:
        canon("w=1&h=1&" + query)
    assert caught.value.field == field


# -- names users get wrong (rule 2) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "wrong", "meant"),
    [
        ("width=320", "width", "w"),
        ("height=320", "height", "h"),
        ("format=webp", "format", "fmt"),
        ("fm=webp", "fm", "fmt"),
        ("quality=80", "quality", "q"),
        ("gravity=attention", "gravity", "g"),
        ("crop=pad", "crop", "fit"),
        ("W=320", "W", "w"),
        ("FMT=webp", "FMT", "fmt"),
        ("Dpr=2", "Dpr", "dpr"),
        ("%57=320", "W", "w"),  # decoded before it is judged
        ("w=320&Width=1&H=2", "H", "h"),  # the first in code-point order
    ],
)
def test_a_misspelt_name_is_a_400_that_names_the_right_one(
    query: str, wrong: str, meant: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        canon(query)
    assert caught.value.field == meant
    assert str(caught.value) == (
        f"query parameter {wrong!r} is not one imgcdn reads: did you mean {meant}? "
        "allowed: w, h, dpr, fit, g, fmt, q (lower case)"
    )


def test_a_misspelt_name_is_reported_before_a_repeat_or_a_bad_value() -> None:
    with pytest.raises(InvalidRequest, match="did you mean w"):
        canon("w=1&w=2&q=0&width=5")
    with pytest.raises(InvalidRequest, match="did you mean fmt"):
        canon({"w": "x", "Format": "webp"})


def test_names_that_only_look_alike_stay_junk() -> None:
    assert canon("widths=1&w_=2&ww=3&utm_width=4&fmt=jpeg") == canon("fmt=jpeg")
