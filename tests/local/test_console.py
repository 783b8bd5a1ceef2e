"""The console's server half, without a browser: its parameters, playground, stats and pages."""

from __future__ import annotations

import asyncio
import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imgcdn_local.console import (
    console_stats,
    gallery_page,
    image_page,
    param_choices,
    playground_answer,
)
from imgcdn_local.console_takedown import TakedownRefused, take_down_here
from imgcdn_local.server import build_stack
from imgcdn_local.stack import Stack
from imgcore import DEFAULT_POLICY, ContentClass, InvalidRequest, rewrite
from imgcore.manifest import Manifest, VariantRecord
from imgcore.params import PARAM_NAMES
from imgcore.policy import OutputFormat

PATH = "/img/demo/lake%20view.jpg/0123456789abcdef"


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return build_stack(tmp_path / "data", base_url="http://127.0.0.1:9")


def _manifest(status: str = "complete") -> Manifest:
    variants = tuple(
        VariantRecord(
            key=f"img/demo/lake view.jpg/0123456789abcdef/w{w}-q80.webp",
            variant=f"w{w}-q80.webp",
            fmt=OutputFormat.WEBP,
            width=w,
            height=w * 7 // 10,
            bytes=w * 10,
        )
        for w in (160, 320)
    )
    return Manifest(
        tenant="demo",
        image_id="lake view.jpg",
        content_class=ContentClass.STANDARD,
        version="0123456789abcdef",
        status=status,  # type: ignore[arg-type] - a Literal, checked by pydantic
        failure=None if status == "complete" else "cannot be decoded; allowed: valid jpeg",
        source_key="img/demo/lake view.jpg",
        source_bytes=24_184,
        source_width=1000 if status == "complete" else None,
        source_height=700 if status == "complete" else None,
        variants=variants if status == "complete" else (),
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
    )


def test_the_playground_offers_every_parameter_of_the_contract_with_the_policys_values() -> None:
    offered = param_choices(DEFAULT_POLICY)
    assert [p["name"] for p in offered] == list(PARAM_NAMES)
    by_name = {p["name"]: p["values"] for p in offered}
    assert by_name["w"] == list(DEFAULT_POLICY.widths)
    assert by_name["q"] == list(DEFAULT_POLICY.qualities)
    assert by_name["fmt"][0] == "auto"
    assert set(by_name["fmt"][1:]) == {f.value for f in DEFAULT_POLICY.output_formats}


def test_the_playground_answers_the_canonical_url_and_the_rewrite_for_each_accept(
    stack: Stack,
) -> None:
    answer = playground_answer(stack, PATH, {"w": "300", "q": "75"}, "http://h:1")
    assert answer["url"] == f"http://h:1{PATH}?w=320&q=80"
    resolved = [r["resolves"] for r in answer["rewrites"]]
    assert resolved == [*(f.value for f in DEFAULT_POLICY.auto_preference), "jpeg"]
    for r in answer["rewrites"]:
        expected = rewrite(PATH, "w=300&q=75", r["accept"], DEFAULT_POLICY)
        assert (r["uri"], r["key"]) == (expected.uri, expected.key)
    with pytest.raises(InvalidRequest, match="allowed"):
        playground_answer(stack, PATH, {"w": "wide"}, "http://h:1")


def test_stats_count_requests_hits_and_misses(stack: Stack) -> None:
    empty = {"variants": 0, "bytes": 0, "manifests": 0}
    before = console_stats(stack, empty)
    assert (before["requests"], before["hit_ratio"], before["renders"]) == (0, None, 0)
    for _ in range(2):  # no such image: the fallback's 404, cached for the error TTL
        asyncio.run(stack.fetch(PATH, "w=320", "image/webp"))
    after = console_stats(stack, {"variants": 3, "bytes": 10, "manifests": 1})
    assert (after["requests"], after["hits"], after["misses"]) == (2, 1, 1)
    assert after["hit_ratio"] == 0.5
    assert after["fallback_renders"] == 1
    assert after["render_ms_mean"] is not None
    assert (after["stored_variants"], after["queue_depth"], after["dead_letters"]) == (3, 0, 0)


def test_the_gallery_shows_a_card_per_image_with_its_srcset_and_placeholder() -> None:
    page = gallery_page([_manifest(), _manifest("failed")], DEFAULT_POLICY)
    assert page.count("<figure class=card>") == 1
    assert page.count('<figure class="card failed">') == 1
    assert "cannot be decoded; allowed: valid jpeg" in page
    srcset = html.unescape(re.search(r'srcset="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    assert srcset.split(", ")[0] == f"{PATH}?w=160 160w"
    assert "lake view.jpg" in page
    assert "2 variants" in page
    assert "No images yet" in gallery_page([], DEFAULT_POLICY)


def test_the_image_page_carries_what_its_script_needs() -> None:
    page = image_page(_manifest(), DEFAULT_POLICY)
    data = json.loads(html.unescape(re.search(r'data-console="([^"]*)"', page).group(1)))  # type: ignore[union-attr]
    assert data == {
        "path": PATH,
        "target": "demo/lake view.jpg",
        "class": "img",
        "initial": {"w": "320"},
    }
    assert page.count("loading=lazy") == 2
    assert "&lt;picture&gt;" in page
    assert "id=takedown" in page


@pytest.mark.parametrize(
    ("body", "allowed"),
    [
        ({"target": "demo/x.jpg", "actor": "me"}, "reason"),
        ({"target": "demo", "reason": "r", "actor": "me"}, "TENANT/IMAGE_ID"),
        ({"target": "demo/x.jpg", "class": "gif", "reason": "r", "actor": "me"}, "allowed"),
    ],
)
def test_a_takedown_without_what_it_needs_is_refused_with_what_is_allowed(
    stack: Stack, body: dict[str, str], allowed: str
) -> None:
    with pytest.raises(TakedownRefused, match=allowed):
        take_down_here(stack, body)
