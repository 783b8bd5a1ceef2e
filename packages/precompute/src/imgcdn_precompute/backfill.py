"""Backfill: render what is missing for an existing catalogue, with N worker processes.

Every original is handed to the same `PrecomputeService.created` the Lambda worker runs, so the
derivatives store is the only journal: a version whose manifest exists is skipped (one read of
the original, no render), and an interrupted run leaves at worst derivatives without a manifest,
which the next run renders again (byte-identical) and completes. Interrupting and rerunning is
therefore always safe and never duplicates a manifest.

Workers are processes (`spawn`ed: no inherited libvips or boto3 state), one libvips thread
each, so N workers use N cores. They ignore Ctrl-C: the first Ctrl-C stops handing out
originals and lets the ones in progress finish; a second one terminates the workers at once
(the store's atomic writes and the manifest-last order make that safe too).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from imgcdn_aws.logs import configure_logging
from imgcdn_precompute.service import Action, PrecomputeService
from imgcdn_precompute.stores import open_store
from imgcore.keys import ContentClass, validate_tenant
from imgcore.policy import DEFAULT_POLICY, Policy
from imgcore.storage import ObjectStore

__all__ = ["Backfill", "Summary", "TaskResult", "list_originals"]

ERROR = "error"
"""The action of a task that raised: a transient fault or a bug; the next run retries it."""
_MAX_PROBLEMS = 100


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What became of one original."""

    key: str
    action: str
    reason: str | None = None
    ms: float = 0.0


@dataclass(slots=True)
class Summary:
    """The tally of a backfill run."""

    total: int = 0
    rendered: int = 0
    skipped: int = 0
    failed: int = 0
    rejected: int = 0
    gone: int = 0
    errors: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    problems: list[dict[str, str | None]] = field(default_factory=list)
    """Failed, rejected and errored originals with the reason (the first 100)."""

    @property
    def done(self) -> int:
        """Originals with a result (the rest were not reached)."""
        return self.rendered + self.skipped + self.failed + self.rejected + self.gone + self.errors

    def add(self, result: TaskResult) -> None:
        """Count one result."""
        match result.action:
            case Action.RENDERED:
                self.rendered += 1
            case Action.SKIPPED:
                self.skipped += 1
            case Action.FAILED:
                self.failed += 1
            case Action.REJECTED:
                self.rejected += 1
            case Action.GONE:
                self.gone += 1
            case _:
                self.errors += 1
        problem = result.action in (Action.FAILED, Action.REJECTED, ERROR)
        if problem and len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(
                {"key": result.key, "action": result.action, "reason": result.reason}
            )

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return {**asdict(self), "done": self.done, "not_reached": self.total - self.done}


def list_originals(store: ObjectStore, tenant: str | None = None) -> Iterator[str]:
    """The keys of the originals to consider: all, or one tenant's in every content class."""
    if tenant is None:
        for info in store.list(""):
            yield info.key
        return
    validate_tenant(tenant)
    for content_class in ContentClass:
        for info in store.list(f"{content_class.value}/{tenant}/"):
            yield info.key


