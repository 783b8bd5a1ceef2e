"""The Lambda entry point: parse the event, let the batch processor work, answer SQS.

`handler(event, context)` takes an SQS batch (S3 -> SQS -> Lambda, with
`ReportBatchItemFailures` on the event source mapping) and answers
`{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}` so only failed messages are
retried. It also takes a bare S3 notification (S3 -> Lambda): an asynchronous invocation ignores
the answer, so a failure there is raised, and Lambda's async retries and on-failure destination
take over. The backfill's Step Functions Distributed Map invokes it too, with
`{"source": "imgcdn.backfill", "bucket": ..., "items": [{"Key": ...}]}`, and gets the same
answer with keys as item identifiers. Configuration resolves once per process (see
`imgcdn_aws.config`); in Lambda it resolves during the init phase, so a bad value fails
the first cold start loudly.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

import structlog

from imgcdn_aws.config import Settings
from imgcdn_aws.logs import configure_logging
from imgcdn_aws.s3 import S3Store
from imgcdn_precompute.batch import BatchProcessor
from imgcdn_precompute.events import parse_invocation
from imgcdn_precompute.service import PrecomputeService

__all__ = ["BatchFailed", "handler", "processor"]

log = structlog.get_logger("imgcdn.precompute")


class BatchFailed(RuntimeError):
    """A bare S3 event could not be processed completely; Lambda retries it."""


@functools.cache
def processor() -> BatchProcessor:
    """The process-wide processor, built from the environment on first use."""
    settings = Settings.from_env()
    configure_logging(json=True)
    service = PrecomputeService(
        S3Store(settings.originals_bucket, endpoint_url=settings.s3_endpoint),
        S3Store(settings.derivatives_bucket, endpoint_url=settings.s3_endpoint),
        policy=settings.policy,
    )
    return BatchProcessor(service, originals_bucket=settings.originals_bucket)


def handler(event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Process one invocation (see the module docstring).

    Raises:
        EventError: The event is neither an SQS batch nor an S3 notification.
        BatchFailed: A bare S3 event failed (SQS batches report failures instead).
    """
    batch = processor()
    request_id = getattr(context, "aws_request_id", None)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        invocation = parse_invocation(event)
        result = batch.process(invocation, remaining)
        log.info(
            "invocation_done",
            source=invocation.source,
            messages=len(invocation.messages),
            failed=result.failed,
        )
    if invocation.source == "s3" and result.failed:
        failures = "; ".join(r.failure or "" for r in result.results if r.failure)
        raise BatchFailed(failures)
    return {"batchItemFailures": [{"itemIdentifier": i} for i in result.failed]}


if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:  # pragma: no cover - the Lambda init phase
    processor()
