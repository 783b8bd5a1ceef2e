"""Shared set-up for the precompute tests: photos, a small policy, stores, events, a spy."""

from __future__ import annotations

import copy
import functools
import io
import json
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
import structlog
from moto import mock_aws
from PIL import Image

from imgcdn_aws.logs import configure_logging
from imgcdn_aws.s3 import S3Store
from imgcdn_precompute.service import PixelRenderer
from imgcore.keys import ImageRef
from imgcore.manifest import Manifest
from imgcore.params import TransformParams
from imgcore.policy import OutputFormat, Policy, StandardSet
from imgcore.storage import LocalStore, MemoryStore, ObjectStore

ORIGINALS = "imgcdn-originals"
DERIVATIVES = "imgcdn-derivatives"

SMALL_POLICY = Policy(
    standard=StandardSet(
        widths=(160, 320), formats=(OutputFormat.AVIF, OutputFormat.WEBP, OutputFormat.JPEG)
    )
)
"""Six variants (every standard format, two widths): the full set costs seconds, this does not."""


@functools.cache
def make_photo(seed: int = 1, size: tuple[int, int] = (1600, 1200), fmt: str = "JPEG") -> bytes:
    """A photo-like image: smooth gradients (sky, light) plus sensor-like noise, deterministic."""
    width, height = size
    rng = random.Random(seed)  # noqa: S311 - test pixels, not secrets
    horizontal = Image.linear_gradient("L").resize((width, height)).rotate(90)
    vertical = Image.linear_gradient("L").resize((width, height))
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    red = Image.blend(horizontal, noise, 0.15)
    green = Image.blend(vertical, noise, 0.1)
    blue = Image.blend(Image.blend(horizontal, vertical, 0.5), noise, 0.2)
    image = Image.merge("RGB", (red, green, blue))
    out = io.BytesIO()
    image.save(out, fmt, quality=90) if fmt == "JPEG" else image.save(out, fmt)
    return out.getvalue()


@pytest.fixture(autouse=True)
def json_logs() -> Iterator[None]:
    """Logs as in Lambda: JSON lines on stdout (also fast: no rich tracebacks)."""
    configure_logging(json=True)
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def photo() -> bytes:
    """A 1600x1200 photo-like JPEG."""
    return make_photo()


@pytest.fixture(scope="session")
def photo_factory() -> Callable[..., bytes]:
    """`make_photo(seed, size, fmt)`: different seeds are different bytes (new versions)."""
    return make_photo


@pytest.fixture
def policy() -> Policy:
    """The small policy most tests render with."""
    return SMALL_POLICY


class CountingRenderer(PixelRenderer):
    """The real renderer, counting how often the standard set is rendered (thread-safe)."""

    def __init__(self) -> None:
        self.renders = 0
        self._lock = threading.Lock()

    def render(self, data: bytes, params: Sequence[TransformParams], policy: Policy) -> list[Any]:
        with self._lock:
            self.renders += 1
        return super().render(data, params, policy)


@pytest.fixture
def renderer() -> CountingRenderer:
    return CountingRenderer()


@dataclass
class Stores:
    """An originals store and a derivatives store of one kind."""

    kind: str
    originals: ObjectStore
    derivatives: ObjectStore
    versioned: bool = False

    def manifest(self, image: ImageRef, version: str) -> Manifest:
        return Manifest.model_validate_json(self.derivatives.get(image.manifest_key(version)).data)

    def listing(self, prefix: str = "") -> list[str]:
        return [i.key for i in self.derivatives.list(prefix)]


def _moto_stores(versioned: bool) -> Iterator[Stores]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in (ORIGINALS, DERIVATIVES):
            client.create_bucket(Bucket=bucket)
        if versioned:
            client.put_bucket_versioning(
                Bucket=ORIGINALS, VersioningConfiguration={"Status": "Enabled"}
            )
        yield Stores(
            "s3",
            S3Store(ORIGINALS, client=client),
            S3Store(DERIVATIVES, client=client),
            versioned,
        )


def open_stores(kind: str, tmp_path: Path, *, versioned: bool = False) -> Iterator[Stores]:
    """Stores of one kind: `memory`, `local` (crash-safe directory) or `s3` (moto in-process)."""
    if kind == "memory":
        yield Stores(kind, MemoryStore(versioned=versioned), MemoryStore(), versioned)
    elif kind == "local":
        yield Stores(
            kind,
            LocalStore(tmp_path / "originals", versioned=versioned),
            LocalStore(tmp_path / "derivatives"),
            versioned,
        )
    else:
        yield from _moto_stores(versioned)


@pytest.fixture(params=["memory", "local", "s3"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Unversioned originals over each store implementation."""
    yield from open_stores(request.param, tmp_path)


@pytest.fixture(params=["memory", "local", "s3"])
def versioned_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Versioned originals over each store implementation."""
    yield from open_stores(request.param, tmp_path, versioned=True)


# --- events ----------------------------------------------------------------------------------

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"


class EventFactory:
    """Real-shaped events: the fixtures of tests/fixtures/events, and records built like them."""

    originals = ORIGINALS

    def load(self, name: str) -> dict[str, Any]:
        """A fixture event from tests/fixtures/events."""
        return json.loads((EVENTS / name).read_text("utf-8"))

    def keys(self) -> dict[str, str]:
        """Raw (encoded as S3 sends it) -> decoded keys used by the fixtures."""
        return json.loads((EVENTS / "keys.json").read_text("utf-8"))

    def s3_record(
        self, key: str, name: str = "ObjectCreated:Put", *, version_id: str | None = None
    ) -> dict[str, Any]:
        """A real-shaped S3 record about `key` (decoded; encoded here the way S3 does)."""
        record = copy.deepcopy(self.load("s3-put-encoded-key.json")["Records"][0])
        record["eventName"] = name
        obj = record["s3"]["object"]
        obj["key"] = quote_plus(key, safe="/")
        if version_id is not None:
            obj["versionId"] = version_id
        if not name.startswith("ObjectCreated"):
            obj.pop("size", None)
            obj.pop("eTag", None)
        return record

    def notification(self, *records: dict[str, Any]) -> dict[str, Any]:
        """A bare S3 notification event."""
        return {"Records": list(records)}

    def sqs(
        self, *bodies: dict[str, Any] | str, ids: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """A real-shaped SQS batch whose messages carry `bodies` (notifications or raw text)."""
        template = self.load("sqs-batch-encoded-keys.json")["Records"][0]
        records = []
        for index, body in enumerate(bodies):
            record = copy.deepcopy(template)
            record["messageId"] = ids[index] if ids else f"msg-{index + 1}"
            record["body"] = body if isinstance(body, str) else json.dumps(body)
            records.append(record)
        return {"Records": records}

    def put(self, key: str, version_id: str | None = None) -> dict[str, Any]:
        """An SQS batch of one ObjectCreated:Put message."""
        return self.sqs(self.notification(self.s3_record(key, version_id=version_id)))


@pytest.fixture(scope="session")
def events() -> EventFactory:
    return EventFactory()