@dataclass(frozen=True, slots=True)
class Backfill:
    """A backfill from one store of originals into one store of derivatives (picklable)."""

    originals: str
    """`s3://bucket` or a directory (see `imgcdn_precompute.stores.open_store`)."""
    derivatives: str
    endpoint_url: str | None = None
    policy_json: str = DEFAULT_POLICY.to_json()

    @property
    def policy(self) -> Policy:
        """The policy to render with."""
        return Policy.model_validate_json(self.policy_json)

    def service(self) -> PrecomputeService:
        """A service over the two stores."""
        return PrecomputeService(
            open_store(self.originals, endpoint_url=self.endpoint_url),
            open_store(self.derivatives, endpoint_url=self.endpoint_url, create=True),
            policy=self.policy,
        )

    def keys(self, tenant: str | None = None) -> list[str]:
        """The originals to process, in key order."""
        return list(
            list_originals(open_store(self.originals, endpoint_url=self.endpoint_url), tenant)
        )

    def run(
        self,
        *,
        tenant: str | None = None,
        workers: int = 1,
        on_total: Callable[[int], None] | None = None,
        on_result: Callable[[TaskResult], None] | None = None,
        log_level: int = logging.WARNING,
    ) -> Summary:
        """Process every original that needs it.

        Args:
            tenant: Only this tenant's originals.
            workers: Worker processes; 0 runs in this process (for debugging and tests).
            on_total: Called once with the number of originals found.
            on_result: Called with each result as it arrives (in completion order).
            log_level: What worker processes log (to stderr; stdout is the command's result).

        Returns:
            The tally; `interrupted` when Ctrl-C stopped the run early.
        """
        started = time.perf_counter()
        summary = Summary()
        keys = self.keys(tenant)
        summary.total = len(keys)
        if on_total:
            on_total(len(keys))

        def record(result: TaskResult) -> None:
            summary.add(result)
            if on_result:
                on_result(result)

        try:
            if workers <= 0:
                service = self.service()
                for key in keys:
                    record(process_one(service, key))
            else:
                self._run_pool(keys, workers, record, log_level)
        except KeyboardInterrupt:
            summary.interrupted = True
        summary.seconds = round(time.perf_counter() - started, 2)
        return summary

    def _run_pool(
        self, keys: list[str], workers: int, record: Callable[[TaskResult], None], log_level: int
    ) -> None:
        executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self, log_level),
        )
        pending: dict[Future[TaskResult], str] = {}
        todo = iter(keys)

        def refill() -> None:
            # A bounded window: a million keys are not a million futures.
            while len(pending) < 2 * workers and (key := next(todo, None)) is not None:
                pending[executor.submit(_task, key)] = key

        def collect(futures: set[Future[TaskResult]]) -> None:
            for future in futures:
                key = pending.pop(future)
                if future.cancelled():
                    continue
                try:
                    record(future.result())
                except Exception as exc:  # noqa: BLE001 - a dead worker (OOM kill) is an error
                    record(TaskResult(key, ERROR, f"{type(exc).__name__}: {exc}"))

        try:
            refill()
            while pending:
                done, _ = wait(set(pending), return_when=FIRST_COMPLETED)
                collect(done)
                refill()
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            try:  # first Ctrl-C: let the originals in progress finish
                while running := {f for f in pending if not f.cancelled()}:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    collect(done)
            except KeyboardInterrupt:  # second Ctrl-C: stop now
                _terminate(executor)
            raise
        finally:
            executor.shutdown(wait=True, cancel_futures=True)


def process_one(service: PrecomputeService, key: str) -> TaskResult:
    """Run the service on one original; a raised error becomes an `error` result."""
    started = time.perf_counter()
    try:
        outcome = service.created(key)
    except Exception as exc:  # noqa: BLE001 - reported per original; the run goes on
        return TaskResult(key, ERROR, f"{type(exc).__name__}: {exc}", _ms(started))
    return TaskResult(key, outcome.action.value, outcome.reason, _ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


_worker_service: PrecomputeService | None = None


def _init_worker(backfill: Backfill, log_level: int) -> None:
    """Set up one worker process: one libvips thread, Ctrl-C left to the parent."""
    global _worker_service  # noqa: PLW0603 - one service per worker process, built once
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(json=False, level=log_level)
    # Before libvips loads (the service imports pixels on first render): N workers, N threads.
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    _worker_service = backfill.service()


def _task(key: str) -> TaskResult:
    if _worker_service is None:  # pragma: no cover - the initializer always ran
        msg = "worker was not initialised"
        raise RuntimeError(msg)
    return process_one(_worker_service, key)


def _terminate(executor: ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor has no public way to kill its workers before Python 3.14
    # (terminate_workers); its `_processes` map is the documented-in-source fallback.
    processes: dict[int, Any] = getattr(executor, "_processes", None) or {}
    for process in list(processes.values()):
        process.terminate()
