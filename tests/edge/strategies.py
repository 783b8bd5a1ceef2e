"""Hypothesis strategies for viewer requests: realistic, hostile, and plain random."""

from __future__ import annotations

from random import Random
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from imgcore.params import PARAM_NAMES

V = "0123456789abcdef"

PERCENT_GARBAGE = [
    "%", "%2", "%zz", "%%", "%C3", "%C3%A9", "%ED%A0%80", "%ED%B0%80", "%C0%AF", "%C1%BF",
    "%E0%80%AF", "%F0%80%80%80", "%F4%90%80%80", "%F5%80%80%80", "%F8%80%80%80%80", "%80",
    "%BF", "%FE", "%FF", "%F0%9F", "%F0%9F%98%80", "%EF%BF%BF", "%EF%BB%BF", "%2F", "%2f",
    "%5C", "%5c", "%00", "%0A", "%0D", "%1F", "%7F", "%C2%80", "%C2%85", "%C2%9F", "%C2%A0",
    "%E2%80%A8", "%25", "%2B", "%20", "%3D", "%26", "%3F", "%23", "%2E", "%2E%2E", "%4", "%e",
    "x%", "%%41", "%41", "%C3%", "%e5%86%99",
]  # fmt: skip
SPECIALS = list(" ./\\+~!'()*&=?#;,:@$[]\"<>^`{|}\t\n\r\x00\x7f\x85\xa0\u2028\ufeff\u0663\u5752")
PLANES = [(0x20, 0x7E), (0x00, 0x1F), (0x7F, 0x9F), (0xA0, 0x2FF), (0x0100, 0xD7FF)]
PLANES += [(0xD800, 0xDFFF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
FORMAT_WORDS = ["jpeg", "jpg", "png", "webp", "avif", "auto", "gif", "svg", "jpe", "image/webp"]
FORMAT_WORDS += ["cover", "contain", "pad", "fill", "center", "centre", "attention", "entropy"]
FORMAT_WORDS += ["1.5", "2.0", "0.5", "3", "1.", ".5", "0.0"]
ODD_VALUES = [
    "", "-1", "+5", "1.5", "0x10", "3e2", "\u0663\u0662\u0660", "\uff13\uff12", "Infinity", "NaN",
    "%33%32%30", "32%30", "1%00", " 320", "320 ", "320+", "%2B320", "9999999", "10000000",
    "0000000000000000000001", "\u00b3", "\u212a", "\u0130mage", "true", "0", "00", "101", "100",
]  # fmt: skip
OTHER_NAMES = ["W", "H", "FMT", "Q", "%77", "%68", "f%6Dt", "%66%6d%74", "%71", "w%00", "w ", "w+"]
OTHER_NAMES += ["+w", " w", "width", "utm_source", "__proto__", "constructor", "toString", "0"]
OTHER_NAMES += ["Dpr", "FIT", "G", "format", "quality", "gravity", "crop", "fm", "hasOwnProperty"]
MEDIA = ["image/avif", "image/webp", "image/jpeg", "image/png", "*/*", "image/*", "IMAGE/AVIF"]
MEDIA += ["Image/WebP", "image/avifx", "image/avi", "text/html", "", "image/\u0130", "image /avif"]
QPARAMS = [";q=0", ";q=1", ";q=0.5", ";q=0.000", ";q=0.001", ";q=1.000", ";q=1.5", ";q=", ";Q=0"]
QPARAMS += [" ; q = 0", ";q=0;q=1", ";level=1", ";q=abc", ";q=0.0001", ";q=1.", ";q", ";q=0."]
QPARAMS += [";q=\t0.9", "; q=0.9 ", ";q=-1", ";q=01"]
WHITESPACE = ["", "", "", " ", "\t", "  ", "\u00a0", "\x0b"]
BROWSERS = [
    "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "image/webp,*/*",
    "image/png,image/*;q=0.8,*/*;q=0.5",
    "*/*",
]
SEED = st.integers(0, 2**32 - 1)
"""Generation dominates the run time, so each piece of a request costs hypothesis one draw: a
seed from which plain Python builds the piece (realistic most of the time, hostile often)."""


def _rng(seed: int) -> Random:
    return Random(seed)  # noqa: S311 - test data, reproducible from hypothesis's seed


def _hostile(r: Random) -> str:
    """0-5 chunks of percent garbage, specials and code points from every plane."""
    chunks = []
    for _ in range(r.randint(0, 5)):
        kind = r.randrange(5)
        if kind == 0:
            chunks.append(r.choice(PERCENT_GARBAGE))
        elif kind == 1:
            chunks.append(r.choice(SPECIALS))
        elif kind == 2:
            low, high = r.choice(PLANES)
            chunks.append(chr(r.randint(low, high)))
        elif kind == 3:
            low, high = r.choice(PLANES[:5] + PLANES[6:])
            chunks.append(quote(chr(r.randint(low, high)), safe=""))
        else:
            chunks.append(r.choice(["a", "Z", "9", "acme", "w", "=", "&", "q"]))
    return "".join(chunks)


def _maybe_encoded(r: Random, text: str) -> str:
    """`text`, or with some characters percent-encoded (any case of hex)."""
    if r.random() < 0.85:
        return text
    out = "".join(
        quote(c, safe="", errors="surrogatepass") if r.random() < 0.5 else c for c in text
    )
    return out.lower() if r.random() < 0.3 else out


def _segment(r: Random) -> str:
    roll = r.random()
    if roll < 0.75:
        return r.choice(["photo.jpg", "a", "red shoe.jpg", "red+shoe", "100%25", "caf%C3%A9"])
    if roll < 0.8:
        return r.choice(["..", ".", "", "%2E%2E", "a%2Fb", "a%5Cb", "caf\u00e9", "%F0%9F%98%80"])
    if roll < 0.9:
        return _maybe_encoded(r, "".join(chr(r.randint(*r.choice(PLANES))) for _ in range(3)))
    return _hostile(r)


def _path(seed: int) -> str:
    r = _rng(seed)
    roll = r.random()
    if roll < 0.04:
        return _hostile(r)
    if roll < 0.12:
        n, unit = r.choice(
            [(512, "x"), (256, "%C3%A9"), (128, "%F0%9F%98%80"), (128, "\U0001f600")]
        )
        return f"/img/acme/{unit * (n + r.randint(-3, 3))}/{V}"
    cls = (
        r.choice(["img", "ugc"]) if r.random() < 0.95 else r.choice(["IMG", "static", "", "%69mg"])
    )
    tenant = r.choice(["acme", "a", "t" * 32, "a-b", "x9"])
    if r.random() < 0.08:
        tenant = r.choice(["t" * 33, "Acme", "-acme", "acme-", "ac_me", "%61cme", _hostile(r)])
    ids = "/".join(_segment(r) for _ in range(r.choice([1, 1, 1, 2, 3])))
    version = V
    if r.random() < 0.1:
        version = r.choice(["".join(r.choice("0123456789abcdef") for _ in range(16)), V.upper()])
        version = r.choice([version, V[:-1], V + "0", "latest", "", _hostile(r)])
    path = f"/{cls}/{tenant}/{ids}/{version}"
    return path + _hostile(r) if r.random() < 0.04 else path


def _value(r: Random, name: str) -> str:
    roll = r.random()
    if roll < 0.3 and name in ("w", "h", "q"):
        return str(r.choice([r.randint(1, 3000), r.randint(1, 120), r.randint(0, 10**30)]))
    if roll < 0.45:
        return "0" * r.randint(1, 12) + str(r.randint(0, 10**9))
    if roll < 0.65:
        word = r.choice(FORMAT_WORDS)
        return "".join(c.upper() if r.random() < 0.3 else c for c in word)
    if roll < 0.85:
        return _maybe_encoded(r, r.choice(ODD_VALUES))
    return _hostile(r)


def _piece(seed: int) -> str:
    r = _rng(seed)
    if r.random() < 0.08:
        return _hostile(r)
    name = r.choice(PARAM_NAMES)
    if r.random() < 0.25:
        name = r.choice([*OTHER_NAMES, _hostile(r), _maybe_encoded(r, name)])
    if r.random() < 0.06:
        return name
    return name + r.choice(["="] * 19 + ["=="]) + _value(r, name)


def _accept(seed: int) -> str:
    r = _rng(seed)
    if r.random() < 0.1:
        return _hostile(r)
    entries = []
    for _ in range(r.randint(0, 4)):
        media = r.choice(MEDIA) if r.random() < 0.85 else _hostile(r)
        params = "".join(r.choice(QPARAMS) for _ in range(r.choice([0, 0, 1, 1, 2])))
        if r.random() < 0.05:
            params += ";" + _hostile(r)
        entries.append(r.choice(WHITESPACE) + media + params + r.choice(WHITESPACE))
    return ",".join(entries)


def _query(r: Random) -> str:
    roll = r.random()
    if roll < 0.05:
        return _hostile(r)
    query = "&".join(_piece(r.getrandbits(32)) for _ in range(r.choice([0, 1, 1, 2, 2, 3, 4, 6])))
    return "?" + query if roll > 0.95 else query


def _as_javascript_sees_it(text: str) -> str:
    # Python keeps "\ud83d\ude00" as two lone surrogates; JSON hands JS one emoji. Join such
    # pairs so that both languages get the same text (lone surrogates stay lone).
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def viewer_request(seed: int) -> dict[str, Any]:
    """One viewer request built from a seed: path, raw query, and an Accept header.

    About one in ten repeats the Accept header (CloudFront's multiValue).
    """
    r = _rng(seed)
    case: dict[str, Any] = {"path": _path(r.getrandbits(32)), "query": _query(r), "accept": None}
    roll = r.random()
    if roll < 0.1:
        case["accept_values"] = [
            r.choice([*BROWSERS, _accept(r.getrandbits(32))]) for _ in range(r.randint(2, 3))
        ]
    elif roll < 0.2:
        case["accept"] = r.choice(BROWSERS)
    elif roll < 0.25:
        case["accept"] = ""
    elif roll < 0.9:
        case["accept"] = _accept(r.getrandbits(32))
    for name in ("path", "query", "accept"):
        if case[name] is not None:
            case[name] = _as_javascript_sees_it(case[name])
    if "accept_values" in case:
        case["accept_values"] = [_as_javascript_sees_it(v) for v in case["accept_values"]]
    return case


def batch(seed: int, size: int) -> list[dict[str, Any]]:
    """`size` viewer requests from one seed (hypothesis draws one seed per batch).

    One draw per batch keeps generation cheap and every batch new: hypothesis never runs the
    same seed twice, while seeds drawn per request repeat across its mutations.
    """
    r = _rng(seed)
    return [viewer_request(r.getrandbits(32)) for _ in range(size)]
