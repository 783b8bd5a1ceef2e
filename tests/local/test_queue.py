"""The local queue redelivers failed messages and dead-letters what keeps failing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from imgcdn_local.queue import PrecomputeQueue, s3_notification


@dataclass
class _Result:
    failed: list[str]


class _Processor:
    """Fails the first `failures` deliveries, records every key it saw."""

    def __init__(self, failures: int, crash: bool = False) -> None:
        self.failures = failures
        self.crash = crash
        self.seen: list[tuple[str, int]] = []

    def process(self, invocation: Any) -> _Result:
        message = invocation.messages[0]
        self.seen.append((message.events[0].key, message.receive_count or 0))
        if len(self.seen) <= self.failures:
            if self.crash:
                raise RuntimeError("worker crashed")
            return _Result([message.message_id])
        return _Result([])


def test_notification_keys_are_encoded_like_s3() -> None:
    body = json.loads(s3_notification("b", "img/acme/red shoe+1%.jpg"))
    raw = body["Records"][0]["s3"]["object"]["key"]
    assert raw == "img/acme/red+shoe%2B1%25.jpg"
    assert unquote_plus(raw) == "img/acme/red shoe+1%.jpg"


def test_failures_are_retried_then_succeed(tmp_path: Path) -> None:
    processor = _Processor(failures=2)
    done: list[str] = []
    q = PrecomputeQueue(processor, tmp_path, backoff_s=0.01, on_done=done.append)  # type: ignore[arg-type]
    q.start()
    q.send(s3_notification("b", "img/acme/x.jpg"))
    assert q.join(timeout=10)
    q.stop()
    assert [count for _, count in processor.seen] == [1, 2, 3]
    assert len(done) == 1
    assert q.dead_letters == []


def test_what_keeps_failing_ends_in_the_dead_letter_folder(tmp_path: Path) -> None:
    processor = _Processor(failures=99, crash=True)
    q = PrecomputeQueue(processor, tmp_path, backoff_s=0.01, max_receives=3)  # type: ignore[arg-type]
    q.start()
    q.send(s3_notification("b", "img/acme/x.jpg"))
    assert q.join(timeout=10)
    q.stop()
    [letter] = q.dead_letters
    record = json.loads(letter.read_text())
    assert record["receives"] == 3
    assert "worker crashed" in record["reason"]
    assert "img/acme/x.jpg" in record["body"]
