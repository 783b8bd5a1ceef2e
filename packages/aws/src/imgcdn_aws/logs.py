"""structlog set-up for both Lambdas and the CLIs: JSON in Lambda, readable text on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

__all__ = ["configure_logging"]


def configure_logging(
    *, json: bool, stream: TextIO | None = None, level: int = logging.INFO
) -> None:
    """Configure structlog for this process.

    Args:
        json: One JSON object per line (for CloudWatch Logs Insights) instead of coloured text.
        stream: Where lines go. None: the current `sys.stdout` for JSON (a Lambda's stdout is
            its log stream; looked up at each line, so a replaced stdout is honoured), or
            `sys.stderr` for text (stdout stays free for a command's result).
        level: The least severe level that is written.
    """
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if json:
        processors.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
        factory = structlog.PrintLoggerFactory(stream)
    else:
        target = stream or sys.stderr
        renderer = structlog.dev.ConsoleRenderer(colors=target.isatty())
        factory = structlog.PrintLoggerFactory(target)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
