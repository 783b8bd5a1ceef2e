"""A real browser (Debian's chromium, headless) loads the gallery: every image decodes, in the
format its Accept header allows."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Response, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
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


@pytest.mark.slow
def test_gallery_images_decode_in_the_format_the_browser_accepts(
    start_stack: Any, real_photo: bytes, tmp_path: Path
) -> None:
    stack = start_stack()
    stack.upload(real_photo, "demo", "friends.jpg")
    stack.upload(real_photo, "demo", "takedown/friends.jpg", cls="ugc")
    images: list[tuple[str, str, int, str]] = []

    def record(response: Response) -> None:
        if "/img/" in response.url or "/ugc/" in response.url:
            accept = response.request.all_headers().get("accept", "")
            content_type = response.headers.get("content-type", "")
            images.append((response.url, content_type, response.status, accept))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800}, device_scale_factor=2)
            page.on("response", record)
            page.goto(stack.base_url + "/", wait_until="networkidle")
            page.wait_for_function(
                "Array.from(document.images).every(i => i.complete)", timeout=60_000
            )
            decoded = page.evaluate(
                "Array.from(document.images)"
                ".map(i => [i.currentSrc, i.naturalWidth, i.naturalHeight])"
            )
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "gallery.png"), full_page=True)
        finally:
            browser.close()
    assert len(decoded) == 2
    for src, width, height in decoded:
        assert width > 0, src
        assert height > 0, src
        assert "w=" in src  # a srcset candidate was chosen, not a bare original
    assert images, "the browser fetched no image"
    for url, content_type, status, accept in images:
        # fmt=auto resolves from the Accept the browser sent: avif > webp > jpeg (R3).
        assert accept, f"{url}: the browser sent no Accept header"
        expected = next((f for f in ("image/avif", "image/webp") if f in accept), "image/jpeg")
        assert (status, content_type) == (200, expected), (url, accept)
    assert (ARTIFACTS / "gallery.png").stat().st_size > 10_000
