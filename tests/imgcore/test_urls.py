"""URL and srcset builders: only canonical URLs, on the policy's breakpoints."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from imgcore import (
    InvalidKey,
    InvalidRequest,
    build_url,
    canonicalize,
    rewrite,
    srcset,
    srcset_entries,
)
from imgcore.cli import main

V = "0123456789abcdef"


def test_build_url_snaps_orders_and_encodes() -> None:
    url = build_url(
        "acme", "red shoe+1.jpg", V, q=77, fmt="WEBP", w=287, base_url="https://cdn.example/"
    )
    assert url == f"https://cdn.example/img/acme/red%20shoe%2B1.jpg/{V}?w=320&fmt=webp&q=80"


def test_build_url_omits_what_the_edge_would_drop() -> None:
    assert build_url("acme", "x.png", V, fmt="auto") == f"/img/acme/x.png/{V}"
    assert build_url("acme", "x.png", V, fmt="png", q=50) == f"/img/acme/x.png/{V}?fmt=png"
    assert build_url("acme", "x.png", V, content_class="ugc").startswith("/ugc/acme/")


def test_build_url_is_a_fixed_point_of_the_edge() -> None:
    for kwargs in ({"w": 300}, {"w": 10_000, "h": 1}, {"fmt": "jpg", "q": 1}, {}):
        url = build_url("acme", "caf\u00e9/\u5199\u771f.jpg", V, **kwargs)  # type: ignore[arg-type]
        parts = urlsplit(url)
        first = rewrite(parts.path, parts.query, "image/webp")
        canonical = build_url(
            "acme",
            "caf\u00e9/\u5199\u771f.jpg",
            V,
            w=first.params.w,
            h=first.params.h,
            fmt=first.params.fmt.value,
            q=first.params.q,
        )
        assert rewrite(urlsplit(canonical).path, urlsplit(canonical).query, None) == first


def test_build_url_refuses_out_of_policy_values() -> None:
    with pytest.raises(InvalidRequest, match="allowed"):
        build_url("acme", "x", V, fmt="gif")
    with pytest.raises(InvalidRequest, match="between 1 and 100"):
        build_url("acme", "x", V, q=0)
    with pytest.raises(InvalidKey):
        build_url("acme", "../x", V)
    with pytest.raises(InvalidKey):
        build_url("acme", "x", "latest")


def test_srcset_uses_standard_widths_and_never_describes_upscaled_pixels() -> None:
    entries = srcset_entries("acme", "x.jpg", V, source_width=1000)
    assert [e.width for e in entries] == [160, 320, 480, 640, 960, 1000]
    assert entries[-1].url.endswith("?w=1280")
    text = srcset("acme", "x.jpg", V, widths=[300, 301, 600], base_url="https://c")
    assert (
        text == f"https://c/img/acme/x.jpg/{V}?w=320 320w, https://c/img/acme/x.jpg/{V}?w=640 640w"
    )


def test_cli_url_prints_canonical_urls(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["url", "acme", "a b.jpg", V, "--w", "287", "--base-url", "https://c", "--json"]) == 0
    )
    assert f"https://c/img/acme/a%20b.jpg/{V}?w=320" in capsys.readouterr().out


def test_cli_reports_user_errors_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["url", "Acme", "x", V]) == 2
    assert "allowed" in capsys.readouterr().err


def test_build_url_keeps_the_aspect_ratio_and_folds_dpr_in() -> None:
    url = build_url("acme", "x", V, w=300, h=200, dpr=2, fit="pad")
    assert url == f"/img/acme/x/{V}?w=640&h=427&fit=pad"
    assert canonicalize("w=640&h=427&fit=pad").variant == "w640-h427-pad-q80.jpeg"
    assert build_url("acme", "x", V, w=300, fit="pad", g="attention") == f"/img/acme/x/{V}?w=320"
    assert build_url("acme", "x", V, w=300, h=200, g="centre") == f"/img/acme/x/{V}?w=320&h=213"


def test_density_srcset_folds_each_dpr_rung_into_the_box() -> None:
    from imgcore.urls import density_srcset

    base = f"/img/acme/x/{V}"
    assert density_srcset("acme", "x", V, w=320) == (
        f"{base}?w=320 1x, {base}?w=480 1.5x, {base}?w=640 2x, {base}?w=960 3x"
    )
    assert density_srcset("acme", "x", V, w=300, h=200, fit="pad") == (
        f"{base}?w=320&h=213&fit=pad 1x, {base}?w=480&h=320&fit=pad 1.5x, "
        f"{base}?w=640&h=427&fit=pad 2x, {base}?w=960&h=640&fit=pad 3x"
    )
    # Past the largest breakpoint every density is the same URL: offered once.
    assert density_srcset("acme", "x", V, w=2560) == f"{base}?w=2560 1x"
