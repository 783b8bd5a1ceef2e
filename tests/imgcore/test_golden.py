"""The golden vectors: imgcore must still produce exactly what the file froze (R1, R5).

A failure here means the public API of the edge changed. If that is intended, it is a cache-key
migration: regenerate with `make_golden.py`, review the diff, and say so in the commit.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imgcore import InvalidRequest, rewrite
from imgcore.params import PARAM_NAMES, Fit, Gravity
from imgcore.percent import decode_component

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "canonicalize.json"
CASES: list[dict[str, Any]] = json.loads(GOLDEN.read_text())["cases"]


def _message(case: dict[str, Any]) -> str:
    try:
        rewrite(case["path"], case["query"], case["accept"])
    except InvalidRequest as exc:
        return str(exc)
    return ""


def _actual(case: dict[str, Any]) -> dict[str, Any]:
    try:
        derivative = rewrite(case["path"], case["query"], case["accept"])
    except InvalidRequest as exc:
        return {"status": 400, "field": exc.field}
    p = derivative.params
    return {
        "status": 200,
        "uri": derivative.uri,
        "key": derivative.key,
        "params": {
            "w": p.w,
            "h": p.h,
            "fit": p.fit.value,
            "g": p.g.value,
            "fmt": p.fmt.value,
            "q": p.q,
        },
    }


# What a number may look like on the wire, each judged on one parameter's raw and decoded value.
NUMBER_KINDS: dict[str, Callable[[str, str], bool]] = {
    "empty": lambda raw, value: raw == "",
    "plus sign": lambda raw, value: raw.startswith("+") or raw.upper().startswith("%2B"),
    "minus sign": lambda raw, value: value.startswith("-"),
    "zero": lambda raw, value: re.fullmatch(r"0+", value) is not None,
    "zero-padded": lambda raw, value: re.fullmatch(r"0+[1-9][0-9]*", value) is not None,
    "huge": lambda raw, value: re.fullmatch(r"0*[1-9][0-9]{7,}", value) is not None,
    "non-ASCII digits": lambda raw, value: any(
        not c.isascii() and unicodedata.decimal(c, None) is not None for c in value
    ),
    "undecodable": lambda raw, value: value == "\ufffd",
}


def _values(query: str) -> dict[str, list[tuple[str, str]]]:
    """Each allowlisted name's (raw, decoded) values; undecodable values decode to U+FFFD."""
    found: dict[str, list[tuple[str, str]]] = {}
    for piece in query.split("&"):
        raw_name, _, raw = piece.partition("=")
        try:
            name = decode_component(raw_name, plus_is_space=True)
            value = decode_component(raw, plus_is_space=True)
        except ValueError:
            value = "\ufffd"
        found.setdefault(name, []).append((raw, value))
    return found


def test_there_are_enough_vectors_of_every_kind() -> None:
    assert len(CASES) >= 450
    fields = {c["expect"].get("field") for c in CASES}
    assert {"path", *PARAM_NAMES, None} <= fields
    shapes = {
        (c["expect"]["params"]["fit"], c["expect"]["params"]["g"])
        for c in CASES
        if "params" in c["expect"]
    }
    assert {(f.value, "center") for f in Fit} | {("cover", g.value) for g in Gravity} <= shapes
    misspelt = [c for c in CASES if "did you mean" in _message(c)]
    assert {c["expect"]["field"] for c in misspelt} == set(PARAM_NAMES)
    paths = " ".join(c["path"] for c in CASES)
    for hostile in ("%20", "+", "%25", "%C3%A9", "..", "%2F", "%5C", "%00", "%E2%80%AE"):
        assert hostile in paths, hostile
    parsed = [_values(c["query"]) for c in CASES]
    for name in ("w", "h", "q"):
        values = [v for found in parsed for v in found.get(name, [])]
        for kind, matches in NUMBER_KINDS.items():
            assert any(matches(raw, value) for raw, value in values), (name, kind)
    for name in PARAM_NAMES:
        assert any(len(found.get(name, [])) > 1 for found in parsed), (name, "repeated")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['path'][:40]}?{c['query'][:40]}")
def test_golden_vector(case: dict[str, Any]) -> None:
    assert _actual(case) == case["expect"]
