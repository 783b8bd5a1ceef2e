"""The fallback's bounds: canonical paths only, honest `stored`, the deadline over every stage,
and the response cap counted in base64 (R12, R13)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import structlog
from tests.edge.conftest import Deployment, LambdaContext, body_bytes, function_url_event, jpeg

from imgcdn_edge.config import DEFAULT_MAX_RESPONSE_BYTES, LAMBDA_RESPONSE_LIMIT, FallbackLimits
from imgcdn_edge.service import Deadline, FallbackService, base64_size
from imgcore import ImageRef, Policy, TransformParams
from imgcore.pixels import Rendered
from imgcore.pixels import transform as real_transform

ACME = ImageRef("acme", "red shoe.jpg")
VARIANT = "w320-q80.webp"
RED = (220, 20, 20)


def _get(d: Deployment, path: str, context: Any = None) -> dict[str, Any]:
    return d.handler(function_url_event("get.json", path), context or LambdaContext())


def _assert_error(response: dict[str, Any], status: int) -> str:
    assert response["statusCode"] == status, response
    expected = f"public, max-age={Policy().ttl.client_error}" if status < 500 else "no-store"
    assert response["headers"]["Cache-Control"] == expected
    assert response["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    body: str = response["body"]
    assert body.endswith("\n")
    assert body.count("\n") == 1
    return body


class Recording:
    """Wraps a store: records the keys read and written, optionally slowly."""

    def __init__(self, inner: Any, *, get_delay: float = 0.0, put_delay: float = 0.0) -> None:
        self.inner = inner
        self.get_delay = get_delay
        self.put_delay = put_delay
        self.gets: list[str] = []
        self.puts: list[str] = []

    def get(self, key: str, **kwargs: Any) -> Any:
        self.gets.append(key)
        time.sleep(self.get_delay)
        return self.inner.get(key, **kwargs)

    def put(self, key: str, data: bytes, **kwargs: Any) -> bool:
        self.puts.append(key)
        time.sleep(self.put_delay)
        written: bool = self.inner.put(key, data, **kwargs)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# -- 1. only the canonical rewritten URI --------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "/img/acme/%72ed%20shoe.jpg/{v}/w320-q80.webp",  # an unreserved letter escaped
        "/img/acme/red shoe.jpg/{v}/w320-q80.webp",  # a raw space
        "/img/acme/red%20shoe%2Ejpg/{v}/w320-q80.webp",  # '.' escaped
        "/img/%61cme/red%20shoe.jpg/{v}/w320-q80.webp",  # the tenant escaped
        "/img/acme/red%20shoe.jpg/{v}/w320-q80%2Ewebp",  # the variant escaped
        "/img/acme/caf%c3%a9.jpg/{v}/w320-q80.webp",  # lower-case hex
        "/img/acme/caf\u00e9.jpg/{v}/w320-q80.webp",  # raw non-ASCII
    ],
)
def test_a_non_canonical_spelling_of_a_valid_uri_is_400(
    deployment: Deployment, spelling: str
) -> None:
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    deployment.upload(ImageRef("acme", "caf\u00e9.jpg"), jpeg(400, 300, RED))
    originals = Recording(deployment.originals)
    deployment.rebuild(originals=originals)
    path = spelling.format(v=version)
    body = _assert_error(_get(deployment, path), 400)
    assert "must be the canonical rewritten URI" in body
    assert "allowed" in body
    assert originals.gets == []  # refused before anything is read
    [emf] = deployment.metric_lines()
    assert (emf["tenant"], emf["variant"], emf["status"]) == ("-", "-", 400)


def test_the_canonical_spelling_renders(deployment: Deployment) -> None:
    image = ImageRef("acme", "caf\u00e9.jpg")
    version, _ = deployment.upload(image, jpeg(400, 300, RED))
    path = f"/img/acme/caf%C3%A9.jpg/{version}/{VARIANT}"
    assert _get(deployment, path)["statusCode"] == 200


# -- 2. `stored` says what happened ---------------------------------------------------------


def test_stored_is_false_when_the_derivative_was_already_there(deployment: Deployment) -> None:
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    uri = ACME.public_path(version) + "/" + VARIANT
    with structlog.testing.capture_logs() as logs:
        first = _get(deployment, uri)
        second = _get(deployment, uri)  # e.g. precompute wrote it between the miss and now
    assert first["statusCode"] == second["statusCode"] == 200
    answered = [e["stored"] for e in logs if e["event"] == "fallback_answered"]
    assert answered == [True, False]
    assert any(e["event"] == "store_skipped" for e in logs)


# -- 3. the deadline bounds the read and the write too -------------------------------------------


def _warm_up(deployment: Deployment, version: str) -> None:
    # libvips' first load is not what these tests time.
    assert _get(deployment, ACME.public_path(version) + "/w160-q60.jpeg")["statusCode"] == 200


def test_a_write_past_the_deadline_still_answers_the_image_on_time(
    deployment: Deployment,
) -> None:
    # The image is ready and under the cap: an unfinished write only means the next miss
    # renders again, so the margin is spent answering it, not on a 503.
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    _warm_up(deployment, version)
    slow = Recording(deployment.derivatives, put_delay=3)
    deployment.rebuild(derivatives=slow, limits=FallbackLimits(deadline_margin_ms=1000))
    started = time.monotonic()
    response = _get(deployment, ACME.public_path(version) + "/" + VARIANT, LambdaContext(2000))
    elapsed = time.monotonic() - started
    assert response["statusCode"] == 200, response.get("body")
    assert body_bytes(response)[:4] == b"RIFF"  # the WebP itself
    assert slow.puts == [f"img/acme/red shoe.jpg/{version}/{VARIANT}"]
    assert elapsed < 2.0  # at the deadline (1 s), not when the write ended (3 s)


def test_a_read_past_the_deadline_is_503_no_store(deployment: Deployment) -> None:
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    slow = Recording(deployment.originals, get_delay=3)
    deployment.rebuild(originals=slow, limits=FallbackLimits(deadline_margin_ms=1000))
    started = time.monotonic()
    response = _get(deployment, ACME.public_path(version) + "/" + VARIANT, LambdaContext(1500))
    elapsed = time.monotonic() - started
    body = _assert_error(response, 503)
    assert "reading the original did not finish" in body
    assert elapsed < 1.5


def test_no_write_starts_once_the_deadline_has_passed(deployment: Deployment) -> None:
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    now = [0.0]

    def transform_then_time_runs_out(data: bytes, params: TransformParams, p: Policy) -> Rendered:
        rendered = real_transform(data, params, p)
        now[0] = 11.0  # the transform ended after the deadline's instant (10)
        return rendered

    derivatives = Recording(deployment.derivatives)
    service = FallbackService(
        deployment.originals, derivatives, transform=transform_then_time_runs_out
    )
    answer = service.render(
        ACME.public_path(version) + "/" + VARIANT, deadline=Deadline(10.0, lambda: now[0])
    )
    # The image is ready: it is answered within the margin, and no write starts late.
    assert answer.status == 200
    assert answer.body[:4] == b"RIFF"
    assert derivatives.puts == []
    assert not answer.stored


# -- 4. the response cap counts the base64 body -------------------------------------------------


def _sized(size: int) -> Any:
    """A transform whose output is `size` bytes of a real WebP header (the size is the point)."""

    def transform(data: bytes, params: TransformParams, policy: Policy) -> Rendered:
        rendered = real_transform(data, params, policy)
        payload = rendered.data + b"\0" * (size - len(rendered.data))
        return Rendered(payload, rendered.params, rendered.width, rendered.height, rendered.ms)

    return transform


def test_an_output_under_the_cap_raw_but_over_it_as_base64_is_redirected(
    deployment: Deployment,
) -> None:
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    uri = ACME.public_path(version) + "/" + VARIANT
    cap = DEFAULT_MAX_RESPONSE_BYTES
    largest_direct = cap // 4 * 3  # its base64 form is exactly the cap
    assert base64_size(largest_direct) == cap

    deployment.rebuild(transform=_sized(largest_direct))
    direct = _get(deployment, uri)
    assert direct["statusCode"] == 200
    assert len(body_bytes(direct)) == largest_direct
    assert len(direct["body"]) == cap
    # The whole document Lambda returns, JSON and headers around the body, fits its limit.
    assert len(json.dumps(direct).encode()) < LAMBDA_RESPONSE_LIMIT

    # One byte more: still far under the cap raw (4.3 MB < 5.75 MB), over it as base64.
    deployment.derivatives.delete(f"img/acme/red shoe.jpg/{version}/{VARIANT}")
    deployment.rebuild(transform=_sized(largest_direct + 1))
    assert largest_direct + 1 <= cap < base64_size(largest_direct + 1)
    redirected = _get(deployment, uri)
    assert redirected["statusCode"] == 302
    assert redirected["headers"]["Cache-Control"] == "private, no-store"
    stored = deployment.derivatives.get(f"img/acme/red shoe.jpg/{version}/{VARIANT}")
    assert len(stored.data) == largest_direct + 1
    assert len(json.dumps(redirected).encode()) < LAMBDA_RESPONSE_LIMIT
