"""The local stack end to end over HTTP: uploads, the edge's rules, coalescing, restarts."""

from __future__ import annotations

import http.client
import io
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from moto.server import ThreadedMotoServer
from PIL import Image

from imgcdn_local.headers import HSTS_MAX_AGE_S
from imgcore import content_version
from imgcore.params import PARAM_NAMES
from imgcore.storage import LocalStore, encode_local_key

CHROME = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"
SAFARI_OLD = "image/webp,image/png,image/*;q=0.8,*/*;q=0.5"


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.slow
def test_upload_render_and_serve_like_the_distribution(start_stack: Any, real_photo: bytes) -> None:
    stack = start_stack()
    result = stack.upload(real_photo, "demo", "people/friends 1+.jpg")
    version = content_version(real_photo)
    assert (result["version"], result["status"]) == (version, "complete")
    assert result["variants"] == 24
    path = f"/img/demo/people/friends%201%2B.jpg/{version}"

    first = stack.get(f"{path}?w=600&fmt=webp&utm_source=news&fbclid=x", CHROME)
    assert (first.status, first.headers["x-cache"]) == (200, "Miss")
    assert first.headers["content-type"] == "image/webp"
    assert first.headers["cache-control"] == (
        "public, max-age=31536000, immutable, stale-while-revalidate=86400, stale-if-error=604800"
    )
    assert "server-timing" in first.headers
    # The distribution's response headers policy.
    assert first.headers["strict-transport-security"] == (
        f"max-age={HSTS_MAX_AGE_S}; includeSubDomains"
    )
    assert first.headers["x-content-type-options"] == "nosniff"
    assert first.headers["timing-allow-origin"] == "*"
    assert first.headers["vary"] == "Accept"  # a shared cache must not mix negotiated formats
    assert "access-control-allow-origin" not in first.headers  # not a CORS request
    image = _decode(first.body)
    assert (image.format, image.width) == ("WEBP", 640)  # 600 snapped up; pre-computed
    head = stack.request("HEAD", f"{path}?w=640&fmt=webp", headers={"accept": CHROME})
    assert (head.status, head.body) == (200, b"")
    assert head.headers["content-length"] == str(len(first.body))  # the GET's length, not 0
    again = stack.request(
        "GET",
        f"{path}?session=9&fmt=WEBP&w=640",  # junk, reordered, cased
        headers={"accept": CHROME, "origin": "https://shop.example"},
    )
    assert (again.headers["x-cache"], again.body) == ("Hit", first.body)
    assert again.headers["access-control-allow-origin"] == "*"
    assert again.headers["x-content-type-options"] == "nosniff"
    assert stack.health()["fallback_invocations"] == 0  # the standard set is all S3 reads

    # fmt=auto (the default) follows Accept; Accept never splits a format's cache entry.
    for accept, fmt in ((CHROME, "AVIF"), (SAFARI_OLD, "WEBP"), ("*/*", "JPEG"), (None, "JPEG")):
        answer = stack.get(f"{path}?w=320", accept)
        assert answer.status == 200
        assert (
            _decode(answer.body).format == fmt
            if fmt != "AVIF"
            else answer.body[4:12] == b"ftypavif"
        )

    bad = stack.get(f"{path}?w=-5")
    assert (bad.status, bad.headers["x-cache"]) == (400, "FunctionGeneratedResponse")
    assert b"allowed" in bad.body
    assert bad.headers["cache-control"] == "public, max-age=10"
    missing = stack.get(f"/img/demo/nope.jpg/{version}?w=320")
    assert missing.status == 404
    assert missing.headers["cache-control"] == "public, max-age=10"
    other_version = stack.get(f"{path.rsplit('/', 1)[0]}/{'0' * 16}?w=320")
    assert other_version.status == 404  # never another version's bytes (R7)

    page = stack.get("/")
    assert page.status == 200
    assert b"srcset=" in page.body
    assert b"friends%201%2B.jpg" in page.body


