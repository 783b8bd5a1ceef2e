"""The fallback Lambda over moto S3, driven by recorded Function URL events (R7, R11-R15)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import pyvips
import structlog
from PIL import Image
from tests.edge.conftest import (
    DERIVATIVES,
    Deployment,
    LambdaContext,
    body_bytes,
    function_url_event,
    jpeg,
)
from tests.edge.engines import run_node

from imgcdn_edge.config import FallbackLimits
from imgcdn_edge.handler import parse_event
from imgcore import (
    ContentClass,
    ImageRef,
    ImgcoreError,
    Policy,
    TransformParams,
    parse_derivative_uri,
    rewrite,
)
from imgcore.pixels import Rendered
from imgcore.policy import Limits
from imgcore.storage import StorageFault

ACME = ImageRef("acme", "red shoe.jpg")
RED = (220, 20, 20)
BLUE = (20, 20, 220)


def _uri(image: ImageRef, version: str, variant: str) -> str:
    return image.public_path(version) + "/" + variant


def _get(d: Deployment, path: str, context: Any = None, method: str = "GET") -> dict[str, Any]:
    event = function_url_event("get.json", path, method)
    return d.handler(event, context or LambdaContext())


def _decode(data: bytes) -> Any:
    return pyvips.Image.new_from_buffer(data, "")


def _centre(data: bytes) -> list[int]:
    image = _decode(data)
    return [round(v) for v in image.getpoint(image.width // 2, image.height // 2)[:3]]


def _close(colour: list[int], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(colour, expected, strict=True))


def _assert_error(response: dict[str, Any], status: int) -> str:
    assert response["statusCode"] == status, response
    headers = response["headers"]
    expected = f"public, max-age={Policy().ttl.client_error}" if status < 500 else "no-store"
    assert headers["Cache-Control"] == expected
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response["isBase64Encoded"] is False
    body: str = response["body"]
    assert body.endswith("\n")
    assert body.count("\n") == 1
    return body


# -- the recorded events ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["get.json", "head.json", "post.json"])
def test_recorded_events_parse(name: str) -> None:
    event = function_url_event(name)
    request = parse_event(event)
    assert request.method == event["requestContext"]["http"]["method"]
    assert request.path == event["rawPath"] == event["requestContext"]["http"]["path"]
    assert request.request_id == event["requestContext"]["requestId"]
    assert event["version"] == "2.0"


# -- 200 --------------------------------------------------------------------------------------


def test_get_renders_stores_and_answers_with_the_same_headers(deployment: Deployment) -> None:
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    uri = _uri(ACME, version, "w320-q80.webp")
    assert uri == f"/img/acme/red%20shoe.jpg/{version}/w320-q80.webp"
    context = LambdaContext(request_id="req-200")
    with structlog.testing.capture_logs([structlog.contextvars.merge_contextvars]) as logs:
        response = _get(deployment, uri, context)

    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is True
    data = body_bytes(response)
    image = _decode(data)
    assert (image.get("vips-loader"), image.width, image.height) == ("webpload_buffer", 320, 240)
    assert _close(_centre(data), RED)
    headers = response["headers"]
    assert headers["Content-Type"] == "image/webp"
    assert (
        headers["Cache-Control"] == "public, max-age=31536000, immutable, "
        "stale-while-revalidate=86400, stale-if-error=604800"
    )
    assert [t.split(";")[0] for t in headers["Server-Timing"].split(", ")] == [
        "fetch",
        "transform",
        "store",
    ]

    # R11: the stored object is the answer, with the same Content-Type and Cache-Control.
    stored = deployment.client.get_object(
        Bucket=DERIVATIVES, Key=f"img/acme/red shoe.jpg/{version}/w320-q80.webp"
    )
    assert stored["Body"].read() == data
    assert stored["ContentType"] == headers["Content-Type"]
    assert stored["CacheControl"] == headers["Cache-Control"]

    [line] = [entry for entry in logs if entry["event"] == "fallback_answered"]
    assert line["request_id"] == "req-200"
    assert line["key"] == f"img/acme/red shoe.jpg/{version}/w320-q80.webp"
    assert (line["status"], line["tenant"], line["variant"], line["stored"]) == (
        200,
        "acme",
        "w320-q80.webp",
        True,
    )
    [emf] = deployment.metric_lines()
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "imgcdn"
    assert emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["tenant", "variant"]]
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {"FallbackRenders", "FallbackErrors"}
    assert (emf["tenant"], emf["variant"], emf["FallbackRenders"], emf["FallbackErrors"]) == (
        "acme",
        "w320-q80.webp",
        1,
        0,
    )
    assert emf["request_id"] == "req-200"


def test_head_answers_headers_only_and_still_stores(deployment: Deployment) -> None:
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    event = function_url_event("head.json", _uri(ACME, version, "w160-q60.avif"))
    response = deployment.handler(event, LambdaContext())
    assert response["statusCode"] == 200
    assert response["body"] == ""
    assert response["headers"]["Content-Type"] == "image/avif"
    stored = deployment.derivatives.get(f"img/acme/red shoe.jpg/{version}/w160-q60.avif")
    assert _decode(stored.data).width == 160


def test_takedown_content_is_short_lived_in_the_answer_and_the_object(
    deployment: Deployment,
) -> None:
    image = ImageRef("acme", "user/upload 1.png", ContentClass.TAKEDOWN)
    out = io.BytesIO()
    Image.new("RGBA", (200, 100), (0, 128, 0, 128)).save(out, "PNG")
    version, _ = deployment.upload(image, out.getvalue())
    response = _get(deployment, _uri(image, version, "w160.png"))
    assert response["statusCode"] == 200
    assert response["headers"]["Cache-Control"] == "public, max-age=60"
    rendered = _decode(body_bytes(response))
    assert (rendered.width, rendered.height, rendered.bands) == (160, 80, 4)  # alpha kept
    stored = deployment.derivatives.head(f"ugc/acme/user/upload 1.png/{version}/w160.png")
    assert stored is not None
    assert stored.cache_control == "public, max-age=60"


def test_the_default_handler_reads_its_configuration_from_the_environment(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgcdn_edge import handler as module

    monkeypatch.setenv("IMGCDN_ORIGINALS_BUCKET", "imgcdn-test-originals")
    monkeypatch.setenv("IMGCDN_DERIVATIVES_BUCKET", DERIVATIVES)
    monkeypatch.setattr(structlog, "configure", lambda **_: None)  # keep the test's logging
    module.default_handler.cache_clear()
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    try:
        event = function_url_event("get.json", _uri(ACME, version, "w320-q80.jpeg"))
        response = module.handler(event, LambdaContext())
    finally:
        module.default_handler.cache_clear()
    assert response["statusCode"] == 200
    assert _decode(body_bytes(response)).get("vips-loader") == "jpegload_buffer"


# -- 302: over the response cap (R12) ----------------------------------------------------------


def _noise_png(width: int, height: int) -> bytes:
    image = pyvips.Image.gaussnoise(width, height, sigma=80).cast("uchar")
    return bytes(image.bandjoin([image, image]).copy(interpretation="srgb").pngsave_buffer())


def test_an_output_over_the_response_cap_is_stored_and_redirected(
    deployment: Deployment, function_file: Path
) -> None:
    source = _noise_png(700, 500)
    version, _ = deployment.upload(ACME, source)
    deployment.rebuild(limits=FallbackLimits(max_response_bytes=64 * 1024))
    uri = _uri(ACME, version, "w640.png")
    response = _get(deployment, uri)

    assert response["statusCode"] == 302
    headers = response["headers"]
    assert headers["Cache-Control"] == "private, no-store"
    # The viewer's own URL (a signed tenant's signature included), resolved by the client.
    assert headers["Location"] == "#"
    viewer_url = f"https://img.example/img/acme/red%20shoe.jpg/{version}?w=600&fmt=png&Expires=9"
    assert urljoin(viewer_url, headers["Location"]) == viewer_url
    stored = deployment.derivatives.get(f"img/acme/red shoe.jpg/{version}/w640.png")
    assert len(stored.data) * 4 / 3 > 64 * 1024  # it really was over the cap
    assert (stored.info.content_type, stored.info.cache_control) == (
        "image/png",
        "public, max-age=31536000, immutable, stale-while-revalidate=86400, stale-if-error=604800",
    )
    assert _decode(stored.data).width == 640

    # The viewer follows the redirect: the Function (and its Python twin) rewrite the same URL
    # to this very URI again, so the next origin fetch reads the stored object.
    parts = urlsplit(viewer_url)
    cases = [{"path": parts.path, "query": parts.query, "accept": a} for a in (None, "*/*")]
    assert [r["uri"] for r in run_node(function_file, cases)] == [uri, uri]
    assert {rewrite(parts.path, parts.query, c["accept"]).uri for c in cases} == {uri}
    [emf] = deployment.metric_lines()
    assert (emf["FallbackRenders"], emf["FallbackErrors"], emf["status"]) == (1, 0, 302)


def test_a_source_larger_than_the_response_cap_still_renders_small_outputs(
    deployment: Deployment,
) -> None:
    source = _noise_png(700, 500)
    cap = 64 * 1024
    assert len(source) > cap
    version, _ = deployment.upload(ACME, source)
    deployment.rebuild(limits=FallbackLimits(max_response_bytes=cap))
    response = _get(deployment, _uri(ACME, version, "w160-q40.jpeg"))
    assert response["statusCode"] == 200
    assert len(response["body"]) <= cap


def test_a_redirect_that_cannot_be_stored_is_a_503(deployment: Deployment) -> None:
    version, _ = deployment.upload(ACME, _noise_png(400, 300))

    class ReadOnly:
        def __getattr__(self, name: str) -> Any:
            return getattr(deployment.derivatives, name)

        def put(self, *args: Any, **kwargs: Any) -> bool:
            raise StorageFault("S3 imgcdn-test-derivatives: SlowDown")

    deployment.rebuild(limits=FallbackLimits(max_response_bytes=1024), derivatives=ReadOnly())
    body = _assert_error(_get(deployment, _uri(ACME, version, "w320.png")), 503)
    assert "imgcdn-test" not in body  # the bucket is not told to the public
    # Under the cap, a failed write does not cost the viewer the image.
    deployment.rebuild(derivatives=ReadOnly())
    assert _get(deployment, _uri(ACME, version, "w160-q40.jpeg"))["statusCode"] == 200


# -- 4xx --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/img/acme/photo.jpg/0123456789abcdef",  # a public path, not a derivative
        "/img/acme/photo.jpg/0123456789abcdef/w300-q80.webp",  # off the breakpoints
        "/img/acme/photo.jpg/0123456789abcdef/w320-q75.webp",  # off the ladder
        "/img/acme/photo.jpg/0123456789abcdef/w320.webp",  # lossy without q
        "/img/acme/photo.jpg/0123456789abcdef/q80-w320.webp",  # not canonical
        "/img/acme/photo.jpg/0123456789abcdef/w320-q80.gif",
        "/img/acme/photo.jpg/0123456789ABCDEF/w320-q80.webp",
        "/img/Acme/photo.jpg/0123456789abcdef/w320-q80.webp",
        "/static/acme/photo.jpg/0123456789abcdef/w320-q80.webp",
        "/img/acme/%zz.jpg/0123456789abcdef/w320-q80.webp",
        "/img/acme/a%00b.jpg/0123456789abcdef/w320-q80.webp",
        "img/acme/photo.jpg/0123456789abcdef/w320-q80.webp",
        "",
    ],
)
def test_uris_the_function_could_not_have_produced_are_400(
    deployment: Deployment, path: str
) -> None:
    body = _assert_error(_get(deployment, path), 400)
    assert "allowed" in body


def test_missing_original_is_404_and_says_what_is_allowed(deployment: Deployment) -> None:
    body = _assert_error(_get(deployment, _uri(ACME, "0123456789abcdef", "w320-q80.webp")), 404)
    assert "allowed" in body
    [emf] = deployment.metric_lines()
    assert (emf["FallbackRenders"], emf["FallbackErrors"], emf["status"]) == (0, 1, 404)


def test_other_methods_are_405(deployment: Deployment) -> None:
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    event = function_url_event("post.json", _uri(ACME, version, "w320-q80.webp"))
    response = deployment.handler(event, LambdaContext())
    _assert_error(response, 405)
    assert response["headers"]["Allow"] == "GET, HEAD"
    assert deployment.derivatives.head(f"img/acme/red shoe.jpg/{version}/w320-q80.webp") is None


def test_an_event_that_is_not_a_function_url_request_is_400(deployment: Deployment) -> None:
    _assert_error(deployment.handler({"Records": []}, LambdaContext()), 400)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'><image href='file:///etc/passwd'/></svg>", 415),
        (b"%PDF-1.7 not an image", 415),
        (b"just text", 415),
        (jpeg(400, 300, RED)[:600], 422),  # truncated
    ],
)
def test_originals_that_cannot_be_decoded_are_415_or_422(
    deployment: Deployment, data: bytes, status: int
) -> None:
    version, _ = deployment.upload(ACME, data)
    body = _assert_error(_get(deployment, _uri(ACME, version, "w320-q80.webp")), status)
    assert "allowed" in body
    assert deployment.derivatives.head(f"img/acme/red shoe.jpg/{version}/w320-q80.webp") is None


def test_an_original_over_the_size_limit_is_422_before_it_is_read(deployment: Deployment) -> None:
    data = jpeg(400, 300, RED)
    version, _ = deployment.upload(ACME, data)
    policy = Policy(limits=Limits(max_input_bytes=len(data) - 1))
    deployment.rebuild(policy=policy)
    body = _assert_error(_get(deployment, _uri(ACME, version, "w320-q80.webp")), 422)
    assert f"at most {len(data) - 1:,}" in body


# -- 5xx --------------------------------------------------------------------------------------


def test_an_unexpected_failure_is_500_no_store(deployment: Deployment) -> None:
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))

    def broken(data: bytes, params: TransformParams, policy: Policy) -> Rendered:
        raise RuntimeError("boom at 0xdeadbeef")

    deployment.rebuild(transform=broken)
    with structlog.testing.capture_logs() as logs:
        body = _assert_error(_get(deployment, _uri(ACME, version, "w320-q80.webp")), 500)
    assert "deadbeef" not in body
    assert any(e["event"] == "render_crashed" for e in logs)


def test_an_encoder_fault_is_500(deployment: Deployment) -> None:
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))

    def encoder_fault(data: bytes, params: TransformParams, policy: Policy) -> Rendered:
        raise ImgcoreError("encoding w320-q80.webp failed: out of memory")

    deployment.rebuild(transform=encoder_fault)
    _assert_error(_get(deployment, _uri(ACME, version, "w320-q80.webp")), 500)


def test_a_storage_fault_is_503_no_store(deployment: Deployment) -> None:
    class Unavailable:
        def get(self, key: str, **_: Any) -> Any:
            raise StorageFault(f"S3 imgcdn-test-originals/{key}: ServiceUnavailable")

    deployment.rebuild(originals=Unavailable())
    body = _assert_error(_get(deployment, _uri(ACME, "0123456789abcdef", "w320-q80.webp")), 503)
    assert "ServiceUnavailable" not in body


def test_a_transform_past_the_deadline_is_503_no_store(deployment: Deployment) -> None:
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))

    def slow(data: bytes, params: TransformParams, policy: Policy) -> Rendered:
        time.sleep(3)
        raise AssertionError("abandoned work finished")  # pragma: no cover

    deployment.rebuild(transform=slow, limits=FallbackLimits(deadline_margin_ms=1000))
    started = time.monotonic()
    response = _get(deployment, _uri(ACME, version, "w320-q80.webp"), LambdaContext(1300))
    elapsed = time.monotonic() - started
    body = _assert_error(response, 503)
    assert "did not finish" in body
    assert elapsed < 1.5  # answered at the deadline (0.3 s), not when the transform ended
    # No time left at all: nothing is read or rendered.
    response = _get(deployment, _uri(ACME, version, "w320-q80.webp"), LambdaContext(900))
    _assert_error(response, 503)
    assert "transform" not in response["headers"].get("Server-Timing", "")


# -- R15/R17: paths, traversal, tenants ---------------------------------------------------------


class RecordingStore:
    """Wraps a store and records every key read from it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.keys: list[str] = []

    def get(self, key: str, **kwargs: Any) -> Any:
        self.keys.append(key)
        return self.inner.get(key, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_no_request_of_tenant_b_can_read_tenant_a(deployment: Deployment) -> None:
    image_a = ImageRef("tenant-a", "photo.jpg")
    version_a, _ = deployment.upload(image_a, jpeg(400, 300, RED))
    recorder = RecordingStore(deployment.originals)
    deployment.rebuild(originals=recorder)

    # The original's key comes from the parsed tenant and id, never from anything else.
    uri_b = _uri(ImageRef("tenant-b", "photo.jpg"), version_a, "w320-q80.webp")
    assert parse_derivative_uri(uri_b).image.source_key == "img/tenant-b/photo.jpg"
    _assert_error(_get(deployment, uri_b), 404)

    hostile = [
        f"/img/tenant-b/../tenant-a/photo.jpg/{version_a}/w320-q80.webp",
        f"/img/tenant-b/%2E%2E/tenant-a/photo.jpg/{version_a}/w320-q80.webp",
        f"/img/tenant-b/..%2Ftenant-a%2Fphoto.jpg/{version_a}/w320-q80.webp",
        f"/img/tenant-b%2F..%2Ftenant-a/photo.jpg/{version_a}/w320-q80.webp",
        f"/img/tenant-b/.%2E/tenant-a/photo.jpg/{version_a}/w320-q80.webp",
        f"/img/tenant-b/..%5Ctenant-a%5Cphoto.jpg/{version_a}/w320-q80.webp",
        f"/img/tenant-b/./../tenant-a/photo.jpg/{version_a}/w320-q80.webp",
        f"/img/tenant-b//tenant-a/photo.jpg/{version_a}/w320-q80.webp",
        f"/img/tenant-b/%2Ftenant-a/photo.jpg/{version_a}/w320-q80.webp",
        f"/img//tenant-a/photo.jpg/{version_a}/w320-q80.webp",
    ]
    for path in hostile:
        assert _get(deployment, path)["statusCode"] == 400, path
    assert all(key.startswith("img/tenant-b/") for key in recorder.keys), recorder.keys
    assert recorder.keys == ["img/tenant-b/photo.jpg"]
    # ...while tenant A's own URL works.
    assert _get(deployment, _uri(image_a, version_a, "w320-q80.webp"))["statusCode"] == 200


def test_an_id_that_looks_like_a_url_is_only_a_key(deployment: Deployment) -> None:
    # R15: a request value is never a network address; this id is a key like any other.
    image = ImageRef("acme", "http:/169.254.169.254/latest/meta-data")
    recorder = RecordingStore(deployment.originals)
    deployment.rebuild(originals=recorder)
    _assert_error(_get(deployment, _uri(image, "0123456789abcdef", "w320-q80.webp")), 404)
    assert recorder.keys == ["img/acme/http:/169.254.169.254/latest/meta-data"]


# -- R7: versions -------------------------------------------------------------------------------


def test_a_stale_version_is_served_from_its_own_bytes(deployment: Deployment) -> None:
    v1, v1_id = deployment.upload(ACME, jpeg(400, 300, RED))
    deployment.write_manifest(ACME, v1, v1_id)
    v2, _ = deployment.upload(ACME, jpeg(400, 300, BLUE))
    assert v1 != v2

    old = _get(deployment, _uri(ACME, v1, "w320-q80.jpeg"))
    new = _get(deployment, _uri(ACME, v2, "w320-q80.jpeg"))
    assert old["statusCode"] == new["statusCode"] == 200
    assert _close(_centre(body_bytes(old)), RED)
    assert _close(_centre(body_bytes(new)), BLUE)
    stored = deployment.derivatives.get(f"img/acme/red shoe.jpg/{v1}/w320-q80.jpeg")
    assert _close(_centre(stored.data), RED)


def test_an_unknown_version_is_404(deployment: Deployment) -> None:
    v1, v1_id = deployment.upload(ACME, jpeg(400, 300, RED))
    deployment.write_manifest(ACME, v1, v1_id)
    deployment.upload(ACME, jpeg(400, 300, BLUE))
    body = _assert_error(_get(deployment, _uri(ACME, "fedcba9876543210", "w320-q80.jpeg")), 404)
    assert "fedcba9876543210" in body


def test_a_stale_version_without_its_manifest_is_404(deployment: Deployment) -> None:
    v1, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    deployment.upload(ACME, jpeg(400, 300, BLUE))
    _assert_error(_get(deployment, _uri(ACME, v1, "w320-q80.jpeg")), 404)


def test_a_manifest_pointing_at_other_bytes_is_never_served(deployment: Deployment) -> None:
    v1, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    v2, v2_id = deployment.upload(ACME, jpeg(400, 300, BLUE))
    v3, _ = deployment.upload(ACME, jpeg(400, 300, (20, 220, 20)))
    # v1's manifest (wrongly) names v2's S3 version: its bytes hash to v2, not v1.
    deployment.write_manifest(ACME, v1, v2_id)
    _assert_error(_get(deployment, _uri(ACME, v1, "w320-q80.jpeg")), 404)
    # A manifest without a version id, or a version id that is gone, is a 404 too.
    deployment.write_manifest(ACME, v2, None)
    _assert_error(_get(deployment, _uri(ACME, v2, "w320-q80.jpeg")), 404)
    deployment.write_manifest(ACME, v2, "no-such-version-id")
    _assert_error(_get(deployment, _uri(ACME, v2, "w320-q80.jpeg")), 404)
    deployment.derivatives.put(ACME.manifest_key(v2), b"{not json")
    _assert_error(_get(deployment, _uri(ACME, v2, "w320-q80.jpeg")), 404)
    assert _get(deployment, _uri(ACME, v3, "w320-q80.jpeg"))["statusCode"] == 200


def test_the_metric_line_names_nothing_for_an_unparsable_uri(deployment: Deployment) -> None:
    _get(deployment, "/not/a/derivative")
    [emf] = deployment.metric_lines()
    assert (emf["tenant"], emf["variant"], emf["status"]) == ("-", "-", 400)
    # Still a complete EMF document: CloudWatch drops a line whose directive is incomplete.
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "imgcdn"
    assert directive["Dimensions"] == [["tenant", "variant"]]
    assert [m["Name"] for m in directive["Metrics"]] == ["FallbackRenders", "FallbackErrors"]
    assert (emf["FallbackRenders"], emf["FallbackErrors"]) == (0, 1)
    assert isinstance(emf["_aws"]["Timestamp"], int)


def test_a_real_json_log_line_is_written_with_the_key_bound(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    from imgcdn_aws.logs import configure_logging

    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    configure_logging(json=True)  # as the Lambda does: JSON lines on the current stdout
    try:
        _get(deployment, _uri(ACME, version, "w320-q80.webp"), LambdaContext(request_id="r-1"))
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [answered] = [line for line in lines if line.get("event") == "fallback_answered"]
    assert answered["level"] == "info"
    assert answered["request_id"] == "r-1"
    assert answered["key"] == f"img/acme/red shoe.jpg/{version}/w320-q80.webp"
    assert answered["status"] == 200
    assert "timestamp" in answered
    # Lines written during the render carry the key too, and it does not outlive the call.
    again = _get(deployment, _uri(ACME, version, "w320-q80.webp"), LambdaContext(request_id="r-2"))
    assert again["statusCode"] == 200
    assert structlog.contextvars.get_contextvars() == {}


def test_the_key_is_bound_for_every_line_of_the_invocation(deployment: Deployment) -> None:
    version, _ = deployment.upload(ACME, jpeg(400, 300, RED))
    uri = _uri(ACME, version, "w320-q80.webp")
    _get(deployment, uri)
    with structlog.testing.capture_logs([structlog.contextvars.merge_contextvars]) as logs:
        _get(deployment, uri)  # already stored: the service logs `store_skipped` mid-render
    key = f"img/acme/red shoe.jpg/{version}/w320-q80.webp"
    assert [e["event"] for e in logs] == ["store_skipped", "fallback_answered"]
    assert {e["key"] for e in logs} == {key}
    assert structlog.contextvars.get_contextvars() == {}


def test_an_old_version_is_served_even_when_the_current_one_is_too_large(
    deployment: Deployment,
) -> None:
    small = jpeg(400, 300, RED)
    v1, v1_id = deployment.upload(ACME, small)
    deployment.write_manifest(ACME, v1, v1_id)
    v2, _ = deployment.upload(ACME, _noise_png(400, 300))
    deployment.rebuild(policy=Policy(limits=Limits(max_input_bytes=len(small) + 1)))
    old = _get(deployment, _uri(ACME, v1, "w320-q80.jpeg"))
    assert old["statusCode"] == 200
    assert _close(_centre(body_bytes(old)), RED)
    _assert_error(_get(deployment, _uri(ACME, v2, "w320-q80.jpeg")), 422)
