"""The local stand-in for S3 notifications -> SQS (+ DLQ) -> the precompute Lambda.

Each upload becomes an S3-shaped `ObjectCreated` notification (key URL-encoded the way S3
encodes it) in an in-process queue; a worker thread hands it to the real precompute
`BatchProcessor` as a one-message SQS batch. A message the processor reports failed is
redelivered with backoff up to `max_receives` times, then written to `dead-letter/` under the
data folder as JSON: nothing is dropped (R18). On start, the stack (`Stack.resume`) re-enqueues
its pending markers and every original version with neither a manifest nor a dead-letter
record, so a crash or restart between upload and render loses nothing either.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import structlog

from imgcdn_precompute.batch import BatchProcessor
from imgcdn_precompute.events import parse_invocation

__all__ = ["PrecomputeQueue", "s3_notification"]

log = structlog.get_logger("imgcdn.local.queue")


def s3_notification(
    bucket: str, key: str, *, event: str = "ObjectCreated:Put", **extra: Any
) -> str:
    """An S3 event notification body for one object, key encoded as S3 encodes it."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": event,
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), **extra},
        },
    }
    return json.dumps({"Records": [record]})


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    body: str = field(compare=False)
    receives: int = field(compare=False, default=0)


class PrecomputeQueue:
    """A queue with redelivery and a dead-letter folder, drained by worker threads."""

    def __init__(
        self,
        processor: BatchProcessor,
        dead_letter_dir: Path,
        *,
        workers: int = 1,
        max_receives: int = 3,
        backoff_s: float = 0.5,
        on_done: Callable[[str], None] | None = None,
    ) -> None:
        """Wire the queue; call `start()` to run the workers."""
        self._processor = processor
        self._dead_letters = dead_letter_dir
        self._dead_letters.mkdir(parents=True, exist_ok=True)
        self._queue: queue.PriorityQueue[_Delivery] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._workers = [
            threading.Thread(target=self._work, name=f"precompute-{i}", daemon=True)
            for i in range(workers)
        ]
        self._max_receives = max_receives
        self._backoff_s = backoff_s
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._on_done = on_done
        self.processed = 0
        """Deliveries the worker finished (each renders one original's standard set)."""
        self.process_ms = 0.0
        """Their total time in the worker, milliseconds."""

    def set_on_done(self, callback: Callable[[str], None]) -> None:
        """Call `callback(body)` when a message is processed or dead-lettered."""
        self._on_done = callback

    def start(self) -> None:
        """Start the worker threads."""
        for worker in self._workers:
            worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the message in hand, then stop (queued messages are re-enqueued on start)."""
        self._stopping.set()
        for worker in self._workers:
            worker.join(timeout)

    def send(self, body: str) -> None:
        """Enqueue one notification body."""
        with self._idle:
            self._in_flight += 1
        self._queue.put(_Delivery(time.monotonic(), next(self._seq), body))

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every message is processed or dead-lettered; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    @property
    def depth(self) -> int:
        """Messages sent and not yet processed or dead-lettered (queued, in hand or retrying)."""
        with self._idle:
            return self._in_flight

    @property
    def dead_letters(self) -> list[Path]:
        """The dead-letter records written so far."""
        return sorted(self._dead_letters.glob("*.json"))

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                delivery = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            wait = delivery.due - time.monotonic()
            if wait > 0:
                self._queue.put(delivery)
                time.sleep(min(wait, 0.2))
                continue
            self._deliver(delivery)

    def _deliver(self, delivery: _Delivery) -> None:
        delivery.receives += 1
        message_id = f"local-{delivery.seq}"
        event = {
            "Records": [
                {
                    "messageId": message_id,
                    "receiptHandle": message_id,
                    "body": delivery.body,
                    "attributes": {"ApproximateReceiveCount": str(delivery.receives)},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:imgcdn-local",
                }
            ]
        }
        started = time.perf_counter()
        try:
            failed = self._processor.process(parse_invocation(event)).failed
            reason = "reported failed by the precompute worker" if failed else None
        except Exception as exc:  # noqa: BLE001 - a worker crash must become a retry, never a loss
            reason = f"{type(exc).__name__}: {exc}"
        with self._idle:
            self.processed += 1
            self.process_ms += (time.perf_counter() - started) * 1000
        if reason is None:
            self._finish(delivery.body)
            return
        if delivery.receives < self._max_receives:
            log.warning("precompute_retry", receives=delivery.receives, reason=reason)
            delivery.due = time.monotonic() + self._backoff_s * 2 ** (delivery.receives - 1)
            self._queue.put(delivery)
            return
        record = {"body": delivery.body, "receives": delivery.receives, "reason": reason}
        path = self._dead_letters / f"{int(time.time() * 1000)}-{delivery.seq}.json"
        path.write_text(json.dumps(record, indent=1))
        log.error("precompute_dead_letter", path=str(path), reason=reason)
        self._finish(delivery.body)

    def _finish(self, body: str) -> None:
        if self._on_done is not None:
            self._on_done(body)
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()
