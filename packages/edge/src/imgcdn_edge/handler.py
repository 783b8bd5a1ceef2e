"""The fallback Lambda: a Function URL event (payload 2.0) in, the service's answer out.

CloudFront's origin group reaches this function (OAC-signed) after the derivatives bucket
answered 403/404 for the rewritten URI. `handler(event, context)` is the Lambda entry point;
`build_handler(...)` binds the same handler to any stores (the local stack, tests).

Per invocation: parse the event, call `FallbackService.render` with a deadline below the
Lambda's remaining time, answer (base64 for images); `imgcdn_edge.observe` writes one JSON
log line bound to the request id and key, and one CloudWatch EMF line (`imgcdn` /
`FallbackRenders`, `FallbackErrors` by `tenant` and `variant`), so misses that precompute did
not cover can be alarmed on. Configuration resolves once per process (`imgcdn_edge.config`);
in Lambda during the init phase, so a bad value fails the cold start loudly.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from imgcdn_aws.emf import Metrics
from imgcdn_aws.logs import configure_logging
from imgcdn_edge.config import FallbackLimits, FallbackSettings
from imgcdn_edge.observe import record_answer
from imgcdn_edge.service import Answer, Deadline, FallbackService, Transform, body_for_lambda
from imgcore import DEFAULT_POLICY, Policy
from imgcore.storage import ObjectStore

__all__ = ["FallbackHandler", "OriginRequest", "build_handler", "handler", "parse_event"]

METHODS = ("GET", "HEAD")


class EventError(ValueError):
    """The event is not a Lambda Function URL request (payload format 2.0)."""


@dataclass(frozen=True, slots=True)
class OriginRequest:
    """What the fallback needs from an origin request."""

    method: str
    path: str
    """The raw, percent-encoded path: the rewritten URI. The query is ignored (R1, R15)."""
    request_id: str | None


def parse_event(event: Mapping[str, Any]) -> OriginRequest:
    """Read a Function URL event (payload 2.0).

    Raises:
        EventError: The event lacks `rawPath` or `requestContext.http.method`.
    """
    try:
        context = event["requestContext"]
        method = str(context["http"]["method"]).upper()
        path = event["rawPath"]
    except (KeyError, TypeError):
        msg = "not a Lambda Function URL event (payload 2.0): rawPath or http.method is missing"
        raise EventError(msg) from None
    if not isinstance(path, str):
        msg = "rawPath must be a string"
        raise EventError(msg)
    request_id = context.get("requestId") if isinstance(context, Mapping) else None
    return OriginRequest(method, path, str(request_id) if request_id else None)


def _response(answer: Answer) -> dict[str, Any]:
    body, is_base64 = body_for_lambda(answer)
    return {
        "statusCode": answer.status,
        "headers": dict(answer.headers),
        "body": body,
        "isBase64Encoded": is_base64,
    }


class FallbackHandler:
    """A Lambda handler for Function URL events, bound to a service (see the module docstring)."""

    def __init__(
        self,
        service: FallbackService,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Bind the handler to `service`; metrics go to stdout unless `metrics` says otherwise."""
        self.service = service
        self.metrics = metrics or Metrics()
        self._clock = clock

    def _deadline(self, context: Any) -> Deadline | None:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if remaining is None:
            return None  # not in Lambda (the local stack): no invocation timeout to beat
        margin = self.service.limits.deadline_margin_ms
        seconds = (remaining() - margin) / 1000
        return Deadline.after(seconds, self._clock) if self._clock else Deadline.after(seconds)

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        """Answer one origin request; never raises for a bad request (R13)."""
        deadline = self._deadline(context)
        try:
            request = parse_event(event)
        except EventError as exc:
            request = OriginRequest("?", "", None)
            answer: Answer | None = self.service.refuse(400, str(exc))
        else:
            answer = None
        request_id = getattr(context, "aws_request_id", None) or request.request_id
        with structlog.contextvars.bound_contextvars(request_id=request_id, path=request.path):
            if answer is None and request.method in METHODS:
                head = request.method == "HEAD"
                answer = self.service.render(request.path, deadline=deadline, head=head)
            elif answer is None:
                detail = f"method {request.method} is not allowed; allowed: GET, HEAD"
                answer = self.service.refuse(405, detail, {"Allow": ", ".join(METHODS)})
            record_answer(self.metrics, request.method, request_id, answer)
        return _response(answer)


def build_handler(
    *,
    originals: ObjectStore,
    derivatives: ObjectStore,
    policy: Policy = DEFAULT_POLICY,
    limits: FallbackLimits | None = None,
    transform: Transform | None = None,
    metrics: Metrics | None = None,
) -> FallbackHandler:
    """The fallback handler over any stores: `handler(event)` or `handler(event, context)`.

    Args:
        originals: The originals store (versioned, for R7).
        derivatives: The derivatives store (the S3 primary; manifests live there too).
        policy: The policy the URIs and renders follow.
        limits: Response cap and deadline margin.
        transform: The renderer (imgcore's unless a test injects one).
        metrics: Where EMF lines go (stdout by default).
    """
    service = FallbackService(
        originals, derivatives, policy=policy, limits=limits, transform=transform
    )
    return FallbackHandler(service, metrics=metrics)


@functools.cache
def default_handler() -> FallbackHandler:
    """The process-wide handler over S3, configured from the environment on first use."""
    from imgcdn_aws.s3 import S3Store  # noqa: PLC0415 - boto3 loads only where S3 is used

    config = FallbackSettings.from_env()
    configure_logging(json=True)
    return build_handler(
        # Interactive clients: their calls fit in the deadline margin (imgcdn_edge.config).
        originals=S3Store(
            config.originals_bucket, endpoint_url=config.s3_endpoint, interactive=True
        ),
        derivatives=S3Store(
            config.derivatives_bucket, endpoint_url=config.s3_endpoint, interactive=True
        ),
        policy=config.policy,
        limits=config.limits,
    )


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (see the module docstring)."""
    return default_handler()(event, context)


if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:  # pragma: no cover - the Lambda init phase
    default_handler()
