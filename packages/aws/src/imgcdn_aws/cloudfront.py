"""The CloudFront invalidation API behind imgcdn's `Invalidator` port (takedown, R8, R10).

`CreateInvalidation` refusals that waiting cures (`TooManyInvalidationsInProgress`, throttling,
5xx) become `InvalidationBusy` for the caller's queue to back off on; everything else (a wrong
distribution id, no permission) is a `CloudFrontError` whose message says what to fix. The
client makes one attempt per call: the queue owns retries, so its quota accounting stays true.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["CloudFrontError", "CloudFrontInvalidator", "InvalidationBusy", "cloudfront_client"]

_BUSY = {
    "TooManyInvalidationsInProgress",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalError",
}
_CONFIG = Config(
    retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=20
)


class InvalidationBusy(Exception):
    """CloudFront refused for now; the same request may succeed later."""


class CloudFrontError(Exception):
    """CloudFront refused the request for good; the message names the cause."""


@functools.cache
def cloudfront_client(endpoint_url: str | None = None) -> Any:
    """One CloudFront client per process (the API is global; its endpoint is us-east-1)."""
    return boto3.session.Session().client(
        "cloudfront", endpoint_url=endpoint_url, region_name="us-east-1", config=_CONFIG
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class CloudFrontInvalidator:
    """Invalidations of one distribution (the `imgcdn_ops.invalidation.Invalidator` port).

    `busy` is the exception raised when CloudFront refuses for now: the caller's own
    `InvalidationBusy` class, so that this adapter needs nothing from the caller's package.
    """

    def __init__(
        self,
        distribution_id: str,
        *,
        client: Any = None,
        busy: type[Exception] = InvalidationBusy,
    ) -> None:
        """Use `distribution_id`; the client is built on first use unless one is given."""
        self.distribution_id = distribution_id
        self._client = client
        self._busy = busy

    @property
    def client(self) -> Any:
        """The boto3 client, built lazily."""
        if self._client is None:
            self._client = cloudfront_client()
        return self._client

    def _raise(self, exc: Exception, what: str) -> None:
        if isinstance(exc, ClientError):
            code = _code(exc)
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _BUSY or status >= 500:
                raise self._busy(f"{what}: {code}") from exc
            if code == "NoSuchDistribution":
                msg = (
                    f"distribution {self.distribution_id!r} does not exist in this account; "
                    "allowed: the stack's DistributionId output"
                )
                raise CloudFrontError(msg) from None
            if code in ("AccessDenied", "AccessDeniedException"):
                msg = (
                    f"{what} was denied for distribution {self.distribution_id}; allowed: "
                    "credentials with cloudfront:CreateInvalidation and GetInvalidation on it"
                )
                raise CloudFrontError(msg) from None
            msg = f"{what} failed for distribution {self.distribution_id}: {code}: {exc}"
            raise CloudFrontError(msg) from None
        raise self._busy(f"{what}: {type(exc).__name__}") from exc

    def create(self, paths: Sequence[str], reference: str) -> str:
        """Start one invalidation of `paths`; its id."""
        try:
            response = self.client.create_invalidation(
                DistributionId=self.distribution_id,
                InvalidationBatch={
                    "Paths": {"Quantity": len(paths), "Items": list(paths)},
                    "CallerReference": reference,
                },
            )
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "CreateInvalidation")
            raise  # pragma: no cover - _raise always raises
        return str(response["Invalidation"]["Id"])

    def status(self, invalidation_id: str) -> str:
        """`InProgress` or `Completed` (CloudFront's spelling, whatever case an emulator uses)."""
        try:
            response = self.client.get_invalidation(
                DistributionId=self.distribution_id, Id=invalidation_id
            )
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "GetInvalidation")
            raise  # pragma: no cover - _raise always raises
        status = str(response["Invalidation"]["Status"])
        return "Completed" if status.lower() == "completed" else "InProgress"
