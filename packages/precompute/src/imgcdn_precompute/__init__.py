"""imgcdn precompute: the S3-event worker that renders the standard variant set of each upload.

`handler.handler` is the Lambda entry point; `PrecomputeService` is the event-independent
service it drives (also used by `imgcdn backfill` and the local stack).
"""

from __future__ import annotations

from imgcdn_aws.config import ConfigError, Settings
from imgcdn_aws.emf import Metrics
from imgcdn_precompute.batch import BatchProcessor, BatchResult, MessageResult
from imgcdn_precompute.events import (
    EventError,
    EventKind,
    Invocation,
    Message,
    ObjectEvent,
    parse_invocation,
)
from imgcdn_precompute.service import Action, Outcome, PrecomputeService, Renderer

__all__ = [
    "Action",
    "BatchProcessor",
    "BatchResult",
    "ConfigError",
    "EventError",
    "EventKind",
    "Invocation",
    "Message",
    "MessageResult",
    "Metrics",
    "ObjectEvent",
    "Outcome",
    "PrecomputeService",
    "Renderer",
    "Settings",
    "parse_invocation",
]
