"""The service over each store (memory, crash-safe directory, moto S3): render, record, skip."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imgcdn_precompute.service import Action, PixelRenderer, PrecomputeService, stream_version
from imgcore.keys import ContentClass, content_version, parse_source_key
from imgcore.policy import Limits, Policy
from imgcore.responses import cache_control
from imgcore.storage import MemoryStore

KEY = "img/acme/summer sale/red shoe+1.jpg"
PIL_FORMATS = {"avif": "AVIF", "webp": "WEBP", "jpeg": "JPEG"}


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_an_upload_gets_every_standard_variant_and_a_manifest(
    stores: Any, policy: Policy, photo: bytes, renderer: Any
) -> None:
    stores.originals.put(KEY, photo, content_type="image/jpeg")
    service = PrecomputeService(
        stores.originals, stores.derivatives, policy=policy, renderer=renderer
    )

    outcome = service.created(KEY)

    assert outcome.action is Action.RENDERED
    image = parse_source_key(KEY)
    version = content_version(photo)
    assert outcome.version == version
    manifest = stores.manifest(image, version)
    assert manifest == outcome.manifest
    assert (manifest.tenant, manifest.image_id, manifest.content_class) == (
        "acme",
        "summer sale/red shoe+1.jpg",
        ContentClass.STANDARD,
    )
    assert manifest.status == "complete"
    assert manifest.failure is None
    assert (manifest.source_key, manifest.source_bytes) == (KEY, len(photo))
    assert (manifest.source_format, manifest.source_width, manifest.source_height) == (
        "jpeg",
        1600,
        1200,
    )
    expected = {
        f"w{w}-q{policy.default_quality.for_format(f)}.{f.value}"
        for w in (160, 320)
        for f in policy.standard.formats
    }
    assert {v.variant for v in manifest.variants} == expected
    stored = set(stores.listing(image.version_prefix(version)))
    assert stored == {v.key for v in manifest.variants} | {image.manifest_key(version)}
    for record in manifest.variants:
        assert record.key == image.version_prefix(version) + record.variant
        got = stores.derivatives.get(record.key)
        # R11: the same headers the fallback sends.
        assert got.info.content_type == record.fmt.media_type
        assert got.info.cache_control == cache_control(ContentClass.STANDARD, policy)
        assert got.info.cache_control == (
            "public, max-age=31536000, immutable, "
            "stale-while-revalidate=86400, stale-if-error=604800"
        )
        decoded = decode(got.data)
        assert decoded.format == PIL_FORMATS[record.fmt.value]
        assert decoded.size == (record.width, record.height)
        assert record.width in (160, 320)
        assert record.height == record.width * 3 // 4
        assert record.bytes == len(got.data)
        assert decoded.mode == "RGB"
        assert not decoded.getexif()
    assert outcome.bytes_written == sum(v.bytes for v in manifest.variants) + len(
        manifest.to_json()
    )
    # The placeholder: the photo's dominant colour and a decodable 16-pixel-wide preview.
    assert manifest.placeholder is not None
    lqip = decode(base64.b64decode(manifest.placeholder.lqip.split(",", 1)[1]))
    assert (lqip.format, lqip.width) == ("WEBP", 16)
    mean = decode(stores.derivatives.get(manifest.variants[-1].key).data).resize((1, 1))
    colour = int(manifest.placeholder.color[1:], 16)
    for channel, value in zip(mean.getpixel((0, 0)), colour.to_bytes(3, "big"), strict=True):
        assert abs(channel - value) < 24
    manifest_object = stores.derivatives.get(image.manifest_key(version))
    assert manifest_object.info.content_type == "application/json"
    assert renderer.renders == 1


def test_takedown_content_is_cached_for_at_most_60_seconds(policy: Policy, photo: bytes) -> None:
    originals, derivatives = MemoryStore(), MemoryStore()
    key = "ugc/acme/uploads/u+1.jpg"
    originals.put(key, photo)
    outcome = PrecomputeService(originals, derivatives, policy=policy).created(key)
    assert outcome.action is Action.RENDERED
    assert outcome.manifest is not None
    for record in outcome.manifest.variants:
        info = derivatives.head(record.key)
        assert info is not None
        assert info.cache_control == "public, max-age=60"
        assert info.cache_control == cache_control(ContentClass.TAKEDOWN, policy)
    assert outcome.manifest.content_class is ContentClass.TAKEDOWN


def test_a_redelivered_event_renders_nothing(
    stores: Any, policy: Policy, photo: bytes, renderer: Any
) -> None:
    stores.originals.put(KEY, photo)
    service = PrecomputeService(
        stores.originals, stores.derivatives, policy=policy, renderer=renderer
    )
    first = service.created(KEY)
    before = {k: stores.derivatives.get(k).data for k in stores.listing()}

    again = service.created(KEY)

    assert (first.action, again.action) == (Action.RENDERED, Action.SKIPPED)
    assert again.version == first.version
    assert again.manifest == first.manifest
    assert renderer.renders == 1
    assert {k: stores.derivatives.get(k).data for k in stores.listing()} == before


def test_new_bytes_under_the_same_key_are_a_new_version_and_the_old_one_stays(
    policy: Policy, photo_factory: Any
) -> None:
    originals, derivatives = MemoryStore(), MemoryStore()
    service = PrecomputeService(originals, derivatives, policy=policy)
    old, new = photo_factory(1), photo_factory(2)
    originals.put(KEY, old)
    first = service.created(KEY)
    originals.put(KEY, new)
    second = service.created(KEY)

    assert first.version == content_version(old)
    assert second.version == content_version(new)
    assert first.version != second.version
    image = parse_source_key(KEY)
    # R7: a versioned URL keeps serving exactly its version's bytes.
    for outcome in (first, second):
        assert outcome.action is Action.RENDERED
        assert outcome.manifest is not None
        for record in outcome.manifest.variants:
            assert derivatives.get(record.key).data
        assert derivatives.head(image.manifest_key(outcome.version or "")) is not None


def test_rendering_is_deterministic_so_racing_writers_agree(policy: Policy, photo: bytes) -> None:
    results = []
    for _ in range(2):
        originals, derivatives = MemoryStore(), MemoryStore()
        originals.put(KEY, photo)
        PrecomputeService(originals, derivatives, policy=policy).created(KEY)
        results.append(
            {
                i.key: derivatives.get(i.key).data
                for i in derivatives.list()
                if "manifest" not in i.key
            }
        )
    assert results[0] == results[1]
    assert len(results[0]) == 6


def test_two_workers_racing_on_one_version_leave_one_complete_result(
    stores: Any, policy: Policy, photo: bytes, renderer: Any
) -> None:
    stores.originals.put(KEY, photo)
    barrier = threading.Barrier(2, timeout=60)

    class Lockstep(type(renderer)):  # type: ignore[misc]
        def render(self, *args: Any, **kwargs: Any) -> Any:
            rendered = super().render(*args, **kwargs)
            barrier.wait()  # both have rendered before either writes
            return rendered

    lockstep = Lockstep()
    services = [
        PrecomputeService(stores.originals, stores.derivatives, policy=policy, renderer=lockstep)
        for _ in range(2)
    ]
    outcomes: list[Any] = [None, None]

    def work(index: int) -> None:
        outcomes[index] = services[index].created(KEY)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(o.action for o in outcomes) == [Action.RENDERED, Action.SKIPPED]
    assert lockstep.renders == 2
    image = parse_source_key(KEY)
    version = content_version(photo)
    manifest = stores.manifest(image, version)
    winner = next(o for o in outcomes if o.action is Action.RENDERED)
    assert manifest == winner.manifest
    for record in manifest.variants:
        data = stores.derivatives.get(record.key).data
        assert len(data) == record.bytes
        assert decode(data).size == (record.width, record.height)


FIXTURE_IMAGES = Path(__file__).resolve().parents[1] / "fixtures" / "images"


@pytest.mark.parametrize(
    "case",
    [
        ("text", lambda photo: b"this is not an image, just text\n" * 10, "not an image"),
        ("truncated", lambda photo: photo[: len(photo) // 2], "cannot be"),
        # Cut, then closed with an end-of-image marker: libjpeg only warns and fills grey.
        ("truncated-with-eoi", lambda photo: photo[: len(photo) // 2] + b"\xff\xd9", "cannot be"),
        (
            "pixel-bomb",
            lambda photo: (FIXTURE_IMAGES / "pixel-bomb-20000x20000.png").read_bytes(),
            "pixels",
        ),
        ("svg", lambda photo: (FIXTURE_IMAGES / "file-href.svg").read_bytes(), "svg"),
    ],
    ids=lambda case: case[0],
)
def test_an_original_that_cannot_be_rendered_is_recorded_as_failed(
    case: tuple[str, Any, str], policy: Policy, photo: bytes, renderer: Any
) -> None:
    _, make, error = case
    data = make(photo)
    originals, derivatives = MemoryStore(), MemoryStore()
    originals.put(KEY, data)
    service = PrecomputeService(originals, derivatives, policy=policy, renderer=renderer)

    outcome = service.created(KEY)

    assert outcome.action is Action.FAILED, outcome
    version = content_version(data)
    image = parse_source_key(KEY)
    assert [i.key for i in derivatives.list()] == [image.manifest_key(version)]
    stored = derivatives.get(image.manifest_key(version))
    assert stored.info.cache_control == "public, max-age=10"  # short: the policy may change
    manifest = outcome.manifest
    assert manifest is not None
    assert manifest.status == "failed"
    assert manifest.failure is not None
    assert error in manifest.failure.lower()
    assert "allowed" in manifest.failure
    assert manifest.variants == ()
    assert manifest.source_bytes == len(data)
    # A permanent failure is not retried: the next delivery only reads the manifest.
    assert service.created(KEY).action is Action.SKIPPED
    assert renderer.renders <= 1


def test_an_oversize_original_is_hashed_as_a_stream_and_recorded(
    stores: Any, photo: bytes, renderer: Any
) -> None:
    small = Policy.model_validate(
        {
            "standard": {"widths": [160], "formats": ["jpeg"]},
            "limits": Limits(max_input_bytes=10_000).model_dump(),
        }
    )
    stores.originals.put(KEY, photo)
    service = PrecomputeService(
        stores.originals, stores.derivatives, policy=small, renderer=renderer
    )

    outcome = service.created(KEY)

    assert outcome.action is Action.FAILED
    assert outcome.version == content_version(photo)
    assert outcome.manifest is not None
    assert outcome.manifest.failure is not None
    assert f"{len(photo):,} bytes" in outcome.manifest.failure
    assert "at most 10,000" in outcome.manifest.failure
    assert outcome.manifest.source_bytes == len(photo)
    assert renderer.renders == 0
    assert stores.listing() == [parse_source_key(KEY).manifest_key(content_version(photo))]
    assert service.created(KEY).action is Action.SKIPPED


def test_an_original_too_large_to_hash_is_rejected_without_a_trace_in_the_store(
    stores: Any, photo: bytes
) -> None:
    small = Policy.model_validate(
        {"standard": {"widths": [160], "formats": ["jpeg"]}, "limits": {"max_input_bytes": 1000}}
    )
    stores.originals.put(KEY, photo)
    service = PrecomputeService(
        stores.originals, stores.derivatives, policy=small, max_hash_bytes=5000
    )
    outcome = service.created(KEY)
    assert outcome.action is Action.REJECTED
    assert outcome.reason is not None
    assert "at most 1,000" in outcome.reason
    assert stores.listing() == []


def test_stream_version_is_content_version() -> None:
    data = bytes(range(256)) * 9000
    chunks = iter([data[:1000], data[1000:500_000], data[500_000:]])
    assert stream_version(chunks) == (content_version(data), len(data))


@pytest.mark.parametrize(
    "key",
    ["photos/acme/x.jpg", "img/Acme/x.jpg", "img/acme", "img/acme/../x.jpg", "raw/acme/x.jpg"],
)
def test_a_key_outside_the_layout_is_rejected_and_nothing_is_written(
    key: str, photo: bytes, policy: Policy, renderer: Any
) -> None:
    originals, derivatives = MemoryStore(), MemoryStore()
    originals.put(key, photo)
    service = PrecomputeService(originals, derivatives, policy=policy, renderer=renderer)
    outcome = service.created(key)
    assert outcome.action is Action.REJECTED
    assert outcome.reason is not None
    assert "allowed" in outcome.reason or "layout" in outcome.reason
    assert list(derivatives.list()) == []
    assert renderer.renders == 0


def test_a_create_for_an_original_that_is_gone_writes_nothing(
    stores: Any, policy: Policy, renderer: Any
) -> None:
    service = PrecomputeService(
        stores.originals, stores.derivatives, policy=policy, renderer=renderer
    )
    outcome = service.created(KEY)
    assert outcome.action is Action.GONE
    assert stores.listing() == []
    assert renderer.renders == 0


def test_the_source_version_id_is_recorded_for_the_fallback(
    versioned_stores: Any, policy: Policy, photo_factory: Any
) -> None:
    stores = versioned_stores
    stores.originals.put(KEY, photo_factory(1))
    first_version_id = stores.originals.head(KEY).version_id
    stores.originals.put(KEY, photo_factory(2))
    service = PrecomputeService(stores.originals, stores.derivatives, policy=policy)

    # The event of the first upload arrives after the second: it renders exactly its version.
    outcome = service.created(KEY, version_id=first_version_id)

    assert outcome.action is Action.RENDERED
    assert outcome.version == content_version(photo_factory(1))
    assert outcome.manifest is not None
    assert outcome.manifest.source_version_id == first_version_id
    assert first_version_id


RACE_POLICY = Policy.model_validate(
    {"standard": {"widths": [160, 320], "formats": ["webp", "jpeg"]}}
)
"""Formats Pillow re-encodes everywhere, so a second renderer can make other bytes."""


def _recode(data: bytes) -> bytes:
    image = decode(data)
    out = io.BytesIO()
    image.save(out, image.format, quality=35)
    return out.getvalue()


class _Paused(PixelRenderer):
    """Renders, then waits until `go` is set; `recode` makes other bytes of the same geometry
    (what another encoder effort or libvips build does)."""

    def __init__(self, *, recode: bool) -> None:
        self.recode = recode
        self.rendered = threading.Event()
        self.go = threading.Event()

    def render(self, *args: Any, **kwargs: Any) -> Any:
        out = super().render(*args, **kwargs)
        self.rendered.set()
        assert self.go.wait(60)
        return [dataclasses.replace(r, data=_recode(r.data)) for r in out] if self.recode else out


def test_a_race_loser_with_other_bytes_keeps_the_stored_objects_the_manifest_describes(
    stores: Any, photo: bytes
) -> None:
    stores.originals.put(KEY, photo)
    slow = _Paused(recode=True)
    loser = PrecomputeService(
        stores.originals, stores.derivatives, policy=RACE_POLICY, renderer=slow
    )
    outcomes: list[Any] = []
    thread = threading.Thread(target=lambda: outcomes.append(loser.created(KEY)))
    thread.start()
    assert slow.rendered.wait(60)  # the loser has passed the manifest check and rendered

    winner = PrecomputeService(stores.originals, stores.derivatives, policy=RACE_POLICY)
    won = winner.created(KEY)
    assert won.action is Action.RENDERED
    assert won.manifest is not None
    first = {r.key: stores.derivatives.get(r.key).data for r in won.manifest.variants}
    slow.go.set()
    thread.join(60)

    assert [o.action for o in outcomes] == [Action.SKIPPED]
    assert outcomes[0].bytes_written == 0  # every derivative was there: none overwritten
    manifest = stores.manifest(parse_source_key(KEY), content_version(photo))
    assert manifest == won.manifest
    for record in manifest.variants:
        data = stores.derivatives.get(record.key).data
        assert data == first[record.key]
        assert _recode(data) != data  # the loser's bytes really were other bytes
        assert record.bytes == len(data)


def test_racing_writers_with_other_bytes_record_what_is_stored(stores: Any, photo: bytes) -> None:
    """Both write at once, so each key is won by either: the manifest matches the store."""
    stores.originals.put(KEY, photo)
    barrier = threading.Barrier(2, timeout=60)

    class Lockstep(PixelRenderer):
        def __init__(self, recode: bool) -> None:
            self.recode = recode

        def render(self, *args: Any, **kwargs: Any) -> Any:
            out = super().render(*args, **kwargs)
            barrier.wait()
            return (
                [dataclasses.replace(r, data=_recode(r.data)) for r in out] if self.recode else out
            )

    services = [
        PrecomputeService(
            stores.originals, stores.derivatives, policy=RACE_POLICY, renderer=Lockstep(recode)
        )
        for recode in (False, True)
    ]
    outcomes: list[Any] = [None, None]
    threads = [
        threading.Thread(target=lambda i=i: outcomes.__setitem__(i, services[i].created(KEY)))
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert sorted(o.action for o in outcomes) == [Action.RENDERED, Action.SKIPPED]
    manifest = stores.manifest(parse_source_key(KEY), content_version(photo))
    for record in manifest.variants:
        data = stores.derivatives.get(record.key).data
        assert record.bytes == len(data)
        assert decode(data).size == (record.width, record.height)
    # Every byte was written once: the two workers' counts add up to what is stored.
    stored = sum(len(stores.derivatives.get(r.key).data) for r in manifest.variants)
    assert sum(o.bytes_written for o in outcomes) == stored + len(manifest.to_json())


def test_a_corrupt_manifest_is_rendered_again_and_overwritten(
    stores: Any, policy: Policy, photo: bytes, renderer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    stores.originals.put(KEY, photo)
    image, version = parse_source_key(KEY), content_version(photo)
    stores.derivatives.put(image.manifest_key(version), b'{"schema_version": 1, "tenant": "ac')
    service = PrecomputeService(
        stores.originals, stores.derivatives, policy=policy, renderer=renderer
    )

    outcome = service.created(KEY)

    assert outcome.action is Action.RENDERED
    assert renderer.renders == 1
    assert stores.manifest(image, version) == outcome.manifest
    warnings = [
        line for line in _log_lines(capsys.readouterr().out) if line.get("level") == "warning"
    ]
    assert [w["event"] for w in warnings] == ["manifest_invalid_rewriting"]
    assert "not a manifest" in warnings[0]["reason"]
    assert service.created(KEY).action is Action.SKIPPED  # and it is settled now
    assert renderer.renders == 1


def test_each_stored_variant_logs_its_own_render_time(
    policy: Policy, photo: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    originals, derivatives = MemoryStore(), MemoryStore()
    originals.put(KEY, photo)
    outcome = PrecomputeService(originals, derivatives, policy=policy).created(KEY)
    assert outcome.manifest is not None

    stored = [
        line for line in _log_lines(capsys.readouterr().out) if line["event"] == "variant_stored"
    ]

    assert sorted(line["variant"] for line in stored) == sorted(
        v.variant for v in outcome.manifest.variants
    )
    for line in stored:
        assert line["render_ms"] > 0, line
        assert line["store_ms"] >= 0
    # Per-variant times share the set's time: together no more than the whole render.
    assert sum(line["render_ms"] for line in stored) <= outcome.render_ms


def _log_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_an_original_taller_than_webp_and_avif_can_be_gets_its_whole_set(
    policy: Policy, renderer: Any
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 20_000), (200, 40, 90)).save(buffer, "PNG")
    data = buffer.getvalue()
    originals, derivatives = MemoryStore(), MemoryStore()
    originals.put(KEY, data)
    service = PrecomputeService(originals, derivatives, policy=policy, renderer=renderer)

    outcome = service.created(KEY)

    assert outcome.action is Action.RENDERED, outcome
    manifest = outcome.manifest
    assert manifest is not None
    assert manifest.status == "complete"
    sizes = {(v.fmt, v.width, v.height) for v in manifest.variants}
    assert sizes == {("avif", 32, 16_384), ("webp", 32, 16_383), ("jpeg", 40, 20_000)}
    for record in manifest.variants:
        image = decode(derivatives.get(record.key).data)
        assert image.size == (record.width, record.height)
