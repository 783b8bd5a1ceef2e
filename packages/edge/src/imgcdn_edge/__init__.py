"""imgcdn edge: the viewer-request CloudFront Function and the fallback transformer.

`render_function(policy)` generates the Function; `handler.handler` is the fallback Lambda's
entry point and `handler.build_handler(...)` the same handler over any stores (it loads boto3
only for S3, and libvips on the first render).
"""

from __future__ import annotations

from imgcdn_edge.config import ConfigError, FallbackLimits, FallbackSettings
from imgcdn_edge.function import FunctionTooLarge, render_function
from imgcdn_edge.service import Answer, Deadline, DeadlineExceeded, FallbackService

__all__ = [
    "Answer",
    "ConfigError",
    "Deadline",
    "DeadlineExceeded",
    "FallbackLimits",
    "FallbackService",
    "FallbackSettings",
    "FunctionTooLarge",
    "render_function",
]
