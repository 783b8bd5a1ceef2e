"""The race: a fallback render in flight when a takedown starts leaves nothing behind.

The real fallback service reads the original, then its transform blocks; the takedown deletes
everything and waits out its render window; the render is released, stores its derivative
(after the deletes), and answers. The sweep after the window finds that derivative, deletes it
and invalidates the image a second time, so neither storage nor the cache keeps it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from imgcdn_edge.service import Answer, FallbackService
from imgcdn_ops.invalidation import InvalidationQueue
from imgcdn_ops.takedown import TakedownReport, TakedownService, parse_target, take_down
from imgcore.keys import ImageRef, content_version
from imgcore.params import TransformParams
from imgcore.pixels import Rendered
from imgcore.policy import OutputFormat, Policy
from imgcore.storage import MemoryStore


@dataclass
class Cdn:
    paths: list[str] = field(default_factory=list)

    def create(self, paths: Sequence[str], reference: str) -> str:
        self.paths += paths
        return f"I{len(self.paths)}"

    def status(self, invalidation_id: str) -> str:
        return "Completed"


def test_a_render_in_flight_during_a_takedown_leaves_no_derivative() -> None:
    originals, derivatives = MemoryStore(versioned=True), MemoryStore()
    image = ImageRef("acme", "shoe")
    data = b"original bytes"  # never decoded: the transform below stands in for libvips
    originals.put(image.source_key, data)
    version = content_version(data)
    entered, release = threading.Event(), threading.Event()

    def slow_transform(source: bytes, params: TransformParams, policy: Policy) -> Rendered:
        assert source == data
        entered.set()
        assert release.wait(30)
        return Rendered(b"rendered pixels", params, 480, 320, 1.0)

    fallback = FallbackService(originals, derivatives, transform=slow_transform)
    uri = f"/img/acme/shoe/{version}/w480-q80.webp"
    answers: list[Answer] = []
    render = threading.Thread(target=lambda: answers.append(fallback.render(uri)))
    render.start()
    assert entered.wait(30)  # the render has read the original and is transforming

    cdn = Cdn()
    reports: list[TakedownReport] = []
    takedown = threading.Thread(
        target=lambda: reports.append(
            take_down(
                parse_target("acme/shoe", "img"),
                reason="DMCA notice 42",
                actor="legal",
                service=TakedownService(originals, derivatives, MemoryStore()),
                queue=InvalidationQueue(cdn),
                render_window_s=1.0,
            )
        )
    )
    takedown.start()
    deadline = time.monotonic() + 30
    while originals.head(image.source_key) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert originals.head(image.source_key) is None  # the takedown deleted the original...
    release.set()  # ...and only now does the render go on, store, and answer
    render.join(30)
    assert answers[0].status == 200
    assert answers[0].stored  # the derivative did land, after the deletes
    takedown.join(60)

    report = reports[0]
    assert report.complete, report.problems
    assert list(derivatives.list()) == []
    assert [v.key for s in report.swept for v in s.derivatives] == [
        f"img/acme/shoe/{version}/w480-q80.webp"
    ]
    assert cdn.paths == ["/img/acme/shoe/*", "/img/acme/shoe/*"]
    assert (
        OutputFormat.WEBP.value
        in report.as_dict()["swept_after_render_window"][0]["derivatives"][0]["key"]
    )
