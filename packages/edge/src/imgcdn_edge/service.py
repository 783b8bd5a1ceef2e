"""The fallback transformer as a service: a derivative URI in, an HTTP answer out (R7, R11-R15).

No AWS and no events here: the service works on the storage port (`imgcore.storage`), so the
Lambda (S3 stores), the local stack (local stores) and the tests (moto or memory) share it.

For one rewritten URI `/{class}/{tenant}/{id}/{version}/{variant}` it:

1. parses the URI strictly (`imgcore.parse_derivative_uri`): anything the viewer-request
   Function could not have produced is a 400;
2. derives the original's key from the parsed tenant and id (R15: no request value is ever a
   network address, and no request of tenant B can name a key outside `{class}/B/`);
3. reads the original with the policy's size bound and checks its content version (R7); an
   older version is read only by the S3 version id its manifest recorded, and only if those
   bytes hash to the requested version, else 404: never another version's bytes;
4. transforms it in a worker thread, abandoned with a 503 when the deadline passes (the read
   of step 3 and the write of step 5 are bounded by the same deadline: no stage starts after
   it, and none is waited for past it);
5. stores the derivative with exactly the `Content-Type` and `Cache-Control` it answers with
   (R11), then answers 200; an output whose base64 form is over the response cap is stored
   first and answered with a `private, no-store` redirect to the viewer's own URL (R12).
"""

from __future__ import annotations

import base64
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

import structlog
from pydantic import ValidationError

from imgcdn_edge.config import FallbackLimits
from imgcore import (
    DEFAULT_POLICY,
    DerivativeKey,
    ImgcoreError,
    InputTooLarge,
    InvalidRequest,
    Policy,
    TransformParams,
    content_version,
    parse_derivative_uri,
)
from imgcore.manifest import Manifest
from imgcore.responses import REDIRECT_CACHE_CONTROL, derivative_headers, error_cache_control
from imgcore.storage import NotFound, ObjectStore, StorageFault

if TYPE_CHECKING:
    from imgcore.pixels import Rendered

__all__ = ["Answer", "Deadline", "DeadlineExceeded", "FallbackService", "Transform"]

log = structlog.get_logger("imgcdn.edge")

Transform = Callable[[bytes, TransformParams, Policy], "Rendered"]
"""`imgcore.transform`'s signature; tests inject slow or failing ones."""

TEXT: Final = "text/plain; charset=utf-8"
SAME_URL: Final = "#"
"""The oversize redirect's `Location` (R12): the URL the viewer asked for, whatever it was."""
_MAX_MANIFEST_BYTES: Final = 1024 * 1024
_MAX_MESSAGE: Final = 400
_T = TypeVar("_T")
_LAYOUT: Final = "/{class}/{tenant}/{image id}/{version}/{variant}"
_REASONS: Final = {503: "storage is unavailable", 500: "internal error"}


class DeadlineExceeded(ImgcoreError):
    """The work would run past the invocation's deadline; a retry may succeed (R13: 503)."""

    http_status = 503


class VersionNotFound(NotFound):
    """No original, or no stored version of it, hashes to the requested version (R7)."""


