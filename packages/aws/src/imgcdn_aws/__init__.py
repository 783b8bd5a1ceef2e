"""imgcdn aws: the AWS adapters both Lambdas share.

The S3 implementation of imgcore's storage port (`imgcdn_aws.s3.S3Store`), CloudWatch EMF
metrics (`Metrics`), structlog set-up (`configure_logging`), and environment-variable parsing
(`Settings`, `ConfigError`). `S3Store` is not re-exported here: importing this package must not
load boto3, so the fallback pays for it only when it builds an S3 store.
"""

from __future__ import annotations

from imgcdn_aws.config import ConfigError, Settings
from imgcdn_aws.emf import Metrics, Unit
from imgcdn_aws.logs import configure_logging

__all__ = ["ConfigError", "Metrics", "Settings", "Unit", "configure_logging"]
