"""The worker's time guards derive from the S3 client's own worst case (one source)."""

from __future__ import annotations

import io

import pytest
from tests.precompute.conftest import SMALL_POLICY, EventFactory, make_photo

from imgcdn_aws.emf import Metrics
from imgcdn_aws.s3 import WORKER_CALL_BUDGET_MS, s3_client
from imgcdn_precompute.batch import (
    DEFAULT_DEADLINE_GUARD_MS,
    DEFAULT_WRITE_GUARD_MS,
    BatchProcessor,
)
from imgcdn_precompute.events import parse_invocation
from imgcdn_precompute.service import PrecomputeService
from imgcore.storage import MemoryStore


def test_the_worker_budget_is_the_clients_real_botocore_settings() -> None:
    config = s3_client("http://127.0.0.1:9").meta.config
    attempts = config.retries["total_max_attempts"]
    # standard mode: before retry i (0-based) it waits up to 2 ** i s (botocore's
    # ExponentialBackoff, 1 s base for throttling, capped at 20 s)
    backoff_s = sum(min(2**i, 20) for i in range(attempts - 1))
    stall_ms = (attempts * (config.connect_timeout + config.read_timeout) + backoff_s) * 1000
    assert stall_ms == WORKER_CALL_BUDGET_MS


def test_the_guards_leave_room_for_one_call_and_one_render() -> None:
    assert DEFAULT_WRITE_GUARD_MS > WORKER_CALL_BUDGET_MS
    assert DEFAULT_DEADLINE_GUARD_MS > DEFAULT_WRITE_GUARD_MS
    processor = BatchProcessor(PrecomputeService(MemoryStore(), MemoryStore()))
    assert processor.write_guard_ms == DEFAULT_WRITE_GUARD_MS
    assert processor.deadline_guard_ms == DEFAULT_DEADLINE_GUARD_MS


@pytest.mark.parametrize(
    ("left_at_write_ms", "written"),
    [(WORKER_CALL_BUDGET_MS, False), (DEFAULT_WRITE_GUARD_MS, True)],
)
def test_a_write_stops_when_less_than_one_s3_call_is_left(
    left_at_write_ms: int, written: bool, events: EventFactory
) -> None:
    key = "img/acme/guarded.jpg"
    originals, derivatives = MemoryStore(), MemoryStore()
    originals.put(key, make_photo(1, (320, 240)))
    service = PrecomputeService(originals, derivatives, policy=SMALL_POLICY)
    processor = BatchProcessor(
        service, originals_bucket=events.originals, metrics=Metrics(io.StringIO())
    )
    # enough to start the message; then what is left when its writes come
    answers = iter([DEFAULT_DEADLINE_GUARD_MS])

    def remaining_ms() -> int:
        return next(answers, left_at_write_ms)

    result = processor.process(parse_invocation(events.put(key)), remaining_ms)

    assert (result.failed == []) is written
    assert bool(list(derivatives.list())) is written
