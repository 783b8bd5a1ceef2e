"""The generated Function: one template, the policy's values, CloudFront's limits (R5)."""

from __future__ import annotations

import itertools
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
from imgcore.percent import encode_path
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
    # Some room kept below CloudFront's limit, so a longer ladder or message still fits; a
    # policy that does not fit fails at synth with FunctionTooLarge, never at deploy.
    assert size <= MAX_FUNCTION_BYTES - 256, size
    assert source.isascii()
    assert "/*POLICY*/" not in source
    assert "function handler(event)" in source


def _tokens(source: str) -> list[str]:
    """The tokens of `source`: strings and regex literals whole, comments and spaces gone."""
    tokens: list[str] = []
    pos = 0
    while pos < len(source):
        token = _TOKEN.match(source, pos)
        assert token is not None, source[pos : pos + 40]
        kind, text = token.lastgroup, token.group()
        before = tokens[-1][-1:] if tokens else ""
        if kind == "regex" and before and before not in _BEFORE_REGEX:
            kind, text = "code", "/"  # a division, not a regex literal
        if kind in ("string", "regex"):
            tokens.append(text)
        elif kind == "code":
            tokens += re.findall(r"[A-Za-z0-9_$]+|\S", text)
        pos += len(text)
    return tokens


def test_the_deployed_copy_is_the_template_minified_token_for_token() -> None:
    # Only comments, blanks and spaces between tokens are gone: the same tokens in the same
    # order, so no string or regex literal has been touched and no name has been changed.
    template = TEMPLATE.splitlines()
    header = list(itertools.takewhile(lambda line: line.startswith("//"), template))
    deployed = render_function()
    assert deployed.splitlines()[: len(header)] == header
    literal = json.dumps(function_values(), sort_keys=True, separators=(",", ":"))
    expected = TEMPLATE.replace("/*POLICY*/{}", literal)
    assert _tokens(deployed) == _tokens(expected)
    assert len(deployed) < 0.85 * len(expected)  # the spacing was really removed


# One token at a time: a comment, a string, a regex literal, or a run of anything else.
_TOKEN = re.compile(
    r"""(?P<comment>//[^\n]*|/\*.*?\*/)
    |(?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
    |(?P<regex>/(?:[^/\\\n\[]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/[dgimsuy]*)
    |(?P<code>[^'"/]+|/)""",
    re.VERBOSE | re.DOTALL,
)
# After one of these (or at the start), a "/" opens a regex literal; elsewhere it divides.
_BEFORE_REGEX = set("(,=:[!&|?{};+-*%<>~^")
# ES2015+ syntax and built-ins that cloudfront-js-2.0 or njs may lack; the house style is ES5.
_NOT_ES5 = {
    "destructuring": r"\b(?:var|let|const)\s*[{\[]",
    "for...of": r"\bfor\s*\([^)]*\bof\b",
    "default parameter": r"\bfunction\b[^(]*\([^)]*=",
    "template literal": r"`",
    "arrow function": r"=>",
    "let": r"\blet\b",
    "const": r"\bconst\b",
    "class": r"\bclass\b",
    "spread or rest": r"\.\.\.",
    "async": r"\basync\b",
    "await": r"\bawait\b",
    "generator": r"\byield\b|\bfunction\s*\*",
    "eval": r"\beval\s*\(",
    "new Function": r"\bnew\s+Function\b",
    **{
        name: rf"\b{name}\b"
        for name in ("Map", "Set", "WeakMap", "Promise", "Symbol", "Proxy", "Reflect")
    },
    "require": r"\brequire\b",
    "import": r"\bimport\b",
}


def _code_only(source: str) -> str:
    """`source` with every comment, string and regex literal blanked: what they say is free."""
    out: list[str] = []
    pos = 0
    while pos < len(source):
        token = _TOKEN.match(source, pos)
        assert token is not None, source[pos : pos + 40]
        kind, text = token.lastgroup, token.group()
        before = "".join(out).rstrip()[-1:]
        if kind == "regex" and before and before not in _BEFORE_REGEX:
            kind, text = "code", "/"  # a division, not a regex literal
        out.append({"comment": " ", "string": "''", "regex": "/re/"}.get(kind or "", text))
        pos += len(text)
    return "".join(out)


def _not_es5(source: str) -> list[str]:
    code = _code_only(source)
    return [what for what, pattern in _NOT_ES5.items() if re.search(pattern, code)]


