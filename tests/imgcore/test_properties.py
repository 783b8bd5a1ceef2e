"""Invariants of canonicalization and the key layout, over generated inputs (hypothesis)."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from imgcore import (
    DEFAULT_POLICY,
    ContentClass,
    ImageRef,
    InvalidKey,
    InvalidRequest,
    OutputFormat,
    TransformParams,
    canonicalize,
    derivative_key,
    parse_derivative_key,
    parse_derivative_uri,
    parse_public_path,
)
from imgcore.params import MISTAKEN_NAMES, PARAM_NAMES, Fit, Gravity, box_is_canonical
from imgcore.percent import decode_component

NAMES = PARAM_NAMES


def _is_junk(name: str) -> bool:
    """Whether canonicalize drops a parameter of this raw name: it must not DECODE to a real one
    (`%71` is `q`, `%66mt` is `fmt`) or to a misspelt one (`W`, `width`: a 400); a name that
    does not decode at all is junk too."""
    try:
        decoded = decode_component(name, plus_is_space=True)
    except ValueError:
        return True
    lowered = decoded.lower() if decoded.isascii() else decoded
    return lowered not in NAMES and lowered not in MISTAKEN_NAMES


junk_names = st.text(alphabet="abcdefgmtwWHQ_-%.+0123456789", min_size=1, max_size=8).filter(
    _is_junk
)
junk = st.tuples(junk_names, st.text(max_size=10).map(lambda v: quote(v, safe="")))
values = {
    "w": st.one_of(st.integers(0, 10**9).map(str), st.sampled_from(["", "-1", "+5", "0300", "x"])),
    "h": st.one_of(st.integers(0, 10**9).map(str), st.sampled_from(["", "1.5", "00"])),
    "fmt": st.sampled_from(["jpeg", "JPG", "png", "webp", "AVIF", "auto", "gif", ""]),
    "q": st.one_of(st.integers(0, 200).map(str), st.just("")),
    "dpr": st.sampled_from(["1", "1.5", "2", "2.0", "3", "0.5", "9", "0", "", "x", "1.25"]),
    "fit": st.sampled_from(["cover", "contain", "pad", "PAD", "fill", ""]),
    "g": st.sampled_from(["center", "centre", "attention", "entropy", "north", ""]),
}
accepts = st.one_of(
    st.none(),
    st.sampled_from(["image/avif,image/webp,*/*", "image/webp", "*/*", "image/avif;q=0", ""]),
    st.text(max_size=40),
)


@st.composite
def queries(draw: st.DrawFn) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A list of real (name, value) pairs (each name at most once) and a list of junk pairs."""
    names = draw(st.lists(st.sampled_from(NAMES), unique=True))
    real = [(n, draw(values[n])) for n in names]
    return real, draw(st.lists(junk, max_size=5))


def _query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{n}={v}" for n, v in pairs)


def _outcome(query: str, accept: str | None) -> TransformParams | str:
    try:
        return canonicalize(query, accept)
    except InvalidRequest as exc:
        return f"400:{exc.field}"


@settings(max_examples=400)
@given(queries(), accepts, st.randoms(use_true_random=False))
def test_order_and_junk_do_not_change_the_result(
    q: tuple[list[tuple[str, str]], list[tuple[str, str]]], accept: str | None, rnd: object
) -> None:
    real, junk_pairs = q
    expected = _outcome(_query(real), accept)
    mixed = real + junk_pairs
    rnd.shuffle(mixed)  # type: ignore[attr-defined]
    assert _outcome(_query(mixed), accept) == expected


@settings(max_examples=400)
@given(queries(), accepts)
def test_canonicalization_is_idempotent_and_stays_in_the_policy(
    q: tuple[list[tuple[str, str]], list[tuple[str, str]]], accept: str | None
) -> None:
    real, junk_pairs = q
    result = _outcome(_query(real + junk_pairs), accept)
    if isinstance(result, str):
        return
    assert canonicalize(result.query(), accept) == result
    assert canonicalize(result.query(), "text/plain") == result  # a concrete fmt ignores Accept
    assert result.w is None or result.w in DEFAULT_POLICY.widths
    if result.w is None:
        assert result.h is None or result.h in DEFAULT_POLICY.heights
    else:
        assert result.h is None or box_is_canonical(result)
    if result.w is None or result.h is None:
        assert (result.fit, result.g) == (Fit.COVER, Gravity.CENTER)
    assert result.fmt in DEFAULT_POLICY.output_formats
    assert (result.q is None) == (result.fmt is OutputFormat.PNG)
    assert result.q is None or result.q in DEFAULT_POLICY.qualities


segment = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp"), blacklist_characters="/\\"
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))
image_ids = st.lists(segment, min_size=1, max_size=4).map("/".join)
tenants = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
versions = st.from_regex(r"[0-9a-f]{16}", fullmatch=True)


@st.composite
def params(draw: st.DrawFn) -> TransformParams:
    """Canonical params: any box of the policy, with a fit or gravity where one applies."""
    fmt = draw(st.sampled_from(list(OutputFormat)))
    q = None if fmt is OutputFormat.PNG else draw(st.sampled_from(DEFAULT_POLICY.qualities))
    w = draw(st.one_of(st.none(), st.sampled_from(DEFAULT_POLICY.widths)))
    if w is None:
        h = draw(st.one_of(st.none(), st.sampled_from(DEFAULT_POLICY.heights)))
        return TransformParams(fmt=fmt, w=w, h=h, q=q)
    rung = draw(st.one_of(st.none(), st.sampled_from(DEFAULT_POLICY.ratio_ladder)))
    if rung is None:
        return TransformParams(fmt=fmt, w=w, q=q)
    fit = draw(st.sampled_from(list(Fit)))
    g = draw(st.sampled_from(list(Gravity))) if fit is Fit.COVER else Gravity.CENTER
    return TransformParams(fmt=fmt, w=w, h=rung.height_for(w), q=q, fit=fit, g=g)


@settings(max_examples=400)
@given(tenants, image_ids, versions, params(), st.sampled_from(list(ContentClass)))
def test_key_layout_round_trips(
    tenant: str, image_id: str, version: str, p: TransformParams, cls: ContentClass
) -> None:
    try:
        ref = ImageRef(tenant, image_id, cls)
    except InvalidKey:
        assert len(image_id.encode()) > 512
        return
    from imgcore import DerivativeKey

    derivative = DerivativeKey(ref, version, p)
    assert derivative_key(tenant, image_id, version, p, cls) == derivative.key
    assert parse_derivative_key(derivative.key) == derivative
    assert parse_derivative_uri(derivative.uri) == derivative
    assert parse_public_path(ref.public_path(version)) == (ref, version)
    assert derivative.key.startswith(ref.prefix)
