"""R6: the committed cache-key snapshot matches the synth; `imgcdn cache-keys` guards it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from imgcdn_infra import cache_keys
from imgcore.cli import main


@pytest.fixture(scope="module")
def snapshot(workspace: Path) -> Path:
    return workspace / "packages" / "infra" / cache_keys.SNAPSHOT_NAME


def test_committed_snapshot_matches_what_cdk_json_deploys(synths: Any, snapshot: Path) -> None:
    rendered = cache_keys.to_text(cache_keys.render_assembly(synths.default.outdir))
    delta = cache_keys.diff(snapshot.read_text("utf-8"), rendered)
    assert delta == "", (
        "the cache keys drifted from the committed snapshot (R6); if on purpose, run "
        "`uv run imgcdn cache-keys --update` and commit it:\n" + delta
    )


def test_snapshot_names_every_part_of_every_key(snapshot: Path) -> None:
    behaviours = next(iter(next(iter(json.loads(snapshot.read_text("utf-8")).values())).values()))
    assert list(behaviours) == ["/ugc/*", "*"]
    for composition in behaviours.values():
        key = composition["cache_key"]
        assert set(key) == {"query_strings", "headers", "cookies", "accept_encoding", "ttl_seconds"}
        assert key["query_strings"] == {
            "behavior": "whitelist",
            "names": ["dpr", "fit", "fmt", "g", "h", "q", "w"],
        }


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (
            lambda key, ttl: key["QueryStringsConfig"]["QueryStrings"].append("utm_source"),
            "utm_source",
        ),
        (
            lambda key, ttl: key["HeadersConfig"].update(
                HeaderBehavior="whitelist", Headers=["Accept"]
            ),
            "Accept",
        ),
        (lambda key, ttl: key.update(EnableAcceptEncodingBrotli=False), '"brotli": false'),
        (lambda key, ttl: ttl.update(MinTTL=1), '"min": 1'),
    ],
)
def test_any_change_to_a_key_shows_in_the_diff(synths: Any, mutate: Any, needle: str) -> None:
    templates = copy.deepcopy(synths.default.templates)
    before = cache_keys.to_text(cache_keys.render(templates))
    for resource in next(iter(templates.values()))["Resources"].values():
        if resource["Type"] == "AWS::CloudFront::CachePolicy":
            config = resource["Properties"]["CachePolicyConfig"]
            mutate(config["ParametersInCacheKeyAndForwardedToOrigin"], config)
    delta = cache_keys.diff(before, cache_keys.to_text(cache_keys.render(templates)))
    assert needle in delta


def test_check_passes_on_the_committed_snapshot(
    synths: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache-keys", "--check", "--assembly", str(synths.default.outdir)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_check_fails_with_a_diff_on_drift_and_update_rewrites(
    synths: Any, snapshot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "snapshot.json"
    stale.write_text(snapshot.read_text("utf-8").replace('"max": 60', '"max": 300'), "utf-8")
    args = ["--assembly", str(synths.default.outdir), "--snapshot", str(stale)]
    assert main(["cache-keys", "--check", *args]) == 1
    captured = capsys.readouterr()
    assert '-            "max": 300' in captured.out
    assert '+            "max": 60' in captured.out
    assert "cache-keys --update" in captured.err
    assert main(["cache-keys", "--update", *args]) == 0
    assert stale.read_text("utf-8") == snapshot.read_text("utf-8")
    assert main(["cache-keys", "--check", *args]) == 0


def test_render_without_a_mode_prints_the_composition(
    synths: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache-keys", "--assembly", str(synths.full.outdir)]) == 0
    rendered = json.loads(capsys.readouterr().out)
    assert list(rendered["ImgcdnFull"]["DeliveryDistribution45EACD51"]) == [
        "/img/acme/*",
        "/ugc/acme/*",
        "/ugc/*",
        "*",
    ]
    assert rendered["ImgcdnFull"]["DeliveryDistribution45EACD51"]["/img/acme/*"]["signed_urls"]


def _with_function_code(templates: dict[str, Any], edit: Any) -> dict[str, Any]:
    changed = copy.deepcopy(templates)
    for template in changed.values():
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::CloudFront::Function":
                properties = resource["Properties"]
                properties["FunctionCode"] = edit(properties["FunctionCode"])
    return changed


def test_a_function_whose_rewrite_drops_h_fails_the_snapshot(synths: Any) -> None:
    # The cache policy is the same, the key is not: `h` no longer reaches the derivative URI.
    templates = synths.default.templates
    before = cache_keys.to_text(cache_keys.render(templates))
    push_h = "parts.push('h'+h);"  # as deployed: minified
    dropped = _with_function_code(templates, lambda code: code.replace(push_h, ""))
    assert dropped != templates  # the edit really changed the Function
    delta = cache_keys.diff(before, cache_keys.to_text(cache_keys.render(dropped)))
    removed = [line for line in delta.splitlines() if line.startswith("-")]
    added = [line for line in delta.splitlines() if line.startswith("+")]
    assert any("/0123456789abcdef/w320-h137-q70.webp" in line for line in removed)
    assert any("/0123456789abcdef/w320-q70.webp" in line for line in added)
    assert any('"code_sha256"' in line for line in added)


def test_the_snapshot_holds_the_functions_hash_and_what_it_writes(snapshot: Path) -> None:
    behaviours = next(iter(next(iter(json.loads(snapshot.read_text("utf-8")).values())).values()))
    for composition in behaviours.values():
        [function] = composition["functions"]
        assert len(function["code_sha256"]) == 64
        first = function["writes"][0]
        assert first["query"] == "w=287&h=100&fmt=webp&q=61&utm_source=x"
        assert first["uri"].endswith("/w320-h137-q70.webp")
        assert first["query_left"] == []  # R1: nothing else reaches the cache key or the origin


def test_signed_behaviours_show_their_trusted_key_groups(synths: Any) -> None:
    rendered = cache_keys.render_assembly(synths.full.outdir)
    behaviours = rendered["ImgcdnFull"]["DeliveryDistribution45EACD51"]
    acme = {
        "comment": "imgcdn tenant acme: signed URLs (R17)",
        "public_keys": ["imgcdn tenant acme, key k2026a", "imgcdn tenant acme, key k2026b"],
    }
    assert behaviours["/img/acme/*"]["trusted_key_groups"] == [acme]
    assert behaviours["/ugc/acme/*"]["trusted_key_groups"] == [acme]
    assert behaviours["/ugc/*"]["trusted_key_groups"] == []
    assert behaviours["*"]["trusted_key_groups"] == []