def test_the_es5_check_reads_code_not_text() -> None:
    # Each construct is caught in code, and none is caught in a string, a regex or a comment.
    caught = {
        "destructuring": "var {a} = b;",
        "for...of": "for (var x of xs) {}",
        "default parameter": "function f(a, b = 1) {}",
        "template literal": "var s = `x`;",
        "arrow function": "xs.map(function () {}).map(x => x);",
        "let": "let x = 1;",
        "const": "const x = 1;",
        "class": "class A {}",
        "spread or rest": "f(...xs);",
        "Map": "var m = new Map();",
        "Set": "var s = new Set();",
    }
    for what, source in caught.items():
        assert what in _not_es5(source), (what, source)
    quiet = (
        "var s = 'let const class => ... `x` new Map() var {a}';\n"
        'var t = "it\'s a Set, for (x of y)";\n'
        "var r = /['`]=>[.]{3}/g; // const x = `y`, let me => explain...\n"
        "var half = a / 2 / b;\n"
        "/* class Map */ return r.test(s) ? t : s;\n"
    )
    assert _not_es5(quiet) == []
    assert _not_es5("var [a, b] = c;") == ["destructuring"]


def test_the_function_is_conservative_es5() -> None:
    source = render_function()
    assert _not_es5(source) == []
    assert _not_es5(render_function(CUSTOM)) == []
    # The blanking keeps the code: every function of the template is still visible.
    count = re.compile(r"\bfunction\b")
    assert len(count.findall(_code_only(source))) == len(count.findall(_code_only(TEMPLATE)))


def test_the_policy_values_are_injected_not_typed_twice() -> None:
    values = function_values(DEFAULT_POLICY)
    assert values["widths"] == list(DEFAULT_POLICY.widths)
    assert values["qualities"] == list(DEFAULT_POLICY.qualities)
    assert values["defaultQuality"] == {"avif": 60, "webp": 80, "jpeg": 80}
    assert values["preference"] == ["avif", "webp"]
    assert values["fallback"] == "jpeg"
    assert values["errorMaxAge"] == DEFAULT_POLICY.ttl.client_error
    literal = json.dumps(values, sort_keys=True, separators=(",", ":"))
    assert f"var P={literal};" in render_function()
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
    assert "jpg" not in TEMPLATE  # aliases are injected (imgcore.params.VALUE_ALIASES)
    assert imgcore_keys._CONTROL.pattern == r"[\x00-\x1f\x7f-\x9f]"  # idBytes() refuses these
    # The id check's class is FORMAT_CHARACTERS, character for character: both languages read
    # \xNN and \uNNNN alike, so equal text is an equal set.
    assert f"/{imgcore_keys.FORMAT_CHARACTERS.pattern}/.test(id)" in TEMPLATE


def _near_refused_characters() -> list[str]:
    """Every BMP character refused in an image id, and each neighbour of a refused run."""
    refused = [
        c
        for c in range(0x10000)
        if imgcore_keys._CONTROL.match(chr(c)) or imgcore_keys.FORMAT_CHARACTERS.match(chr(c))
    ]
    near = {n for c in refused for n in (c - 1, c, c + 1)}
    return [chr(c) for c in sorted(near) if 0 <= c < 0x10000 and not 0xD800 <= c <= 0xDFFF]


def test_the_function_refuses_exactly_imgcore_invisible_characters(function_file: Path) -> None:
    characters = _near_refused_characters()
    cases = [
        {"path": f"/img/acme/a{encode_path(c)}b.jpg/0123456789abcdef", "query": "", "accept": None}
        for c in characters
    ]
    results = [comparable(r) for r in run_node(function_file, cases)]
    assert results == [_python(c, DEFAULT_POLICY) for c in cases]
    refused = {c for c, r in zip(characters, results, strict=True) if r["status"] == 400}
    invisible = imgcore_keys._CONTROL.pattern[:-1] + imgcore_keys.FORMAT_CHARACTERS.pattern[1:]
    # Both refuse the runs and accept their neighbours: a run one off at either end would show.
    assert refused == {c for c in characters if re.fullmatch(invisible, c)}
    assert refused
    assert len(refused) < len(characters)


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
        {"status": 200, "uri": f"{path}/w1000-h429.png"},  # wider than 21:9 keeps 21:9
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
