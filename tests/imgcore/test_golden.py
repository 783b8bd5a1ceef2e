"""The golden vectors: imgcore must still produce exactly what the file froze (R1, R5).

A failure here means the public API of the edge changed. If that is intended, it is a cache-key
migration: regenerate with `make_golden.py`, review the diff, and say so in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imgcore import InvalidRequest, rewrite

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "canonicalize.json"
CASES: list[dict[str, Any]] = json.loads(GOLDEN.read_text())["cases"]


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
        "params": {"w": p.w, "h": p.h, "fmt": p.fmt.value, "q": p.q},
    }


def test_there_are_enough_vectors_of_every_kind() -> None:
    assert len(CASES) >= 300
    fields = {c["expect"].get("field") for c in CASES}
    assert {"path", "w", "h", "fmt", "q", None} <= fields
    queries = " ".join(c["query"] for c in CASES)
    paths = " ".join(c["path"] for c in CASES)
    for hostile in ("%20", "+", "%25", "%C3%A9", "..", "%2F", "w=&", "w=-", "w=+", "w=0"):
        assert hostile in queries + paths, hostile


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['path'][:40]}?{c['query'][:40]}")
def test_golden_vector(case: dict[str, Any]) -> None:
    assert _actual(case) == case["expect"]
