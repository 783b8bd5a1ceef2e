"""What the fallback reports per invocation: one JSON log line and one EMF metric line."""

from __future__ import annotations

from typing import Any

import structlog

from imgcdn_aws.emf import Metrics, Unit
from imgcdn_edge.service import Answer

__all__ = ["record_answer"]

log = structlog.get_logger("imgcdn.edge")


def record_answer(metrics: Metrics, method: str, request_id: str | None, answer: Answer) -> None:
    """Log `answer` (bound to its key) and emit `FallbackRenders` / `FallbackErrors`.

    The metric's dimensions are tenant and variant, so the rate of misses that precompute did
    not cover can be alarmed on; an answer with no derivative (a refused path) counts as "-".
    """
    derivative = answer.derivative
    key = derivative.key if derivative else None
    tenant = derivative.image.tenant if derivative else "-"
    variant = derivative.params.variant if derivative else "-"
    with structlog.contextvars.bound_contextvars(key=key):
        fields: dict[str, Any] = {
            "method": method,
            "status": answer.status,
            "tenant": tenant,
            "variant": variant,
            "stored": answer.stored,
            "bytes": answer.output_bytes,
            **{f"{stage}_ms": round(ms, 1) for stage, ms in answer.timings.items()},
        }
        if answer.detail:
            fields["detail"] = answer.detail
        if answer.status >= 500:
            log.error("fallback_answered", **fields)
        elif answer.status >= 400:
            log.warning("fallback_answered", **fields)
        else:
            log.info("fallback_answered", **fields)
    rendered = answer.status in (200, 302)
    metrics.emit(
        {
            "FallbackRenders": (1 if rendered else 0, Unit.COUNT),
            "FallbackErrors": (1 if answer.status >= 400 else 0, Unit.COUNT),
        },
        dimensions={"tenant": tenant, "variant": variant},
        properties={"status": answer.status, "key": key, "request_id": request_id},
    )
