"""A real browser (Debian's chromium, headless) drives the dev console end to end.

Upload through the page's file input (a good photo and a broken one), wait for each row's
result, check that every gallery image decodes in the format its Accept allows, that the stats
change, that the image page's variants decode, that the playground gives the canonical URL, the
rewritten key and the image, and that the takedown button takes the image down. No request of
the console's own answers 4xx/5xx, the favicon included. Screenshots of each page are kept in
`artifacts/`; with IMGCDN_UPDATE_SCREENSHOTS=1 the README's screenshots in `docs/` are written
too.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, Response, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
DOCS = ROOT / "docs"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As this machine's notes say: no background networking, so chromium stays on loopback.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-features=OptimizationHints,MediaRouter,Translate",
]


def _require_chromium() -> None:
    """Skip without chromium on a workstation; in CI its absence is a failure, never a skip."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI: run tests/local/setup_browser.sh")
    pytest.skip("chromium is not installed (tests/local/setup_browser.sh installs it)")


def _photo(path: Path, hue: int) -> Path:
    """A small landscape JPEG with shapes, quick to render in every standard variant."""
    image = Image.new("RGB", (1000, 700), (hue, 120, 200 - hue // 2))
    draw = ImageDraw.Draw(image)
    for i in range(8):
        draw.ellipse((60 + i * 110, 150 + (i % 3) * 90, 220 + i * 110, 330 + (i % 3) * 90),
                     fill=((hue + 40 * i) % 256, 200 - 15 * i, 90 + 12 * i))  # fmt: skip
    draw.rectangle((0, 560, 1000, 700), fill=(30, 60, 40))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    path.write_bytes(out.getvalue())
    return path


def _shoot(page: Page, name: str, focus: str | None = None) -> None:
    """The whole page into artifacts/; the viewport (at `focus`) into docs/ when asked to."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, scale="css")
    if os.environ.get("IMGCDN_UPDATE_SCREENSHOTS") == "1":
        if focus:
            page.eval_on_selector(focus, "e => e.scrollIntoView({block: 'center'})")
        page.screenshot(path=str(DOCS / f"{name}.png"), full_page=False, scale="css")


def _stat(page: Page, name: str) -> str:
    text: str = page.inner_text(f"#stats [data-stat={name}] dd")
    return text


def _all_decoded(page: Page, selector: str) -> list[list[Any]]:
    """Scroll each image into view (they load lazily), wait, return [src, width, height]s."""
    for handle in page.query_selector_all(selector):
        handle.scroll_into_view_if_needed()
    page.wait_for_function(
        f"Array.from(document.querySelectorAll({selector!r})).every(i => i.complete)",
        timeout=30_000,
    )
    decoded: list[list[Any]] = page.evaluate(
        f"Array.from(document.querySelectorAll({selector!r}))"
        ".map(i => [i.currentSrc, i.naturalWidth, i.naturalHeight])"
    )
    return decoded


def _gallery(page: Page, base_url: str, files: list[Path]) -> dict[str, Any]:
    """Upload `files` through the file input; what the gallery then shows."""
    page.goto(base_url + "/", wait_until="networkidle")
    page.wait_for_selector("#stats [data-stat=requests]", timeout=10_000)
    renders_before = _stat(page, "renders")
    page.set_input_files("#files", [str(f) for f in files])
    page.wait_for_function(
        "document.querySelectorAll('#uploads li[data-state=complete],"
        f" #uploads li[data-state=rejected]').length === {len(files)}",
        timeout=60_000,
    )
    rows = page.evaluate(
        "Array.from(document.querySelectorAll('#uploads li'))"
        ".map(li => [li.dataset.file, li.dataset.state, li.innerText])"
    )
    page.wait_for_selector("#grid figure.card:not(.failed) img")
    decoded = _all_decoded(page, "#grid img")
    page.wait_for_function(
        "document.querySelector('#stats [data-stat=renders] dd').textContent"
        f" !== {renders_before!r}",
        timeout=10_000,
    )
    _shoot(page, "console-gallery")
    return {"rows": {name: (state, text) for name, state, text in rows}, "decoded": decoded}


def _image_page(page: Page) -> dict[str, Any]:
    """Open the first image's page, play with the URL, take the image down."""
    page.click("#grid figure.card:not(.failed) a.thumb")
    page.wait_for_selector("#preview[src]", timeout=30_000)
    variants = _all_decoded(page, ".variants img")
    page.select_option("#params select[name=w]", "480")
    page.wait_for_function(
        "document.querySelector('#canonical')?.textContent.includes('w=480')"
        " && document.querySelector('#preview').complete"
        " && document.querySelector('#preview').naturalWidth === 480",
        timeout=30_000,
    )
    seen = {
        "variants": variants,
        "canonical": page.inner_text("#canonical"),
        "key": page.inner_text("#s3key"),
    }
    _shoot(page, "console-image", focus="#playground")
    page.fill("#takedown input[name=reason]", "DMCA notice 42")
    page.fill("#takedown input[name=actor]", "legal@example.com")
    page.click("#takedown button")
    page.wait_for_selector("#takedown[data-state]", timeout=60_000)
    seen["takedown"] = page.get_attribute("#takedown", "data-state")
    seen["takedown_text"] = page.inner_text("#takedown-result")
    return seen


def _check_answers(answers: list[tuple[str, str, int, str, str]]) -> None:
    """No console request failed; each <img> got the format its Accept allows (R3)."""
    for method, url, status, accept, content_type in answers:
        if method == "PUT" and "broken.jpg" in url:
            continue  # the refused upload: its answer is the row's reason
        assert status < 400, (method, url, status)
        own_image_request = accept.startswith("image/") and "," in accept
        if own_image_request and "/img/" in url and "?" in url and "fmt=" not in url:
            expected = next((f for f in ("image/avif", "image/webp") if f in accept), "image/jpeg")
            assert content_type == expected, (url, accept)


@pytest.mark.slow
def test_the_console_uploads_shows_plays_and_takes_down(start_stack: Any, tmp_path: Path) -> None:
    _require_chromium()
    stack = start_stack()
    good = _photo(tmp_path / "lake view.jpg", 40)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:2000])
    answers: list[tuple[str, str, int, str, str]] = []
    errors: list[str] = []

    def record(response: Response) -> None:
        headers = response.request.all_headers()
        answers.append(
            (
                response.request.method,
                response.url,
                response.status,
                headers.get("accept", ""),
                response.headers.get("content-type", ""),
            )
        )

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800}, device_scale_factor=2)
            page.on("response", record)
            page.on("pageerror", lambda error: errors.append(str(error)))
            gallery = _gallery(page, stack.base_url, [good, broken])
            seen = _image_page(page)
        finally:
            browser.close()

    assert not errors, errors  # the console's script ran without an uncaught error
    rows = gallery["rows"]
    assert rows["lake view.jpg"][0] == "complete", rows
    assert rows["broken.jpg"][0] == "rejected", rows
    assert "rejected" in rows["broken.jpg"][1]
    assert len(gallery["decoded"]) == 1  # the broken upload is a card without an image
    for src, width, height in gallery["decoded"] + seen["variants"]:
        assert width > 0, src
        assert height > 0, src
    assert "w=" in gallery["decoded"][0][0]  # a srcset candidate was chosen, not the bare URL
    assert len(seen["variants"]) == 24  # 8 widths x 3 formats of the standard set
    canonical = seen["canonical"]
    assert canonical.startswith(stack.base_url + "/img/demo/lake%20view.jpg/")
    assert canonical.endswith("?w=480")
    assert seen["key"].endswith("/w480-q60.avif")  # the first Accept offered: the policy's first
    assert seen["takedown"] == "complete", seen["takedown_text"]
    assert "verified every deleted version answers 404" in seen["takedown_text"]
    _check_answers(answers)
    # Headless chromium asks for no favicon, so the test does, as a tab would.
    icon = stack.get("/favicon.ico")
    assert (icon.status, icon.headers["content-type"]) == (200, "image/x-icon")
    assert Image.open(io.BytesIO(icon.body)).format == "ICO"
    assert stack.get(canonical.removeprefix(stack.base_url)).status == 404
    for name in ("console-gallery", "console-image"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000
