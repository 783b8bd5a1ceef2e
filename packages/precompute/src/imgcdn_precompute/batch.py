"""Process one invocation: route each object event to the service, decide what SQS must retry.

The rule for a message (an SQS message, or a whole bare S3 event):

- acknowledged when every event in it has an `Outcome`, which includes the permanent failures
  the service recorded (a `failed` manifest) or could only log (`rejected`: a key outside the
  layout), an `s3:TestEvent`, and events this worker ignores;
- reported failed (retried by SQS, then moved to the DLQ after the redrive limit) when anything
  raised while handling it: storage faults and throttling, encoder faults, and every unexpected
  exception too. An exception that was not foreseen is a bug or a new kind of fault, and
  acknowledging it would drop the event without a trace; retried, it ends in the DLQ where it
  can be read and redriven once fixed (R18: nothing lost, never nowhere). Retrying is safe
  because the service is idempotent;
- reported failed when its body cannot be parsed (a poisoned message): SQS cannot make it
  parseable, but the DLQ keeps it for a person, while the other messages of the batch go on;
- reported failed without being processed when the invocation is about to run out of time,
  so SQS redelivers it promptly instead of the whole batch timing out; and reported failed
  part-way when, before one of its writes, less is left than a storage write may take (an S3
  call can take ~55 s with the client's retries): what it wrote is not under a manifest yet,
  so nothing is half-visible, and the retry keeps what is there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from imgcdn_aws.emf import Metrics, Unit
from imgcdn_aws.s3 import WORKER_CALL_BUDGET_MS
from imgcdn_precompute.events import EventKind, Invocation, Message, ObjectEvent
from imgcdn_precompute.outcome import Action, DeadlineNear, Outcome, WriteGuard
from imgcdn_precompute.service import PrecomputeService

__all__ = ["BatchProcessor", "BatchResult", "MessageResult"]

WRITE_GUARD_SLACK_MS = 5_000
"""What the write guard keeps beyond one S3 call's worst case: the write's own CPU work (encoding
is done before, but serialising and hashing are not free) and the Lambda's shutdown."""
DEFAULT_WRITE_GUARD_MS = WORKER_CALL_BUDGET_MS + WRITE_GUARD_SLACK_MS
"""Stop before a storage write when less than this is left: one S3 call can stall for
`imgcdn_aws.s3.WORKER_CALL_BUDGET_MS` at worst (the client's own timeouts and retries), and a
Lambda killed mid-batch gets the whole batch retried."""
RENDER_ALLOWANCE_MS = 20_000
"""A message's render before its first write: a 12 MP original's standard set takes 3-7 s on one
vCPU (measured in docs/precompute.md); the rest is room for a slower original."""
DEFAULT_DEADLINE_GUARD_MS = DEFAULT_WRITE_GUARD_MS + RENDER_ALLOWANCE_MS
"""Stop starting messages when less than this is left: a message needs its render
(`RENDER_ALLOWANCE_MS`) and then room for its writes (`DEFAULT_WRITE_GUARD_MS`)."""

log = structlog.get_logger("imgcdn.precompute")


@dataclass(frozen=True, slots=True)
class MessageResult:
    """What became of one message."""

    message_id: str
    outcomes: tuple[Outcome, ...] = ()
    failure: str | None = None
    """Why the message must be retried; None when it is acknowledged."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What became of every message of one invocation."""

    results: tuple[MessageResult, ...]

    @property
    def failed(self) -> list[str]:
        """The ids of the messages SQS must redeliver, in batch order."""
        return [r.message_id for r in self.results if r.failure is not None]