class _NoManifest(VersionNotFound):
    """The current original is not the requested version, and no manifest names that version."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point on `clock`'s timeline after which work is abandoned."""

    at: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline `seconds` from now."""
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - self.clock()


@dataclass(frozen=True, slots=True)
class Answer:
    """What the fallback answers: status, headers, body, and what happened (for logs/metrics).

    Attributes:
        status: The HTTP status.
        headers: Response headers (canonical capitalisation).
        body: The body bytes (empty for HEAD).
        derivative: The parsed request, when the URI parsed.
        timings: Milliseconds per stage that ran: `fetch`, `transform`, `store`.
        detail: For errors, the one-line reason (also the body); for logs.
        stored: Whether the derivative was written by this call.
        output_bytes: Size of the rendered derivative (0 when none was rendered).
    """

    status: int
    headers: dict[str, str]
    body: bytes = b""
    derivative: DerivativeKey | None = None
    timings: dict[str, float] = field(default_factory=dict)
    detail: str | None = None
    stored: bool = False
    output_bytes: int = 0

    @property
    def binary(self) -> bool:
        """Whether the body is an image (sent base64-encoded by a Lambda)."""
        return self.status == 200


def base64_size(n: int) -> int:
    """The length of the base64 form of `n` bytes (padded)."""
    return 4 * ((n + 2) // 3)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."


def _run_until(deadline: Deadline | None, what: str, work: Callable[[], _T]) -> _T:
    """Run `work` (described by `what`) in a worker thread; DeadlineExceeded if not done in time.

    An abandoned worker cannot be killed: it finishes in the background (libvips releases the
    GIL; an S3 call ends within its client's timeouts, which fit in the deadline margin) and
    its result is dropped. Lambda freezes it with the environment after the answer.
    """
    if deadline is None:
        return work()
    remaining = deadline.remaining()
    if remaining <= 0:
        msg = f"the invocation's deadline passed before {what} could start"
        raise DeadlineExceeded(msg)
    outcome: dict[str, Any] = {}
    # The worker logs with the invocation's bound request id and key.
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread as is
            outcome["error"] = exc

    worker = threading.Thread(target=context.run, args=(run,), name="imgcdn-bounded", daemon=True)
    worker.start()
    worker.join(remaining)
    if worker.is_alive():
        msg = f"{what} did not finish within {remaining * 1000:.0f} ms"
        raise DeadlineExceeded(msg)
    if "error" in outcome:
        raise outcome["error"]
    value: _T = outcome["value"]
    return value


class _Stages:
    """Milliseconds per stage, for `Server-Timing` and the logs."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = self.clock()
        try:
            yield
        finally:
            self.ms[name] = (self.clock() - started) * 1000


def server_timing(timings: dict[str, float]) -> str:
    """The `Server-Timing` header value, e.g. `fetch;dur=12.3, transform;dur=80.1`."""
    return ", ".join(f"{name};dur={ms:.1f}" for name, ms in timings.items())


def _default_transform(data: bytes, params: TransformParams, policy: Policy) -> Rendered:
    from imgcore.pixels import transform  # noqa: PLC0415 - libvips loads on first render

    return transform(data, params, policy)


class FallbackService:
    """Renders one derivative on a miss; see the module docstring for the steps and rules."""

    def __init__(
        self,
        originals: ObjectStore,
        derivatives: ObjectStore,
        *,
        policy: Policy = DEFAULT_POLICY,
        limits: FallbackLimits | None = None,
        transform: Transform | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Bind the service to its ports.

        Args:
            originals: Where originals live (versioned in production: R7 reads old versions).
            derivatives: Where derivatives and manifests live (the CDN's S3 primary).
            policy: The policy the URIs and renders follow.
            limits: Response cap and deadline margin.
            transform: The renderer (`imgcore.transform` unless a test injects one).
            clock: Monotonic seconds, for stage timings.
        """
        self.originals = originals
        self.derivatives = derivatives
        self.policy = policy
        self.limits = limits or FallbackLimits()
        self._transform = transform or _default_transform
        self._clock = clock

    def render(self, uri: str, *, deadline: Deadline | None = None, head: bool = False) -> Answer:
        """Answer one origin request for the rewritten URI `uri`.

        Args:
            uri: The request path as received, percent-encoded (a Function URL's `rawPath`).
            deadline: When to give up with a 503 (None: never).
            head: A HEAD request: the same status and headers, no body.

        Returns:
            The answer; errors are answers too (R13), never exceptions.
        """
        # Every line logged while answering names the key once it is known; the binding ends
        # with the call, so it never leaks into the next request of a warm Lambda.
        with structlog.contextvars.bound_contextvars(key=None):
            return self._answer(uri, deadline, head=head)

    def _answer(self, uri: str, deadline: Deadline | None, *, head: bool) -> Answer:
        stages = _Stages(self._clock)
        derivative: DerivativeKey | None = None
        try:
            derivative = self._parse(uri)
            structlog.contextvars.bind_contextvars(key=derivative.key)  # scoped by `render`
            answer = self._render(derivative, stages, deadline)
        except VersionNotFound as exc:
            log.info("version_not_found", reason=str(exc))
            answer = self._error(404, self._not_found_message(derivative))
        except InvalidRequest as exc:
            detail = str(exc)
            if "allowed" not in detail:
                detail += f"; allowed: {_LAYOUT} as the viewer-request Function rewrites it"
            answer = self._error(400, detail)
        except DeadlineExceeded as exc:
            log.warning("deadline_exceeded", reason=str(exc))
            answer = self._error(503, f"{exc}; retry later")
        except ImgcoreError as exc:  # StorageFault, input rejections, encoder faults
            status = exc.http_status
            if status >= 500:
                # The reason (bucket, key, libvips text) goes to the logs, not to the public.
                log.error("render_failed", error=type(exc).__name__, reason=str(exc))
                detail = f"{_REASONS.get(status, 'internal error')}; retry later"
            else:
                detail = str(exc)
            answer = self._error(status, detail)
        except Exception:
            log.exception("render_crashed")
            answer = self._error(500, "internal error; retry later")
        timings = dict(stages.ms)
        headers = dict(answer.headers)
        if timings:
            headers["Server-Timing"] = server_timing(timings)
        return Answer(
            status=answer.status,
            headers=headers,
            body=b"" if head else answer.body,
            derivative=derivative,
            timings=timings,
            detail=answer.detail,
            stored=answer.stored,
            output_bytes=answer.output_bytes,
        )

    # -- steps ----------------------------------------------------------------------------------

    def _parse(self, uri: str) -> DerivativeKey:
        """The derivative `uri` names, if `uri` is exactly the canonical rewritten URI.

        Decoding alone would accept spellings the viewer-request Function never produces
        (`%72ed` for `red`, a raw space, lower-case hex): each would be a second origin URI for
        one S3 key, rendered and stored under the canonical key while CloudFront caches the
        variant spelling apart, so they are refused rather than normalised.

        Raises:
            InvalidRequest: The URI does not parse, or is not in its canonical encoding.
        """
        parsed = parse_derivative_uri(uri, self.policy)
        if parsed.uri != uri:
            msg = (
                f"path {uri!r} is not the canonical rewritten URI of this derivative; allowed: "
                f"the path must be the canonical rewritten URI {parsed.uri!r} (each segment "
                "percent-encoded once: unreserved characters literal, everything else as "
                "upper-case %XX of its UTF-8 bytes)"
            )
            raise InvalidRequest(msg)
        return parsed

    def _render(
        self, derivative: DerivativeKey, stages: _Stages, deadline: Deadline | None
    ) -> Answer:
        with stages.stage("fetch"):
            data = _run_until(
                deadline, "reading the original", lambda: self._read_original(derivative)
            )
        with stages.stage("transform"):
            rendered = _run_until(
                deadline,
                "the transform",
                lambda: self._transform(data, derivative.params, self.policy),
            )
        headers = dict(
            derivative_headers(rendered.params.fmt, derivative.image.content_class, self.policy)
        )
        oversize = base64_size(len(rendered.data)) > self.limits.max_response_bytes
        with stages.stage("store"):
            # Answering after Lambda's timeout is not fine, so storing is bounded by the deadline
            # like every other stage. Not stored is (the next miss renders again): the image is
            # ready and the margin is there to answer it, unless the answer is the redirect to
            # the stored object (R12).
            try:
                stored = _run_until(
                    deadline,
                    "storing the derivative",
                    lambda: self._store(derivative, rendered.data, headers, required=oversize),
                )
            except DeadlineExceeded:
                if oversize:
                    raise
                log.warning("store_abandoned", key=derivative.key, reason="deadline")
                stored = False
        if oversize:
            return self._redirect(len(rendered.data), stored)
        return Answer(200, headers, rendered.data, stored=stored, output_bytes=len(rendered.data))

    def _read_original(self, derivative: DerivativeKey) -> bytes:
        """The original's bytes at exactly the requested version (R7), size-bounded (R16)."""
        key = derivative.image.source_key  # from the parsed tenant and id only (R15, R17)
        try:
            current = self.originals.get(key, max_bytes=self.policy.limits.max_input_bytes)
        except NotFound:
            msg = f"no original at {key!r}"
            raise VersionNotFound(msg) from None
        except InputTooLarge as too_large:
            # Too large to hash: an older, admissible version may still be the one asked for.
            try:
                return self._read_recorded_version(derivative)
            except _NoManifest:
                raise too_large from None
        if content_version(current.data) == derivative.version:
            return current.data
        return self._read_recorded_version(derivative)

    def _read_recorded_version(self, derivative: DerivativeKey) -> bytes:
        """The bytes of the S3 version that the requested version's manifest records.

        Only the manifest precompute wrote for a version knows which S3 version of the original
        it was rendered from; those bytes are used only if they hash to the requested version.

        Raises:
            VersionNotFound: No manifest (`_NoManifest`), or it names no S3 version whose bytes
                are the requested version.
        """
        image, version = derivative.image, derivative.version
        key, manifest_key = image.source_key, image.manifest_key(version)
        try:
            raw = self.derivatives.get(manifest_key, max_bytes=_MAX_MANIFEST_BYTES)
        except NotFound:
            msg = f"{key!r} is at another version and no manifest names version {version}"
            raise _NoManifest(msg) from None
        try:
            manifest = Manifest.model_validate_json(raw.data)
        except ValidationError as exc:
            log.error("manifest_invalid", manifest=manifest_key, reason=str(exc))
            msg = f"the manifest of version {version} of {key!r} is not valid"
            raise VersionNotFound(msg) from None
        if manifest.source_key != key or manifest.version != version:
            msg = f"the manifest of version {version} of {key!r} describes another image"
            raise VersionNotFound(msg)
        version_id = manifest.source_version_id
        if not version_id:
            msg = f"the manifest of version {version} of {key!r} records no S3 version id"
            raise VersionNotFound(msg)
        limit = self.policy.limits.max_input_bytes
        try:
            recorded = self.originals.get(key, max_bytes=limit, version_id=version_id)
        except NotFound:
            msg = f"S3 version {version_id} of {key!r} is gone"
            raise VersionNotFound(msg) from None
        if content_version(recorded.data) != version:
            msg = f"S3 version {version_id} of {key!r} is not version {version}"
            raise VersionNotFound(msg)
        return recorded.data

    def _store(
        self, derivative: DerivativeKey, data: bytes, headers: dict[str, str], *, required: bool
    ) -> bool:
        """Write the derivative with the answer's own headers (R11); True when this call wrote.

        A failed write is only an error when the answer depends on it (the redirect of R12);
        otherwise the image is still answered and the next miss renders it again.
        """
        try:
            written = self.derivatives.put(
                derivative.key,
                data,
                content_type=headers["Content-Type"],
                cache_control=headers["Cache-Control"],
                if_absent=True,  # precompute or a concurrent miss may have written it already
            )
        except StorageFault:
            if required:
                raise
            log.warning("store_failed", key=derivative.key)
            return False
        if not written:
            # Already there (precompute or a concurrent miss): the S3 primary serves it anyway.
            log.info("store_skipped", key=derivative.key, reason="already stored")
        return written

    def _redirect(self, size: int, stored: bool) -> Answer:
        # The viewer's own URL, signature and all: `Location: #` is a relative reference with an
        # empty path, which resolves to the request's URL with its query (RFC 3986 5.2.2; the
        # Fetch standard's redirect step; curl, urllib, httpx alike). The object is stored now
        # and this answer is never cached, so the retry misses the cache and the S3 primary
        # serves it (R12). Not a URL built here: a signed tenant's URL is checked by CloudFront
        # before the Function, against a signature over the exact URL the viewer was given, and
        # the fallback receives neither (the Function drops the query) nor may it sign. Nor a
        # forwarded copy of the viewer's query: Origin Shield collapses concurrent misses for
        # one cache key into one origin request even for a `no-store` answer, so one viewer's
        # signature (maybe a custom policy over `/img/acme/*`) would reach the others.
        limit = self.limits.max_response_bytes
        detail = (
            f"the derivative is {size:,} bytes ({base64_size(size):,} as base64), over the "
            f"{limit:,}-byte response limit; it is stored, follow the redirect"
        )
        headers = {
            "Location": SAME_URL,
            "Cache-Control": REDIRECT_CACHE_CONTROL,
            "Content-Type": TEXT,
        }
        return Answer(
            302, headers, (detail + "\n").encode(), detail=detail, stored=stored, output_bytes=size
        )

    def refuse(self, status: int, detail: str, headers: dict[str, str] | None = None) -> Answer:
        """An error answer (R13): a short max-age for 4xx, `no-store` for 5xx, one line of text.

        Args:
            status: The HTTP status, 400-599.
            detail: What was wrong and what is allowed.
            headers: Extra headers (e.g. `Allow` for a 405).
        """
        return self._error(status, detail, headers)

    def _error(self, status: int, detail: str, extra: dict[str, str] | None = None) -> Answer:
        detail = _one_line(detail)
        headers = {"Cache-Control": error_cache_control(status, self.policy), "Content-Type": TEXT}
        headers.update(extra or {})
        return Answer(status, headers, (detail + "\n").encode(), detail=detail)

    @staticmethod
    def _not_found_message(derivative: DerivativeKey | None) -> str:
        # One message whether the original or only the version is missing: a 404 does not tell
        # a stranger which image ids exist.
        if derivative is None:  # pragma: no cover - VersionNotFound needs a parsed URI
            return "not found"
        image = derivative.image
        return (
            f"no image {image.source_key!r} at version {derivative.version}; allowed: the URL of "
            "an uploaded image version"
        )


def body_for_lambda(answer: Answer) -> tuple[str, bool]:
    """The body as a Lambda Function URL carries it: (text, is_base64)."""
    if answer.binary and answer.body:
        return base64.b64encode(answer.body).decode("ascii"), True
    return answer.body.decode("utf-8"), False
