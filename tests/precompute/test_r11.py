"""R11 across packages: a derivative stored by precompute carries exactly the `Content-Type` and
`Cache-Control` the fallback answers with for the same URI, so the second request is an S3 read
that looks the same as the first answer."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest

from imgcdn_aws.emf import Metrics
from imgcdn_edge.handler import build_handler
from imgcdn_precompute.service import Action, PrecomputeService
from imgcore.keys import ContentClass, source_key
from imgcore.policy import Policy
from imgcore.storage import MemoryStore

FUNCTION_URL_EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events" / "function_url"


def _function_url_get(path: str) -> dict[str, Any]:
    event: dict[str, Any] = copy.deepcopy(
        json.loads((FUNCTION_URL_EVENTS / "get.json").read_text("utf-8"))
    )
    event["rawPath"] = path
    event["requestContext"]["http"]["path"] = path
    return event


@pytest.mark.parametrize("content_class", [ContentClass.STANDARD, ContentClass.TAKEDOWN])
def test_the_stored_object_and_the_fallback_answer_carry_the_same_headers(
    content_class: ContentClass, policy: Policy, photo: bytes
) -> None:
    originals, derivatives = MemoryStore(versioned=True), MemoryStore()
    key = source_key("acme", "summer sale/red shoe+1.jpg", content_class)
    originals.put(key, photo, content_type="image/jpeg")
    outcome = PrecomputeService(originals, derivatives, policy=policy).created(key)
    assert outcome.action is Action.RENDERED
    assert outcome.manifest is not None
    assert outcome.version is not None
    handler = build_handler(
        originals=originals,
        derivatives=derivatives,
        policy=policy,
        metrics=Metrics(io.StringIO()),
    )

    for record in outcome.manifest.variants:
        stored = derivatives.head(record.key)
        assert stored is not None
        derivatives.delete(record.key)  # the primary misses: CloudFront asks the fallback
        uri = outcome.manifest.image.public_path(outcome.version) + "/" + record.variant

        response = handler(_function_url_get(uri))

        assert response["statusCode"] == 200, response
        assert response["headers"]["Content-Type"] == stored.content_type, record.variant
        assert response["headers"]["Cache-Control"] == stored.cache_control, record.variant
        rewritten = derivatives.head(record.key)  # what the fallback stored back
        assert rewritten is not None
        assert (rewritten.content_type, rewritten.cache_control) == (
            stored.content_type,
            stored.cache_control,
        )
    expected = "public, max-age=60" if content_class is ContentClass.TAKEDOWN else "immutable"
    assert expected in (stored.cache_control or "")
