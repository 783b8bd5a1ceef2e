"""`imgcdn takedown` against a running local stack, over HTTP, as a user runs it.

Upload, fetch (cached), take down, fetch: 404 at once, for both classes; a bulk run killed
with SIGKILL at random points finishes on rerun; bad input is a one-line error.
"""

from __future__ import annotations

import io
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imgcore.keys import ContentClass, ImageRef, content_version
from imgcore.storage import LocalStore


def _photo(seed: int) -> bytes:
    image = Image.new("RGB", (640, 480), (seed * 37 % 256, 90, 160))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgcore.cli", "takedown", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_upload_fetch_take_down_fetch_is_404_at_once_for_both_classes(start_stack: Any) -> None:
    stack = start_stack()
    data, neighbour = _photo(1), _photo(2)
    version = content_version(data)
    for cls in ("img", "ugc"):
        stack.upload(data, "demo", "shoes/red", cls)
    stack.upload(neighbour, "demo", "shoes/red-2")
    urls = [f"/{cls}/demo/shoes/red/{version}?w=480&fmt=webp" for cls in ("img", "ugc")]
    for url in urls:
        assert stack.get(url).status == 200
        cached = stack.get(url)
        assert (cached.status, cached.headers["x-cache"]) == (200, "Hit")

    done = _cli(
        "demo/shoes/red",
        "--reason",
        "DMCA notice 42",
        "--actor",
        "legal@example.com",
        "--url",
        stack.base_url,
        "--render-window",
        "0.5",
        "--poll-interval",
        "0.1",
        "--wait",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["complete"]
    assert report["verified"]["invalidations_completed"]
    for url in urls:
        gone = stack.get(url)
        assert gone.status == 404, url
        assert gone.headers["x-cache"] == "Miss"  # the cached 200 was invalidated
    other = content_version(neighbour)
    assert stack.get(f"/img/demo/shoes/red-2/{other}?w=480&fmt=webp").status == 200
    # The audit record is in the stack's audit store, apart from the data.
    audit = LocalStore(stack.data / "audit", versioned=True)
    record = json.loads(audit.get(report["audit_key"]).data)
    assert record["reason"] == "DMCA notice 42"
    deleted = [d for c in record["deleted"] for d in c["derivatives"]]
    assert len(deleted) == 2 * (24 + 1)  # the standard set and the manifest, per class
    # The gallery no longer lists it.
    assert "shoes/red-2" in stack.get("/").body.decode()
    assert "shoes/red/" not in stack.get("/").body.decode().replace("shoes/red-2", "")


def _seed(data_dir: Path, count: int) -> list[ImageRef]:
    """Images stored straight into the stack's folders: an original and three derivatives each."""
    originals = LocalStore(data_dir / "originals", versioned=True)
    derivatives = LocalStore(data_dir / "derivatives")
    images = []
    for n in range(count):
        image = ImageRef("bulk", f"user-{n:03d}/photo.jpg", ContentClass.TAKEDOWN)
        body = f"original {n}".encode()
        originals.put(image.source_key, body)
        version = content_version(body)
        for name in ("w160-q80.jpeg", "w320-q80.webp", "manifest.json"):
            derivatives.put(image.version_prefix(version) + name, b"derived")
        images.append(image)
    return images


@pytest.mark.slow
def test_a_bulk_run_killed_at_random_points_finishes_on_rerun(
    start_stack: Any, tmp_path: Path
) -> None:
    stack = start_stack()
    images = _seed(stack.data, 40)
    source = tmp_path / "ids.txt"
    source.write_text("".join(f"bulk/{i.image_id}\n" for i in images), encoding="utf-8")
    args = [
        "--from-file",
        str(source),
        "--class",
        "ugc",
        "--reason",
        "GDPR erasure batch 9",
        "--actor",
        "privacy@example.com",
        "--url",
        stack.base_url,
        "--render-window",
        "0.5",
        "--poll-interval",
        "0.1",
        "--workers",
        "2",
        "--json",
    ]
    rng = random.Random(11)  # noqa: S311 - reproducible kill times, not secrets
    kills = 0
    for _ in range(3):
        process = subprocess.Popen(
            [sys.executable, "-m", "imgcore.cli", "takedown", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(rng.uniform(0.5, 3.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.communicate(timeout=60)
    final = _cli(*args)
    assert final.returncode == 0, final.stderr
    report = json.loads(final.stdout)
    assert report["done"] + report["already_done"] == 40
    assert report["failed"] == []
    assert kills >= 1  # at least one run was really cut short
    originals = LocalStore(stack.data / "originals", versioned=True)
    derivatives = LocalStore(stack.data / "derivatives")
    assert list(originals.list_versions("ugc/bulk/")) == []
    assert list(derivatives.list_versions("ugc/bulk/")) == []
    journal = [
        json.loads(line)
        for line in (tmp_path / "ids.txt.journal").read_text(encoding="utf-8").splitlines()
    ]
    done = [e["target"] for e in journal if e["event"] == "done"]
    assert sorted(done) == sorted(f"bulk/{i.image_id}" for i in images)  # each once
    # Every image's audit record lists its original's version, whichever run deleted it.
    audit = LocalStore(stack.data / "audit", versioned=True)
    listed: dict[str, set[str]] = {}
    for info in audit.list("takedowns/"):
        record = json.loads(audit.get(info.key).data)
        keys = {d["key"] for c in record["deleted"] for d in c["originals"]}
        listed.setdefault(f"{record['tenant']}/{record['image_id']}", set()).update(keys)
    assert listed == {f"bulk/{i.image_id}": {i.source_key} for i in images}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo/x", "--reason", "r"], "--actor is required"),
        (["demo/x", "--actor", "a"], "--reason is required"),
        (["--actor", "a", "--reason", "r"], "name one image"),
        (["demo/../x", "--actor", "a", "--reason", "r"], "'..' segment"),
        (["nobody/x", "--actor", "a", "--reason", "r"], "tenant 'nobody' has nothing stored"),
    ],
)
def test_bad_input_is_one_line_and_deletes_nothing(
    start_stack: Any, args: list[str], message: str
) -> None:
    stack = start_stack()
    data = _photo(3)
    stack.upload(data, "demo", "x", wait=False)
    answer = _cli(*args, "--url", stack.base_url)
    assert answer.returncode == 2
    assert message in answer.stderr
    assert answer.stderr.count("\n") == 1
    assert "Traceback" not in answer.stderr
    assert LocalStore(stack.data / "originals", versioned=True).head("img/demo/x") is not None


def test_an_unreachable_stack_is_one_line(tmp_path: Path) -> None:
    answer = _cli("demo/x", "--actor", "a", "--reason", "r", "--url", "http://127.0.0.1:9")
    assert answer.returncode == 2
    assert "cannot reach the local stack at http://127.0.0.1:9" in answer.stderr
    assert answer.stderr.count("\n") == 1


def test_an_empty_file_and_a_file_of_duplicates(start_stack: Any, tmp_path: Path) -> None:
    stack = start_stack()
    stack.upload(_photo(4), "demo", "x", wait=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n", encoding="utf-8")
    answer = _cli(
        "--from-file", str(empty), "--actor", "a", "--reason", "r", "--url", stack.base_url
    )
    assert answer.returncode == 2
    assert "names no image to take down" in answer.stderr
    twice = tmp_path / "twice.txt"
    twice.write_text("demo/a\ndemo/a\nnobody/b\n", encoding="utf-8")
    answer = _cli(
        "--from-file",
        str(twice),
        "--actor",
        "a",
        "--reason",
        "r",
        "--url",
        stack.base_url,
        "--render-window",
        "0",
        "--json",
    )
    assert answer.returncode == 0, answer.stderr
    report = json.loads(answer.stdout)
    assert report["done"] == 1
    assert [(s["line"], s["why"][:33]) for s in report["skipped"]] == [
        (2, "duplicate of line 1"),
        (3, "tenant 'nobody' has nothing store"),
    ]