class BatchProcessor:
    """Routes events to a `PrecomputeService` and reports what must be retried."""

    def __init__(
        self,
        service: PrecomputeService,
        *,
        originals_bucket: str | None = None,
        metrics: Metrics | None = None,
        deadline_guard_ms: int = DEFAULT_DEADLINE_GUARD_MS,
        write_guard_ms: int = DEFAULT_WRITE_GUARD_MS,
    ) -> None:
        """Wire the processor.

        Args:
            service: The service over the originals and derivatives stores.
            originals_bucket: The bucket `service` reads; an event about another bucket is a
                wiring mistake and is retried into the DLQ rather than read from the wrong place.
            metrics: Where EMF lines go (stdout by default).
            deadline_guard_ms: See `DEFAULT_DEADLINE_GUARD_MS`.
            write_guard_ms: See `DEFAULT_WRITE_GUARD_MS`.
        """
        self.service = service
        self.originals_bucket = originals_bucket
        self.metrics = metrics or Metrics()
        self.deadline_guard_ms = deadline_guard_ms
        self.write_guard_ms = write_guard_ms

    def process(
        self, invocation: Invocation, remaining_ms: Callable[[], int] | None = None
    ) -> BatchResult:
        """Process every message, in order.

        Args:
            invocation: The parsed event.
            remaining_ms: The Lambda context's `get_remaining_time_in_millis`, if any.
        """
        results: list[MessageResult] = []
        messages: Sequence[Message] = invocation.messages
        for index, message in enumerate(messages):
            if remaining_ms is not None and remaining_ms() < self.deadline_guard_ms:
                deferred = [m.message_id for m in messages[index:]]
                log.warning("deadline_near", deferred=deferred, remaining_ms=remaining_ms())
                reason = "deferred: the invocation was about to time out"
                results.extend(MessageResult(m, failure=reason) for m in deferred)
                break
            results.append(self.process_message(message, self._deadline(remaining_ms)))
        return BatchResult(tuple(results))

    def _deadline(self, remaining_ms: Callable[[], int] | None) -> WriteGuard | None:
        if remaining_ms is None:
            return None
        guard = self.write_guard_ms

        def check() -> None:
            left = remaining_ms()
            if left < guard:
                msg = (
                    f"{left} ms of the invocation left, under the {guard} ms a storage write "
                    "may take; stopped before writing, retry"
                )
                raise DeadlineNear(msg)

        return check

    def process_message(
        self, message: Message, deadline: WriteGuard | None = None
    ) -> MessageResult:
        """Process one message; never raises (see the module docstring).

        Args:
            message: The message.
            deadline: Called before each write (see `PrecomputeService.created`).
        """
        with structlog.contextvars.bound_contextvars(
            message_id=message.message_id, receive_count=message.receive_count
        ):
            if message.error is not None:
                log.error("message_poisoned", reason=message.error)
                self.metrics.emit(
                    {"PoisonedMessages": (1, Unit.COUNT)},
                    properties={"message_id": message.message_id, "reason": message.error},
                )
                return MessageResult(message.message_id, failure=message.error)
            if message.test_event:
                log.info("test_event_ignored")
                return MessageResult(message.message_id)
            outcomes: list[Outcome] = []
            failures: list[str] = []
            for event in message.events:
                try:
                    outcomes.append(self.process_event(event, deadline))
                except Exception as exc:  # noqa: BLE001 - every failure is retried: see docstring
                    failures.append(f"{event.key}: {type(exc).__name__}: {exc}")
                    self._transient(event, exc)
            failure = "; ".join(failures) if failures else None
            return MessageResult(message.message_id, tuple(outcomes), failure)

    def process_event(self, event: ObjectEvent, deadline: WriteGuard | None = None) -> Outcome:
        """Handle one object event.

        Raises:
            Exception: Whatever the service raised; the message must be retried.
        """
        with structlog.contextvars.bound_contextvars(
            key=event.key, event=event.name, sequencer=event.sequencer
        ):
            if self.originals_bucket is not None and event.bucket != self.originals_bucket:
                msg = (
                    f"event is about bucket {event.bucket!r} but this worker reads originals "
                    f"from {self.originals_bucket!r} (check the notification wiring)"
                )
                raise WrongBucket(msg)
            started = time.perf_counter()
            match event.kind:
                case EventKind.CREATED:
                    outcome = self.service.created(
                        event.key, version_id=event.version_id, deadline=deadline
                    )
                case EventKind.REMOVED:
                    outcome = self.service.removed(
                        event.key, version_id=event.version_id, delete_marker=event.delete_marker
                    )
                case EventKind.OTHER:
                    log.info("event_ignored")
                    outcome = Outcome(Action.IGNORED, event.key, reason=f"{event.name} ignored")
            elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
            log.info(
                "event_done",
                action=outcome.action.value,
                version=outcome.version,
                ms=elapsed_ms,
                reason=outcome.reason,
            )
            self._record(outcome, elapsed_ms)
            return outcome

    def _record(self, outcome: Outcome, elapsed_ms: float) -> None:
        values: dict[str, tuple[float, Unit]]
        match outcome.action:
            case Action.RENDERED:
                values = {
                    "Renders": (1, Unit.COUNT),
                    "BytesWritten": (outcome.bytes_written, Unit.BYTES),
                    "RenderMs": (outcome.render_ms, Unit.MILLISECONDS),
                }
            case Action.FAILED | Action.REJECTED:
                values = {
                    "RenderFailures": (1, Unit.COUNT),
                    "BytesWritten": (outcome.bytes_written, Unit.BYTES),
                }
            case Action.SKIPPED:
                values = {"Duplicates": (1, Unit.COUNT)}
            case Action.REMOVED:
                values = {"RemovedVersions": (len(outcome.removed), Unit.COUNT)}
            case Action.GONE:
                values = {"Gone": (1, Unit.COUNT)}
            case Action.IGNORED:
                return
        if outcome.bytes_written:  # a lost race or a rollback may have written some first
            values["BytesWritten"] = (outcome.bytes_written, Unit.BYTES)
        values["EventMs"] = (elapsed_ms, Unit.MILLISECONDS)
        self.metrics.emit(
            values,
            # The tenant is a property, not a dimension: CloudWatch bills every distinct
            # dimension combination as its own custom metric, so a tenant dimension costs per
            # tenant per metric, and the alarms sum over the namespace anyway. Logs Insights
            # still filters and groups these lines by tenant.
            properties={
                "tenant": outcome.image.tenant if outcome.image else None,
                "key": outcome.key,
                "version": outcome.version,
                "action": outcome.action.value,
                "reason": outcome.reason,
            },
        )

    def _transient(self, event: ObjectEvent, error: Exception) -> None:
        log.error(
            "event_failed_will_retry",
            error=type(error).__name__,
            reason=str(error),
            exc_info=error,
        )
        self.metrics.emit(
            {"TransientErrors": (1, Unit.COUNT)},
            properties={"key": event.key, "error": type(error).__name__, "reason": str(error)},
        )


class WrongBucket(RuntimeError):
    """An event names a bucket this worker does not read (a wiring mistake, never acked)."""
