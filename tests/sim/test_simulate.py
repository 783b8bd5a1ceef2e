"""The cache-economics simulator on a small trace: sane ratios, the modes in the right order."""

# ruff: noqa: S311 - seeded traces, not cryptography

from __future__ import annotations

import json
import random

import pytest

from imgcdn_sim import economics
from imgcdn_sim.economics import Config, Prices

SMALL = Config(
    requests=60_000, catalogue=300, pops=3, edge_capacity=2_000, shield_capacity=8_000, shapes=3_000
)


@pytest.fixture(scope="module")
def results() -> dict[str, economics.ModeResult]:
    return economics.simulate(SMALL, workers=1)


def test_every_ratio_is_a_ratio(results: dict[str, economics.ModeResult]) -> None:
    for r in results.values():
        for ratio in (r.edge_hit_ratio, r.shield_hit_ratio, r.cdn_hit_ratio):
            assert 0.0 <= ratio <= 1.0
        assert r.requests == SMALL.requests - int(SMALL.requests * SMALL.warmup)
        assert r.origin_requests == r.s3_hits + r.renders


def test_canonical_key_beats_no_snap_beats_raw(results: dict[str, economics.ModeResult]) -> None:
    canonical, no_snap, raw = (results[m] for m in economics.MODES)
    assert canonical.distinct_keys < no_snap.distinct_keys < raw.distinct_keys
    assert canonical.cdn_hit_ratio > no_snap.cdn_hit_ratio > raw.cdn_hit_ratio
    assert canonical.renders < no_snap.renders < raw.renders
    assert canonical.cdn_hit_ratio > 0.8


def test_only_the_function_rejects(results: dict[str, economics.ModeResult]) -> None:
    assert results["canonical"].rejected > 0
    assert results["canonical"].rejected == results["no-snap"].rejected
    assert results["raw"].rejected == 0


def test_the_standard_set_is_stored_for_every_requested_image(
    results: dict[str, economics.ModeResult],
) -> None:
    canonical = results["canonical"]
    assert canonical.standard_per_image == 24
    assert canonical.stored_variants >= 24 * canonical.images_requested
    assert results["raw"].stored_variants == 0


def test_two_processes_give_the_same_numbers(results: dict[str, economics.ModeResult]) -> None:
    parallel = economics.simulate(SMALL, workers=2)
    for mode, r in results.items():
        assert (parallel[mode].edge_hits, parallel[mode].renders) == (r.edge_hits, r.renders)


def test_the_seed_bill_is_reproduced() -> None:
    assert economics.seed_reference(Prices())["total"] == pytest.approx(104_000, rel=0.01)


def test_costs_follow_the_modes(results: dict[str, economics.ModeResult]) -> None:
    lines = {m: economics.costs(r, Prices(), SMALL) for m, r in results.items()}
    assert lines["raw"]["functions"] == 0
    assert lines["canonical"]["functions"] > 0
    assert lines["canonical"]["transform_lambda"] < lines["raw"]["transform_lambda"]
    assert len({round(line["egress"]) for line in lines.values()}) == 1
    for line in lines.values():
        assert line["total"] == pytest.approx(sum(v for k, v in line.items() if k != "total"))


def test_shapes_are_deterministic_and_mixed() -> None:
    a = economics.make_shapes(500, random.Random(3))
    assert a == economics.make_shapes(500, random.Random(3))
    assert any(s.unique_junk for s in a)
    assert any("utm_" in s.query for s in a)
    assert {s.accept for s in a} >= {None, "*/*"}


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="modes must be some of"):
        economics.simulate(SMALL, modes=["canonical", "cdn"])


def test_the_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--requests", "20000", "--catalogue", "100", "--shapes", "500", "--pops", "2"]
    assert economics.main([*argv, "--json", "--no-progress", "--price-egress-per-gb", "0.05"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["modes"]) == set(economics.MODES)
    assert data["prices"]["egress_per_gb"] == 0.05
    assert data["config"]["requests"] == 20_000


def test_the_command_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--requests", "20000", "--catalogue", "100", "--shapes", "500", "--no-progress"]
    assert economics.main(argv) == 0
    out = capsys.readouterr().out
    assert "| | canonical | no-snap | raw |" in out
    assert "egress_per_gb=0.06" in out


def test_cloudfront_requests_are_priced_on_every_request(
    results: dict[str, economics.ModeResult],
) -> None:
    # $0.0100 per 10,000 HTTPS requests (US): 1 B/day x 30 days = $30,000 a month, every mode.
    for result in results.values():
        line = economics.costs(result, Prices(), SMALL)["cloudfront_requests"]
        assert line == pytest.approx(30_000)
    doubled = economics.costs(results["canonical"], Prices(cloudfront_per_10k_requests=0.02), SMALL)
    assert doubled["cloudfront_requests"] == pytest.approx(60_000)


def test_the_request_line_is_shown_in_the_table_and_the_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--requests", "20000", "--catalogue", "100", "--shapes", "500", "--no-progress"]
    assert economics.main(argv) == 0
    assert "| CloudFront requests | $30,000 | $30,000 | $30,000 |" in capsys.readouterr().out
    assert economics.main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["prices"]["cloudfront_per_10k_requests"] == 0.01
    for mode in data["modes"].values():
        assert mode["monthly_cost"]["cloudfront_requests"] == pytest.approx(30_000)
