"""The generated Function: one template, the policy's values, CloudFront's limits (R5)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.edge.engines import comparable, run_njs, run_node
from tests.edge.strategies import batch

from imgcdn_edge.function import (
    MAX_FUNCTION_BYTES,
    TEMPLATE_NAME,
    FunctionTooLarge,
    function_values,
    render_function,
)
from imgcore import DEFAULT_POLICY, InvalidRequest, OutputFormat, Policy, rewrite
from imgcore import keys as imgcore_keys
from imgcore import params as imgcore_params
from imgcore.policy import CacheTtls, DefaultQuality

TEMPLATE = (Path(__file__).parents[2] / "packages/edge/src/imgcdn_edge" / TEMPLATE_NAME).read_text(
    encoding="utf-8"
)
CUSTOM = Policy(
    widths=(100, 200, 300, 1000),
    heights=(50, 500),
    qualities=(30, 60, 95),
    default_quality=DefaultQuality(jpeg=95, webp=60, avif=30),
    output_formats=(OutputFormat.WEBP, OutputFormat.JPEG, OutputFormat.PNG),
    auto_preference=(OutputFormat.WEBP,),
    auto_fallback=OutputFormat.PNG,
    standard={"widths": (100, 200), "formats": (OutputFormat.WEBP,)},
    ttl=CacheTtls(client_error=30),
)


def test_the_default_function_fits_cloudfront_with_room_to_spare() -> None:
    source = render_function()
    size = len(source.encode("utf-8"))
    assert size <= MAX_FUNCTION_BYTES - 1024, size
    assert source.isascii()
    assert "/*POLICY*/" not in source
    assert "function handler(event)" in source


def test_the_function_is_conservative_es5() -> None:
    code = re.sub(r"//[^\n]*", "", render_function())
    code = re.sub(r"'(?:[^'\\]|\\.)*'", "''", code)  # string literals may say anything
    code = re.sub(r"/(?:[^/\\\n]|\\.)+/[gimsuy]*", "/re/", code)  # regex literals too
    for banned in ("=>", "`", "...", " class ", "let ", "const ", "async ", "await ", "yield "):
        assert banned not in code, banned
    for name in ("Map", "Set", "Promise", "Symbol", "Proxy", "Reflect", "require", "import"):
        assert not re.search(rf"\b{name}\b", code), name
    assert "eval(" not in code
    assert "new Function" not in code


def test_the_policy_values_are_injected_not_typed_twice() -> None:
    values = function_values(DEFAULT_POLICY)
    assert values["widths"] == list(DEFAULT_POLICY.widths)
    assert values["qualities"] == list(DEFAULT_POLICY.qualities)
    assert values["defaultQuality"] == {"avif": 60, "webp": 80, "jpeg": 80}
    assert values["preference"] == ["avif", "webp"]
    assert values["fallback"] == "jpeg"
    assert values["errorMaxAge"] == DEFAULT_POLICY.ttl.client_error
    literal = json.dumps(values, sort_keys=True, separators=(",", ":"))
    assert f"var P = {literal};" in render_function()
    for number in ("2560", "1920", "max-age=10", "avif"):  # nothing policy-shaped in the logic
        assert number not in TEMPLATE, number


def test_the_template_agrees_with_imgcore_constants() -> None:
    # The key layout's rules are regexes in both languages; the same patterns, character for
    # character (imgcore's are private, so this test is where the two are held together).
    patterns = {
        "TENANT": imgcore_keys._TENANT.pattern,
        "VERSION": imgcore_keys._VERSION.pattern,
        "QVALUE": f"(?:{imgcore_params._QVALUE.pattern})",
    }
    for name, pattern in patterns.items():
        assert f"var {name} = /^{pattern}(?![\\s\\S])/;" in TEMPLATE, name
    values = function_values()
    assert values["maxDigits"] == imgcore_params._MAX_DIGITS
    assert values["maxIdBytes"] == imgcore_keys.MAX_IMAGE_ID_BYTES
    assert imgcore_params._FORMAT_ALIASES == {"jpg": "jpeg"}  # the template's one alias
    assert imgcore_keys._CONTROL.pattern == r"[\x00-\x1f\x7f-\x9f]"  # idBytes() refuses these


def _python(case: dict[str, Any], policy: Policy) -> dict[str, Any]:
    try:
        return {
            "status": 200,
            "uri": rewrite(case["path"], case["query"], case["accept"], policy).uri,
        }
    except InvalidRequest as exc:
        return {"status": 400, "field": exc.field}


def test_a_custom_policy_changes_the_function_and_python_alike(tmp_path: Path) -> None:
    function = tmp_path / "custom.js"
    function.write_text(render_function(CUSTOM), encoding="utf-8")
    path = "/img/acme/photo.jpg/0123456789abcdef"
    handpicked: list[dict[str, Any]] = [
        {"path": path, "query": "w=150", "accept": "image/avif,image/webp"},
        {"path": path, "query": "w=5000&h=1", "accept": "image/avif"},
        {"path": path, "query": "q=61&fmt=jpg", "accept": None},
        {"path": path, "query": "fmt=avif", "accept": None},
        {"path": path, "query": "fmt=auto", "accept": "image/avif"},
    ]
    assert [_python(c, CUSTOM) for c in handpicked] == [
        {"status": 200, "uri": f"{path}/w200-q60.webp"},
        {"status": 200, "uri": f"{path}/w1000-h50.png"},
        {"status": 200, "uri": f"{path}/q95.jpeg"},
        {"status": 400, "field": "fmt"},
        {"status": 200, "uri": f"{path}/full.png"},
    ]
    generated = [c for c in batch(2024, 2000) if "accept_values" not in c]
    cases = handpicked + generated
    results = run_node(function, cases)
    assert [comparable(r) for r in results] == [_python(c, CUSTOM) for c in cases]
    errors = [r for r in results if r["status"] == 400]
    assert errors
    assert {r["cache_control"] for r in errors} == {"public, max-age=30"}
    ascii_cases = [c for c in cases if json.dumps(c, ensure_ascii=False).isascii()]
    njs = run_njs(function, ascii_cases, tmp_path)
    assert [comparable(r) for r in njs] == [_python(c, CUSTOM) for c in ascii_cases]


def test_a_policy_too_big_for_cloudfront_is_refused() -> None:
    huge = Policy(
        widths=tuple(range(1, 2000)),
        standard={"widths": (1,)},
    )
    with pytest.raises(FunctionTooLarge, match=r"at most 10,240"):
        render_function(huge)


# -- the CLI ---------------------------------------------------------------------------------


def _imgcdn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgcore.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_cli_prints_exactly_the_generated_function() -> None:
    done = _imgcdn("edge-function")
    assert done.returncode == 0, done.stderr
    assert done.stdout == render_function()


def test_cli_writes_the_function_and_reports_size_and_hash(tmp_path: Path) -> None:
    out = tmp_path / "dist" / "viewer-request.js"
    done = _imgcdn("edge-function", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert out.read_text(encoding="utf-8") == render_function()
    assert result["bytes"] == out.stat().st_size
    assert result["limit"] == MAX_FUNCTION_BYTES
    assert result["out"] == str(out)
    assert len(result["sha256"]) == 64
    text = _imgcdn("edge-function", "--out", str(out))
    assert text.stdout.startswith(f"{out}: ")
    assert "bytes of 10,240 allowed" in text.stdout


def test_cli_takes_a_policy_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(CUSTOM.to_json(), encoding="utf-8")
    done = _imgcdn("edge-function", "--policy", str(policy))
    assert done.returncode == 0, done.stderr
    assert done.stdout == render_function(CUSTOM)
    policy.write_text('{"widths": [300, 200]}', encoding="utf-8")
    done = _imgcdn("edge-function", "--policy", str(policy))
    assert done.returncode == 2
    assert "not a valid policy JSON" in done.stderr
    assert "strictly increasing" in done.stderr
    done = _imgcdn("edge-function", "--policy", str(tmp_path / "missing.json"))
    assert done.returncode == 2
    assert "missing.json" in done.stderr
