"""Fixtures of the edge tests: the generated Function and its engines; moto S3 and the fallback."""

from __future__ import annotations

import base64
import copy
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from PIL import Image
from tests.conftest import FIXTURES
from tests.edge.engines import NodeSession

from imgcdn_aws.emf import Metrics
from imgcdn_aws.s3 import S3Store
from imgcdn_edge.config import FallbackLimits
from imgcdn_edge.function import render_function
from imgcdn_edge.handler import FallbackHandler, build_handler
from imgcdn_edge.service import Transform
from imgcore import DEFAULT_POLICY, ImageRef, Policy, content_version
from imgcore.manifest import Manifest

ORIGINALS = "imgcdn-test-originals"
DERIVATIVES = "imgcdn-test-derivatives"
EVENTS = FIXTURES / "events" / "function_url"


@pytest.fixture(scope="session")
def function_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Function generated from the default policy, as it would be published."""
    path = tmp_path_factory.mktemp("function") / "viewer_request.js"
    path.write_text(render_function(), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def node_session(function_file: Path) -> Iterator[NodeSession]:
    """One node process running the Function, for property tests."""
    with NodeSession(function_file) as session:
        yield session


def jpeg(width: int, height: int, colour: tuple[int, int, int], quality: int = 90) -> bytes:
    """A flat-coloured JPEG."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=quality)
    return out.getvalue()


def function_url_event(
    name: str, path: str | None = None, method: str | None = None
) -> dict[str, Any]:
    """A recorded Function URL event (tests/fixtures/events/function_url), path/method replaced."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    event = copy.deepcopy(event)
    if path is not None:
        event["rawPath"] = path
        event["requestContext"]["http"]["path"] = path
    if method is not None:
        event["requestContext"]["http"]["method"] = method
    return event


class LambdaContext:
    """The parts of Lambda's context object the handler reads."""

    function_name = "imgcdn-edge-fallback"
    memory_limit_in_mb = 2048

    def __init__(self, remaining_ms: int = 30_000, request_id: str = "c6af9ac6-7b61-11e6") -> None:
        """A context with `remaining_ms` left in the invocation."""
        self.aws_request_id = request_id
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        """What Lambda reports."""
        return self._remaining_ms


def body_bytes(response: dict[str, Any]) -> bytes:
    """The body of a Function URL response."""
    body = response["body"]
    return base64.b64decode(body) if response["isBase64Encoded"] else body.encode()


@dataclass
class Deployment:
    """One fallback over moto S3: the client, both stores, the handler and its EMF lines."""

    client: Any
    originals: S3Store
    derivatives: S3Store
    emf: io.StringIO
    handler: FallbackHandler

    def rebuild(
        self,
        *,
        policy: Policy = DEFAULT_POLICY,
        limits: FallbackLimits | None = None,
        transform: Transform | None = None,
        originals: Any = None,
        derivatives: Any = None,
    ) -> FallbackHandler:
        """A handler over the same buckets with other settings or ports."""
        self.handler = build_handler(
            originals=originals or self.originals,
            derivatives=derivatives or self.derivatives,
            policy=policy,
            limits=limits,
            transform=transform,
            metrics=Metrics(self.emf),
        )
        return self.handler

    def upload(self, image: ImageRef, data: bytes) -> tuple[str, str]:
        """Put an original; returns (content version, S3 version id)."""
        response = self.client.put_object(Bucket=ORIGINALS, Key=image.source_key, Body=data)
        return content_version(data), response["VersionId"]

    def write_manifest(
        self, image: ImageRef, version: str, version_id: str | None, size: int = 1
    ) -> str:
        """Write the manifest precompute would have written for one version; returns its key."""
        manifest = Manifest(
            tenant=image.tenant,
            image_id=image.image_id,
            content_class=image.content_class,
            version=version,
            status="complete",
            source_key=image.source_key,
            source_version_id=version_id,
            source_bytes=size,
            created_at=datetime.now(UTC),
        )
        key = image.manifest_key(version)
        self.derivatives.put(key, manifest.to_json(), content_type="application/json")
        return key

    def metric_lines(self) -> list[dict[str, Any]]:
        """The EMF documents written so far."""
        return [json.loads(line) for line in self.emf.getvalue().splitlines()]


@pytest.fixture
def deployment() -> Iterator[Deployment]:
    """A versioned originals bucket and a derivatives bucket in moto, and a fallback over them."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in (ORIGINALS, DERIVATIVES):
            client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(
            Bucket=ORIGINALS, VersioningConfiguration={"Status": "Enabled"}
        )
        originals = S3Store(ORIGINALS, client=client)
        derivatives = S3Store(DERIVATIVES, client=client)
        emf = io.StringIO()
        handler = build_handler(originals=originals, derivatives=derivatives, metrics=Metrics(emf))
        yield Deployment(client, originals, derivatives, emf, handler)
        # A deadline test abandons its worker (a 3 s write, say); it must land in this test's
        # buckets, not in the next test's moto state under the same keys.
        for worker in threading.enumerate():
            if worker.name == "imgcdn-bounded":
                worker.join(timeout=30)
