"""The console's takedown button: `imgcdn_ops.takedown.take_down` over the stack's own ports.

The same library function `imgcdn takedown` runs, with the stack's stores, its audit store and
its edge cache's invalidation API (called in-process, not over HTTP), so a takedown from the
page deletes, invalidates, sweeps, verifies and writes the same audit record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imgcdn_local.invalidations import InvalidationRefused, LocalInvalidations
from imgcdn_local.stack import Stack
from imgcdn_ops.invalidation import InvalidationBusy, InvalidationQueue
from imgcdn_ops.takedown import TakedownError, TakedownService, parse_target, take_down
from imgcore import ImgcoreError
from imgcore.storage import VersionListing

__all__ = ["LocalInvalidator", "TakedownRefused", "take_down_here"]


class TakedownRefused(ImgcoreError):
    """The console's takedown request is incomplete or names no image; says what is allowed."""

    http_status = 400
    permanent = True


class LocalInvalidator:
    """`imgcdn_ops.invalidation.Invalidator` over the stack's `LocalInvalidations`."""

    def __init__(self, invalidations: LocalInvalidations) -> None:
        """Invalidate through `invalidations`."""
        self.invalidations = invalidations

    def create(self, paths: Sequence[str], reference: str) -> str:
        """Start one invalidation; a quota refusal is `InvalidationBusy`, as CloudFront's 429."""
        try:
            inv_id, _ = self.invalidations.create(list(paths), reference)
        except InvalidationRefused as exc:
            if exc.status == 429:
                raise InvalidationBusy(str(exc)) from None
            raise
        return inv_id

    def status(self, invalidation_id: str) -> str:
        """`InProgress` or `Completed`."""
        return self.invalidations.status(invalidation_id)


def take_down_here(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    """Take down the image `body` names; returns the report (the audit record) as a dict.

    `body`: `{"target": "TENANT/ID", "class": "img" | "ugc" | null, "reason": ..., "actor": ...}`.

    Raises:
        TakedownRefused: A field is missing or wrong, or the stack keeps no audit store.
    """
    if stack.audit is None:
        msg = "this stack keeps no audit store, so it cannot record a takedown"
        raise TakedownRefused(msg)
    originals, derivatives = stack.originals, stack.derivatives
    if not isinstance(originals, VersionListing) or not isinstance(derivatives, VersionListing):
        msg = "this stack's stores cannot list versions, so a takedown cannot prove them gone"
        raise TakedownRefused(msg)
    reason, actor = str(body.get("reason") or ""), str(body.get("actor") or "")
    try:
        target = parse_target(str(body.get("target") or ""), body.get("class") or None)
        report = take_down(
            target,
            reason=reason,
            actor=actor,
            service=TakedownService(originals, derivatives, stack.audit, policy=stack.policy),
            queue=InvalidationQueue(LocalInvalidator(stack.invalidations), poll_interval=0.1),
            wait=True,
            render_window_s=float(stack.description.get("render_window_seconds", 5.0)),
        )
    except TakedownError as exc:
        raise TakedownRefused(str(exc)) from None
    result = report.as_dict()
    result["summary"] = report.summary()
    result["complete"] = report.complete
    return result