@pytest.mark.slow
def test_a_corrupt_upload_surfaces_and_the_stack_keeps_serving(
    start_stack: Any, real_photo: bytes
) -> None:
    stack = start_stack()
    result = stack.upload(real_photo[: len(real_photo) // 3], "demo", "broken.jpg")
    assert result["status"] == "failed"
    assert "allowed" in str(result["failure"]) or "decode" in str(result["failure"])
    assert "broken.jpg" in stack.get("/").body.decode()
    answer = stack.get(f"/img/demo/broken.jpg/{result['version']}?w=320")
    assert answer.status in (415, 422)
    assert stack.get("/_health").status == 200


def _small_png() -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((900, 600)).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def _large_png() -> bytes:
    buffer = io.BytesIO()
    Image.radial_gradient("L").resize((3000, 2000)).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def test_concurrent_misses_cause_one_render(start_stack: Any) -> None:
    stack = start_stack()
    result = stack.upload(_large_png(), "demo", "gradient.png")
    # Not in the standard set, and large: the render takes long enough for the misses to meet.
    target = f"/img/demo/gradient.png/{result['version']}?w=1600&h=1600&fmt=png"
    before = stack.health()
    barrier = threading.Barrier(200)
    answers: list[int] = []

    def fetch() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=120)
        try:
            conn.connect()
            barrier.wait(timeout=60)  # every socket is open; all 200 requests leave together
            conn.request("GET", target)
            response = conn.getresponse()
            response.read()
            answers.append(response.status)
        finally:
            conn.close()

    threads = [threading.Thread(target=fetch) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 200
    after = stack.health()
    misses = after["misses"] - before["misses"]
    coalesced = after["coalesced"] - before["coalesced"]
    assert misses + after["hits"] - before["hits"] == 200
    assert coalesced > 1, after  # the misses overlapped: they waited on one origin fetch
    assert coalesced == misses - 1  # every miss but the first joined it
    assert after["origin_fetches"] - before["origin_fetches"] == 1
    assert after["fallback_invocations"] - before["fallback_invocations"] == 1


def test_a_restart_loses_nothing(start_stack: Any, tmp_path: Any) -> None:
    data = tmp_path / "persist"
    first = start_stack(data)
    result = first.upload(_small_png(), "demo", "keep.png", cls="ugc")
    target = f"/ugc/demo/keep.png/{result['version']}?w=320&fmt=webp"
    before = first.get(target)
    assert before.status == 200
    assert before.headers["cache-control"] == "public, max-age=60"  # takedown-eligible (R9)
    assert first.stop() == 0
    assert any("stopped" in line for line in first.lines)
    second = start_stack(data)
    after = second.get(target)
    assert (after.status, after.body) == (200, before.body)
    assert b"keep.png" in second.get("/").body


def test_sigint_stops_cleanly_and_upload_cli_talks_to_the_stack(
    start_stack: Any, tmp_path: Any
) -> None:
    stack = start_stack()
    source = tmp_path / "g.png"
    source.write_bytes(_small_png())
    done = subprocess.run(
        [sys.executable, "-m", "imgcore.cli", "upload", str(source), "--tenant", "cli",
         "--url", stack.base_url, "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    [upload] = json.loads(done.stdout)["uploads"]
    assert upload["status"] == "complete"
    assert stack.get(upload["example"].removeprefix(stack.base_url)).status == 200
    assert stack.stop(signal.SIGINT) == 0


def test_upload_finds_the_stack_from_its_data_folder_and_prints_a_line_per_file(
    start_stack: Any, tmp_path: Path
) -> None:
    data = tmp_path / "found"
    stack = start_stack(data, "--log-json")
    assert json.loads((data / "stack.json").read_text())["url"] == stack.base_url
    sources = []
    for name in ("a.png", "b.png"):
        sources.append(tmp_path / name)
        sources[-1].write_bytes(_small_png())
    done = subprocess.run(
        [sys.executable, "-m", "imgcore.cli", "upload", *map(str, sources), "--tenant", "cli",
         "--data", str(data)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.count("status   complete: ") == 2, done.stdout
    assert f"url      {stack.base_url}/img/cli/a.png/" in done.stdout
    assert stack.stop() == 0
    assert not (data / "stack.json").exists()  # a stopped stack is not found again


def _manifest_path(data: Path, cls: str, image_id: str, version: str) -> Path:
    key = f"{cls}/demo/{image_id}/{version}/manifest.json"
    return data.joinpath("derivatives", "objects", *encode_local_key(key))


def _wait_for(path: Path, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            found: dict[str, Any] = json.loads(path.read_text())
            return found
        time.sleep(0.1)
    pytest.fail(f"{path} did not appear within {timeout} s")


def test_a_crash_right_after_an_upload_loses_nothing(start_stack: Any, tmp_path: Path) -> None:
    data = tmp_path / "crash"
    first = start_stack(data)
    png = _large_png()
    version = content_version(png)
    result = first.upload(png, "demo", "crash.png", wait=False)
    first.process.kill()  # a crash: no graceful stop, the render is cut short
    assert first.stop() == -signal.SIGKILL
    assert result["version"] == version
    assert not _manifest_path(data, "img", "crash.png", version).exists()  # nothing rendered yet
    second = start_stack(data)
    manifest = _wait_for(_manifest_path(data, "img", "crash.png", version))
    assert manifest["status"] == "complete"
    assert len(manifest["variants"]) == 24
    answer = second.get(f"/img/demo/crash.png/{version}?w=320&fmt=webp")
    assert (answer.status, answer.headers["content-type"]) == (200, "image/webp")
    assert second.health()["fallback_invocations"] == 0  # the standard set, pre-computed
    deadline = time.monotonic() + 30
    while second.health()["pending_uploads"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert second.health()["pending_uploads"] == 0


def test_an_original_with_no_manifest_is_rendered_on_start(
    start_stack: Any, tmp_path: Path
) -> None:
    data = tmp_path / "reconcile"
    start_stack(data).stop()
    # As if a run had stored the original and died before anything recorded it.
    png = _small_png()
    LocalStore(data / "originals", versioned=True).put("img/demo/orphan.png", png)
    start_stack(data)
    manifest = _wait_for(_manifest_path(data, "img", "orphan.png", content_version(png)))
    assert (manifest["status"], len(manifest["variants"])) == ("complete", 24)


IDS = ["100%.jpg", "a%41.jpg", "%25.jpg", "a+b.jpg", "two words.jpg", "été/naïve 日本.jpg"]


def test_ids_are_read_percent_encoded_like_cloudfront(start_stack: Any) -> None:
    stack = start_stack()
    png = _small_png()
    version = content_version(png)
    for image_id in IDS:
        result = stack.upload(png, "demo", image_id)
        assert (result["image_id"], result["status"]) == (image_id, "complete"), result
        answer = stack.get(f"/img/demo/{quote(image_id)}/{version}?w=320&fmt=webp")
        assert (answer.status, answer.headers["content-type"]) == (200, "image/webp"), image_id
        assert quote(image_id) in stack.get("/").body.decode()
    # Decoded once only: `%41` is "A", and `%2541` the three characters "%41".
    assert stack.get(f"/img/demo/a%2541.jpg/{version}?w=320").status == 200
    assert stack.get(f"/img/demo/a%41.jpg/{version}?w=320").status == 404  # that is aA.jpg
    # In a path, "+" is a plus sign, sent raw or encoded.
    raw_plus = stack.get(f"/img/demo/a+b.jpg/{version}?w=320&fmt=webp")
    assert raw_plus.status == 200
    assert raw_plus.body == stack.get(f"/img/demo/a%2Bb.jpg/{version}?w=320&fmt=webp").body
    page = stack.get(f"/_image/img/demo/{quote('100%.jpg')}/{version}")
    assert page.status == 200
    assert b"100%.jpg" in page.body


def test_concurrent_uploads_to_one_id_each_render_their_own_bytes(start_stack: Any) -> None:
    stack = start_stack()
    wide, tall = _small_png(), _small_png_tall()
    results: dict[str, dict[str, object]] = {}

    def upload(name: str, data: bytes) -> None:
        results[name] = stack.upload(data, "demo", "same.png")

    threads = [
        threading.Thread(target=upload, args=args) for args in (("wide", wide), ("tall", tall))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["wide"]["version"] == content_version(wide)
    assert results["tall"]["version"] == content_version(tall)
    for name, size in (("wide", (900, 600)), ("tall", (600, 900))):
        assert (results[name]["status"], results[name]["variants"]) == ("complete", 24)
        answer = stack.get(f"/img/demo/same.png/{results[name]['version']}?w=1280&fmt=png")
        assert answer.status == 200
        assert _decode(answer.body).size == size  # each version serves its own bytes (R7)


def _small_png_tall() -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((600, 900)).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def test_each_request_writes_one_structured_log_line(start_stack: Any) -> None:
    stack = start_stack(None, "--log-json")
    target = "/img/demo/logged.jpg/0123456789abcdef"
    assert stack.get(f"{target}?w=320").status == 404
    assert stack.stop() == 0
    lines = [
        e for e in stack.json_logs() if e.get("event") == "request" and e.get("path") == target
    ]
    assert len(lines) == 1, lines
    [line] = lines
    assert (line["method"], line["status"], line["x_cache"], line["level"]) == (
        "GET",
        404,
        "Miss",
        "info",
    )
    assert line["query"] == "w=320"
    assert isinstance(line["ms"], float)
    assert line["ms"] >= 0


def test_paths_outside_the_image_prefixes_get_the_functions_answer(start_stack: Any) -> None:
    stack = start_stack()
    # (`/favicon.ico` is the console's: see test_the_console_is_served_and_...)
    for target in ("/static/app.js", "/img", "/other/demo/x.jpg/0123456789abcdef"):
        answer = stack.get(target)
        assert (answer.status, answer.headers["x-cache"]) == (400, "FunctionGeneratedResponse")
        assert answer.headers["cache-control"] == "public, max-age=10"
        assert answer.headers["x-imgcdn-error-field"] == "path"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert b"allowed" in answer.body


@pytest.fixture
def moto_endpoint() -> Any:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_the_stack_runs_on_an_s3_endpoint(start_stack: Any, moto_endpoint: str) -> None:
    stack = start_stack(None, "--s3-endpoint", moto_endpoint)
    assert moto_endpoint in "".join(stack.lines)
    result = stack.upload(_small_png(), "demo", "on s3.png")
    assert (result["status"], result["variants"]) == ("complete", 24)
    assert result["version_id"]  # the originals bucket is versioned
    path = f"/img/demo/on%20s3.png/{result['version']}"
    stored = stack.get(f"{path}?w=320&fmt=webp")
    assert (stored.status, stored.headers["content-type"]) == (200, "image/webp")
    missed = stack.get(f"{path}?w=300&h=300&fmt=png")  # not standard: the fallback renders it
    assert missed.status == 200
    assert _decode(missed.body).format == "PNG"
    health = stack.health()
    assert health["fallback_invocations"] == 1
    assert stack.get(f"{path}?w=300&h=300&fmt=png").headers["x-cache"] == "Hit"


def test_the_console_is_served_and_its_takedown_refuses_a_cross_site_post(
    start_stack: Any,
) -> None:
    stack = start_stack()
    icon = stack.get("/favicon.ico")
    assert (icon.status, icon.headers["content-type"]) == (200, "image/x-icon")
    script = stack.get("/_console/static/console.js")
    assert (script.status, script.headers["content-type"].split(";")[0]) == (
        200,
        "text/javascript",
    )
    assert stack.get("/_console/static/stack.py").status == 404  # only the console's files
    assert stack.get("/_console/static/../stack.py").status == 400  # the Function's, no file
    params = json.loads(stack.get("/_console/api/params").body)
    assert [p["name"] for p in params["params"]] == list(PARAM_NAMES)
    stack.get("/img/demo/x.jpg/0123456789abcdef?w=320")  # a viewer request: a miss, a 404
    stats = json.loads(stack.get("/_console/api/stats").body)
    # Two viewer requests: the `..` path (the Function's 400) and this miss.
    assert (stats["requests"], stats["misses"], stats["queue_depth"]) == (2, 1, 0)
    body = json.dumps({"target": "demo/x.jpg", "reason": "r", "actor": "a"}).encode()
    simple = stack.request("POST", "/_console/api/takedown", body, {"content-type": "text/plain"})
    assert simple.status == 415
    foreign = stack.request(
        "POST",
        "/_console/api/takedown",
        body,
        {"content-type": "application/json", "origin": "https://evil.example"},
    )
    assert foreign.status == 403
    refused = stack.request(
        "POST", "/_console/api/takedown", b"{}", {"content-type": "application/json"}
    )
    assert refused.status == 400
    assert b"allowed" in refused.body
