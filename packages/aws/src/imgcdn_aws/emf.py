"""CloudWatch Embedded Metric Format: metrics as JSON log lines that CloudWatch extracts itself.

A Lambda's stdout goes to CloudWatch Logs; a line whose `_aws.CloudWatchMetrics` names metrics
becomes metric data points with no API call (no latency, no throttling, no extra permission).
Format: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TextIO

__all__ = ["NAMESPACE", "Metrics", "Unit"]

NAMESPACE = "imgcdn"
_MAX_METRICS = 100  # EMF allows at most 100 metrics per directive


class Unit(StrEnum):
    """The CloudWatch units these metrics use."""

    COUNT = "Count"
    BYTES = "Bytes"
    MILLISECONDS = "Milliseconds"


class Metrics:
    """Writes one EMF line per `emit` to a text stream (stdout in Lambda)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        namespace: str = NAMESPACE,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        """Write to `stream` (stdout when None, looked up at each write so tests can capture).

        Args:
            stream: Where lines go.
            namespace: The CloudWatch namespace.
            defaults: Properties added to every line (searchable in Logs Insights, not metrics).
        """
        self._stream = stream
        self.namespace = namespace
        self.defaults = dict(defaults or {})

    def line(
        self,
        values: Mapping[str, tuple[float, Unit]],
        *,
        dimensions: Mapping[str, str] | None = None,
        properties: Mapping[str, Any] | None = None,
        timestamp_ms: int | None = None,
    ) -> dict[str, Any]:
        """Build one EMF document (see `emit`)."""
        if not values or len(values) > _MAX_METRICS:
            msg = f"an EMF line carries 1-{_MAX_METRICS} metrics; got {len(values)}"
            raise ValueError(msg)
        dims = dict(dimensions or {})
        document: dict[str, Any] = {**self.defaults, **(properties or {}), **dims}
        document["_aws"] = {
            "Timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": self.namespace,
                    # One dimension set with every dimension given; [[]] means "no dimension".
                    "Dimensions": [sorted(dims)],
                    "Metrics": [
                        {"Name": name, "Unit": unit.value} for name, (_, unit) in values.items()
                    ],
                }
            ],
        }
        for name, (value, _) in values.items():
            document[name] = value
        return document

    def emit(
        self,
        values: Mapping[str, tuple[float, Unit]],
        *,
        dimensions: Mapping[str, str] | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one EMF line.

        Args:
            values: Metric name to (value, unit).
            dimensions: Dimension name to value (e.g. `{"tenant": "acme"}`); keep them few and
                of bounded cardinality: each combination is a billed custom metric.
            properties: Extra fields for the log line only (key, version, request id).
        """
        document = self.line(values, dimensions=dimensions, properties=properties)
        stream = self._stream or sys.stdout
        stream.write(json.dumps(document, separators=(",", ":"), default=str) + "\n")
        stream.flush()
