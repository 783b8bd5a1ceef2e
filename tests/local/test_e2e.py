"""The local stack end to end over HTTP: uploads, the edge's rules, coalescing, restarts."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest
from PIL import Image

from imgcore import content_version

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
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "server-timing" in first.headers
    image = _decode(first.body)
    assert (image.format, image.width) == ("WEBP", 640)  # 600 snapped up; pre-computed
    again = stack.get(f"{path}?session=9&fmt=WEBP&w=640", CHROME)  # junk, reordered, cased
    assert (again.headers["x-cache"], again.body) == ("Hit", first.body)
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


def test_concurrent_misses_cause_one_render(start_stack: Any) -> None:
    stack = start_stack()
    result = stack.upload(_small_png(), "demo", "gradient.png")
    target = f"/img/demo/gradient.png/{result['version']}?w=300&h=300&fmt=png"  # not standard
    answers: list[int] = []

    def fetch() -> None:
        answers.append(stack.get(target).status)

    threads = [threading.Thread(target=fetch) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 200
    assert stack.health()["fallback_invocations"] == 1


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
