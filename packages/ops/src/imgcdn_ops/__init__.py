"""imgcdn after deploy: takedown and erasure with an audit record, drift checks and probes.

The takedown library (`take_down`, its service and the CloudFront invalidation queue) is
re-exported here; the drift check (`imgcdn_ops.verify`), the access-log parser
(`imgcdn_ops.accesslogs`) and the Lambda handlers live in their own modules. Importing this
package loads no AWS SDK: boto3 comes with the S3 and CloudFront adapters, when they are built.
"""

from __future__ import annotations

from imgcdn_ops.bulk import BulkReport, Journal, read_requests, run_bulk
from imgcdn_ops.invalidation import InvalidationBusy, InvalidationQueue, Invalidator
from imgcdn_ops.takedown import (
    TakedownError,
    TakedownReport,
    TakedownService,
    Target,
    parse_target,
    take_down,
)

__all__ = [
    "BulkReport",
    "InvalidationBusy",
    "InvalidationQueue",
    "Invalidator",
    "Journal",
    "TakedownError",
    "TakedownReport",
    "TakedownService",
    "Target",
    "parse_target",
    "read_requests",
    "run_bulk",
    "take_down",
]
