"""The takedown Lambda: one SQS message, one `take_down`, the same function the CLI runs.

A message body is JSON: `{"target": "TENANT/IMAGE_ID", "class": "img" | "ugc" | null,
"reason": "...", "actor": "..."}` (`imgcdn takedown --submit` writes exactly this). A request
that can never succeed (not JSON, an unknown tenant, a malformed id, no reason) is logged and
dropped: retrying cannot help, and the log line is its record. A fault (S3, CloudFront) is
reported as a batch item failure, so SQS delivers the message again and the takedown, which is
idempotent, finishes; after the queue's receive limit it lands in the dead-letter queue, whose
alarm pages someone. The ports resolve once per process from the environment
(`imgcdn_ops.deployment`).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from typing import Any

import structlog

from imgcdn_aws.logs import configure_logging
from imgcdn_ops.deployment import Deployment, aws_deployment
from imgcdn_ops.invalidation import InvalidationQueue
from imgcdn_ops.takedown import TakedownError, parse_target, take_down

__all__ = ["deployment", "parse_message", "takedown"]

log = structlog.get_logger("imgcdn.takedown")


@functools.cache
def deployment() -> Deployment:
    """The process-wide ports, built from the environment on first use."""
    configure_logging(json=True)
    return aws_deployment()


def parse_message(body: str) -> dict[str, Any]:
    """The fields of one takedown message.

    Raises:
        TakedownError: Not a JSON object with a string `target`, `reason` and `actor`.
    """
    allowed = (
        'allowed: {"target": "TENANT/IMAGE_ID", "class": "img"|"ugc"|null, '
        '"reason": "...", "actor": "..."}'
    )
    try:
        fields = json.loads(body)
    except json.JSONDecodeError:
        msg = f"the message is not JSON; {allowed}"
        raise TakedownError(msg) from None
    if not isinstance(fields, dict):
        msg = f"the message is not a JSON object; {allowed}"
        raise TakedownError(msg)
    for name in ("target", "reason", "actor"):
        if not isinstance(fields.get(name), str) or not fields[name].strip():
            msg = f"the message has no {name}; {allowed}"
            raise TakedownError(msg)
    if fields.get("class") not in (None, "img", "ugc"):
        msg = f"the message's class {fields['class']!r} is not valid; {allowed}"
        raise TakedownError(msg)
    return fields


def takedown(event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Run one takedown per SQS record; answer the records to deliver again."""
    ports = deployment()
    failed: list[dict[str, str]] = []
    request_id = getattr(context, "aws_request_id", None)
    for record in event.get("Records", ()):
        message_id = str(record.get("messageId", ""))
        with structlog.contextvars.bound_contextvars(request_id=request_id, message_id=message_id):
            try:
                fields = parse_message(str(record.get("body", "")))
                target = parse_target(fields["target"], fields.get("class"), tenants=ports.tenants)
            except TakedownError as exc:
                log.error("takedown_refused", reason=str(exc))
                continue
            try:
                report = take_down(
                    target,
                    reason=fields["reason"],
                    actor=fields["actor"],
                    service=ports.service,
                    queue=InvalidationQueue(ports.invalidator, salt=message_id),
                    render_window_s=ports.render_window_s,
                )
            except Exception as exc:
                log.exception("takedown_failed", target=fields["target"], error=type(exc).__name__)
                failed.append({"itemIdentifier": message_id})
                continue
            log.info(
                "takedown_done",
                target=target.name,
                takedown_id=report.takedown_id,
                audit_key=report.audit_key,
                complete=report.complete,
                problems=report.problems,
                invalidations=[i.id for i in report.invalidations],
            )
            if report.problems:
                failed.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failed}


if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:  # pragma: no cover - the Lambda init phase
    deployment()  # a bad variable fails the cold start loudly, naming it (ConfigError)
