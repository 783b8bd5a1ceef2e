"""Bulk takedown: thousands of ids from a file, one invalidation queue, a resumable journal.

The input has one `TENANT/IMAGE_ID` a line, optionally a TAB and a reason for that line (the
command's `--reason` otherwise); blank lines and lines starting with `#` are ignored. A line
that does not name an image, names an unknown tenant, or repeats an earlier line is skipped and
reported with its line number; nothing is deleted for it.

The run goes in phases, so that the render window is waited out once for the whole run, not
once per id: remove every image (bounded concurrency; each path goes to the queue as its image
is removed), flush the queue, wait out the render window after the last removal, sweep every
image and send the second wave of invalidations, then verify and write one audit record per
image. Every step is appended to the journal (`FILE.journal`, JSON lines, flushed to disk)
before the run moves on, and a rerun reads it: a run killed at any point finishes on rerun,
redoing no finished image and missing none. The deletions of a killed run are kept in the
journal (the plan is written before anything is deleted), so each image's audit record lists
everything deleted for it, whichever run deleted it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from imgcdn_ops.invalidation import COMPLETED, Invalidation, InvalidationQueue
from imgcdn_ops.takedown import (
    DEFAULT_RENDER_WINDOW_S,
    Removal,
    TakedownError,
    TakedownReport,
    TakedownService,
    Target,
    audit_key,
    new_takedown_id,
    parse_target,
)
from imgcore.keys import ContentClass, ImageRef
from imgcore.storage import ObjectVersion

__all__ = ["BulkReport", "Journal", "Request", "read_requests", "run_bulk"]


@dataclass(frozen=True, slots=True)
class Request:
    """One line of the input that names an image."""

    line: int
    target: Target
    reason: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """One line of the input that was not acted on, and why."""

    line: int
    text: str
    why: str


def read_requests(
    path: Path,
    *,
    reason: str | None,
    content_class: str | None,
    tenants: frozenset[str] | None,
) -> tuple[list[Request], list[Skipped]]:
    """The requests of an input file, and the lines skipped (with reasons).

    Raises:
        TakedownError: The file cannot be read, or names no image at all.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read {path}: {exc}; allowed: a UTF-8 text file, one TENANT/IMAGE_ID a line"
        raise TakedownError(msg) from None
    requests: list[Request] = []
    skipped: list[Skipped] = []
    first: dict[Target, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        name, tab, line_reason = raw.partition("\t")
        why = (line_reason.strip() if tab else "") or (reason or "").strip()
        try:
            target = parse_target(name, content_class, tenants=tenants)
        except TakedownError as exc:
            skipped.append(Skipped(number, raw, str(exc)))
            continue
        if not why:
            skipped.append(Skipped(number, raw, "no reason: give --reason or a TAB and a reason"))
            continue
        if target in first:
            skipped.append(Skipped(number, raw, f"duplicate of line {first[target]}"))
            continue
        first[target] = number
        requests.append(Request(number, target, why))
    if not requests:
        msg = f"{path} names no image to take down; allowed: one TENANT/IMAGE_ID a line"
        if skipped:
            msg += f" ({len(skipped)} line(s) skipped, the first: line {skipped[0].line}: "
            msg += f"{skipped[0].why})"
        raise TakedownError(msg)
    return requests, skipped


def _version(record: Mapping[str, Any]) -> ObjectVersion:
    return ObjectVersion(
        str(record["key"]),
        record.get("version_id"),
        int(record.get("bytes", 0)),
        delete_marker=bool(record.get("delete_marker")),
    )


def _removal_from(image: ImageRef, record: Mapping[str, Any]) -> Removal:
    return Removal(
        image,
        [_version(v) for v in record.get("originals", ())],
        [_version(v) for v in record.get("derivatives", ())],
        float(record.get("gone_at", 0.0)),
        [_version(v) for v in record.get("replica", ())],
    )


def _merge(into: Removal, more: Removal) -> None:
    seen = {(v.key, v.version_id) for v in (*into.originals, *into.derivatives)}
    into.originals += [v for v in more.originals if (v.key, v.version_id) not in seen]
    into.derivatives += [v for v in more.derivatives if (v.key, v.version_id) not in seen]
    replicated = {(v.key, v.version_id) for v in into.replica}
    into.replica += [v for v in more.replica if (v.key, v.version_id) not in replicated]
    into.gone_at = max(into.gone_at, more.gone_at)


def _image_key(image: ImageRef) -> str:
    return image.source_key


class Journal:
    """An append-only JSON-lines file, each line flushed to disk before the run moves on."""

    def __init__(self, path: Path) -> None:
        """Open (and create) the journal at `path`."""
        self.path = path
        self.entries: list[dict[str, Any]] = []
        if path.exists():
            for raw in path.read_text(encoding="utf-8").splitlines():
                try:
                    self.entries.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue  # a line torn by a kill: its step is redone
        self._handle: TextIO = path.open("a", encoding="utf-8")

    def write(self, event: str, *, sync: bool = True, **fields: Any) -> None:
        """Append one entry; flush it to disk unless `sync` is False (then `sync()` does)."""
        entry = {"event": event, "at": datetime.now(UTC).isoformat(), **fields}
        self._handle.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        self.entries.append(entry)
        if sync:
            self.sync()

    def sync(self) -> None:
        """Flush what was written to disk."""
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def of(self, event: str) -> Iterator[dict[str, Any]]:
        """The entries of one kind, in order."""
        return (e for e in self.entries if e.get("event") == event)


@dataclass(slots=True)
class BulkReport:
    """What a bulk run did: counts, failures, skipped lines, invalidations."""

    requested: int
    done: list[dict[str, Any]] = field(default_factory=list)
    already_done: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    invalidations: list[Invalidation] = field(default_factory=list)
    journal: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "requested": self.requested,
            "done": len(self.done),
            "already_done": self.already_done,
            "failed": self.failed,
            "skipped": [{"line": s.line, "text": s.text, "why": s.why} for s in self.skipped],
            "invalidations": [
                {"id": i.id, "status": i.status, "paths": len(i.paths), "wave": i.wave}
                for i in self.invalidations
            ],
            "journal": self.journal,
            "audit_keys": [d["audit_key"] for d in self.done],
        }

    def summary(self) -> str:
        """A few lines for a person."""
        waves = {1: 0, 2: 0}
        for inv in self.invalidations:
            waves[inv.wave] = waves.get(inv.wave, 0) + len(inv.paths)
        completed = sum(1 for i in self.invalidations if i.status == COMPLETED)
        lines = [
            f"takedown: {len(self.done)} image(s) done now, {self.already_done} done before, "
            f"{len(self.failed)} failed, {len(self.skipped)} line(s) skipped",
            f"  invalidations {len(self.invalidations)} ({completed} completed): "
            f"{waves[1]} path(s) at once, {waves.get(2, 0)} after the render window",
            f"  journal  {self.journal}",
        ]
        lines += [f"  FAILED  line {f['line']} {f['target']}: {f['error']}" for f in self.failed]
        lines += [f"  skipped line {s.line}: {s.why}" for s in self.skipped]
        return "\n".join(lines)


class _Progress:
    """A progress bar on stderr, redrawn at most once a second (stdout stays for the result).

    On a terminal the line is redrawn in place; otherwise one line a second is appended, so a
    log of the run (CI, `nohup`) shows its progress too.
    """

    WIDTH = 30

    def __init__(self, stream: TextIO | None, total: int) -> None:
        self.stream = stream
        self.total = total
        self._last = 0.0
        self._tty = bool(stream is not None and stream.isatty())

    def show(self, phase: str, done: int, queue: InvalidationQueue, *, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if not force and now - self._last < 1.0:
            return
        self._last = now
        filled = self.WIDTH * done // max(1, self.total)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        sent = sum(len(i.paths) for i in queue.created)
        busy = sum(len(i.paths) for i in queue.in_progress)
        line = (
            f"takedown [{bar}] {done}/{self.total} {phase} · invalidated {sent} path(s), "
            f"{busy} in progress, {len(queue.pending)} waiting"
        )
        self.stream.write(("\r\x1b[K" + line) if self._tty else line + "\n")
        if self._tty and force:
            self.stream.write("\n")
        self.stream.flush()


def run_bulk(
    requests: Sequence[Request],
    *,
    actor: str,
    service: TakedownService,
    queue: InvalidationQueue,
    journal: Journal,
    skipped: Sequence[Skipped] = (),
    wait_for_cdn: bool = False,
    render_window_s: float = DEFAULT_RENDER_WINDOW_S,
    workers: int = 8,
    progress: TextIO | None = sys.stderr,
    sleep: Callable[[float], None] = time.sleep,
    wait_timeout_s: float = 3600.0,
) -> BulkReport:
    """Take down every requested image (see the module docstring).

    Args:
        requests: The images, from `read_requests`.
        actor: Who asked; in every audit record.
        service: The stores and the audit store.
        queue: The CDN invalidation queue, driven from this thread only.
        journal: The run's journal; read to resume, appended to as the run goes.
        skipped: Lines of the input not acted on (reported).
        wait_for_cdn: Wait until every invalidation is `Completed` before the audit records.
        render_window_s: How long after an original is gone a render in flight may still write.
        workers: Images removed, swept or verified at once.
        progress: Where the status line goes (None: nowhere).
        sleep: Injected for tests.
        wait_timeout_s: How long `wait_for_cdn` waits at most.
    """
    run = _BulkRun(
        requests,
        actor=actor,
        service=service,
        queue=queue,
        journal=journal,
        render_window_s=render_window_s,
        progress=progress,
    )
    report = BulkReport(len(requests), skipped=list(skipped), journal=str(journal.path))
    report.already_done = len(requests) - len(run.todo)
    with ThreadPoolExecutor(max(1, workers), "imgcdn-bulk") as pool:
        run.remove_all(pool)
        run.wait_out_render_window(sleep)
        run.sweep_all(pool)
        cdn_problem = None
        if wait_for_cdn:
            try:
                queue.wait(deadline=queue.clock() + wait_timeout_s)
            except TimeoutError as exc:
                cdn_problem = f"CloudFront: {exc} after {wait_timeout_s:.0f} s"
        report.done = run.verify_and_audit(pool, waited=wait_for_cdn, cdn_problem=cdn_problem)
    report.failed = [
        {"line": r.line, "target": r.target.name, "error": run.failures[r.target.name]}
        for r in run.todo
        if r.target.name in run.failures
    ]
    report.invalidations = list(queue.created)
    return report


class _BulkRun:
    """The state of one bulk run, rebuilt from the journal, and its phases."""

    def __init__(
        self,
        requests: Sequence[Request],
        *,
        actor: str,
        service: TakedownService,
        queue: InvalidationQueue,
        journal: Journal,
        render_window_s: float,
        progress: TextIO | None,
    ) -> None:
        self.actor = actor
        self.service = service
        self.queue = queue
        self.journal = journal
        self.render_window_s = render_window_s
        self.by_key = {_image_key(i): i for r in requests for i in r.target.images}
        self.removed: dict[str, Removal] = {}
        self.swept: dict[str, Removal] = {}
        self.started: dict[str, str] = {}
        self.failures: dict[str, str] = {}
        done = {e["target"] for e in journal.of("done")}
        for entry in journal.of("plan"):  # a killed run's plan: what it may have deleted
            if (image := self.by_key.get(entry["image"])) is not None:
                self._merge_removed(image, entry)
                self.started.setdefault(f"{image.tenant}/{image.image_id}", str(entry["at"]))
        self.finished = {e["image"] for e in journal.of("removed")}
        for entry in journal.of("removed"):
            if (image := self.by_key.get(entry["image"])) is not None:
                self._merge_removed(image, entry)
        for entry in journal.of("swept"):
            if (image := self.by_key.get(entry["image"])) is not None:
                self.swept[entry["image"]] = _removal_from(image, entry)
        for entry in journal.of("invalidation"):
            queue.adopt(
                Invalidation(entry["id"], tuple(entry["paths"]), wave=int(entry.get("wave", 1)))
            )
        queue.on_created = lambda inv: journal.write(
            "invalidation", id=inv.id, paths=list(inv.paths), wave=inv.wave
        )
        self.todo = [r for r in requests if r.target.name not in done]
        self.show = _Progress(progress, len(self.todo))
        for r in self.todo:  # removed by an earlier run: the path goes now, if it was not sent
            for image in r.target.images:
                if _image_key(image) in self.finished:
                    queue.submit([image.invalidation_path])

    def _merge_removed(self, image: ImageRef, entry: Mapping[str, Any]) -> None:
        key = _image_key(image)
        _merge(self.removed.setdefault(key, Removal(image)), _removal_from(image, entry))

    def _images(self, skip: set[str] | dict[str, Removal]) -> Iterator[tuple[Request, ImageRef]]:
        for r in self.todo:
            if r.target.name in self.failures:
                continue
            for image in r.target.images:
                if _image_key(image) not in skip:
                    yield r, image

    def _drive(
        self,
        futures: Mapping[Future[Any], tuple[Request, Any]],
        phase: str,
        on_done: Callable[[tuple[Request, Any], Any], None],
    ) -> None:
        """Handle results as they come, in this thread; keep the queue moving meanwhile."""
        count = 0
        pending = set(futures)
        while pending:
            ready, pending = wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)
            for future in ready:
                item = futures[future]
                try:
                    on_done(item, future.result())
                except Exception as exc:  # noqa: BLE001 - one image's fault fails that image only
                    self.failures[item[0].target.name] = f"{type(exc).__name__}: {exc}"
                count += 1
            self.journal.sync()  # one flush to disk per round of results, not one per line
            self.queue.step()
            self.show.show(phase, count, self.queue)
        self.show.show(phase, count, self.queue, force=True)

    def remove_all(self, pool: ThreadPoolExecutor) -> None:
        """Plan (journaled before anything is deleted), remove, queue each image's path."""

        def planned(item: tuple[Request, ImageRef], plan: Removal) -> None:
            self.journal.write("plan", sync=False, image=_image_key(item[1]), **plan.as_dict())
            self.started.setdefault(item[0].target.name, self.journal.entries[-1]["at"])

        def removed(item: tuple[Request, ImageRef], removal: Removal) -> None:
            key = _image_key(item[1])
            self.journal.write(
                "removed", sync=False, image=key, gone_at=removal.gone_at, **removal.as_dict()
            )
            _merge(self.removed.setdefault(key, Removal(item[1])), removal)
            self.queue.submit([item[1].invalidation_path])

        plans = {pool.submit(self.service.plan, i): (r, i) for r, i in self._images(self.finished)}
        self._drive(plans, "planned", planned)
        removals = {
            pool.submit(self.service.remove, i): (r, i) for r, i in self._images(self.finished)
        }
        self._drive(removals, "removed", removed)
        self.queue.flush()

    def wait_out_render_window(self, sleep: Callable[[float], None]) -> None:
        """Until the render window after the last removal has passed (the queue keeps going)."""
        last = max((r.gone_at for r in self.removed.values()), default=0.0)
        while (left := last + self.render_window_s - self.service.wall_clock()) > 0:
            self.queue.step()
            self.show.show("waiting out the render window", 0, self.queue)
            sleep(min(left, 0.5))

    def sweep_all(self, pool: ThreadPoolExecutor) -> None:
        """Delete what renders in flight stored; the second wave of invalidations."""

        def swept(item: tuple[Request, ImageRef], removal: Removal) -> None:
            key = _image_key(item[1])
            self.journal.write(
                "swept", sync=False, image=key, gone_at=removal.gone_at, **removal.as_dict()
            )
            self.swept[key] = removal

        sweeps = {pool.submit(self.service.sweep, i): (r, i) for r, i in self._images(self.swept)}
        self._drive(sweeps, "swept", swept)
        for _, image in self._images(set()):
            s = self.swept.get(_image_key(image))
            if s is not None and (s.count or image.content_class is ContentClass.STANDARD):
                self.queue.submit([image.invalidation_path], wave=2)
        self.queue.flush()

    def verify_and_audit(
        self, pool: ThreadPoolExecutor, *, waited: bool, cdn_problem: str | None
    ) -> list[dict[str, Any]]:
        """Verify each image, write its audit record, journal it done."""
        done: list[dict[str, Any]] = []

        def verified(item: tuple[Request, None], problems: list[str]) -> None:
            r = item[0]
            record = _audit(
                r,
                actor=self.actor,
                removed=self.removed,
                swept=self.swept,
                invalidations=self.queue.created,
                problems=problems + ([cdn_problem] if cdn_problem else []),
                waited=waited,
                render_window_s=self.render_window_s,
                service=self.service,
                started_at=self.started.get(r.target.name),
            )
            self.service.write_audit(record.as_dict())
            self.journal.write(
                "done",
                sync=False,
                target=r.target.name,
                audit_key=record.audit_key,
                problems=record.problems,
            )
            done.append(
                {
                    "target": r.target.name,
                    "line": r.line,
                    "audit_key": record.audit_key,
                    "problems": record.problems,
                }
            )

        checks = {
            pool.submit(_verify, self.service, r, self.removed, self.swept): (r, None)
            for r in self.todo
            if r.target.name not in self.failures
        }
        self._drive(checks, "verified", verified)
        return sorted(done, key=lambda d: int(d["line"]))  # input order, whatever finished first


def _verify(
    service: TakedownService,
    request: Request,
    removed: Mapping[str, Removal],
    swept: Mapping[str, Removal],
) -> list[str]:
    problems: list[str] = []
    for image in request.target.images:
        key = _image_key(image)
        for removal in (removed.get(key), swept.get(key)):
            if removal is not None:
                problems += service.verify(removal)
    return problems


def _audit(
    request: Request,
    *,
    actor: str,
    removed: Mapping[str, Removal],
    swept: Mapping[str, Removal],
    invalidations: Sequence[Invalidation],
    problems: list[str],
    waited: bool,
    render_window_s: float,
    service: TakedownService,
    started_at: str | None,
) -> TakedownReport:
    now = datetime.now(UTC)
    started = datetime.fromisoformat(started_at) if started_at else now
    paths = set(request.target.paths)
    report = TakedownReport(
        new_takedown_id(started),
        request.target,
        request.reason,
        actor,
        False,
        started.isoformat(),
        render_window_s=render_window_s,
        policy=service.policy,
    )
    report.removals = [removed.get(_image_key(i)) or Removal(i) for i in request.target.images]
    report.swept = [swept.get(_image_key(i)) or Removal(i) for i in request.target.images]
    report.invalidations = [i for i in invalidations if paths & set(i.paths)]
    report.problems = list(problems)
    report.waited = waited
    report.finished_at = datetime.now(UTC).isoformat()
    report.audit_key = audit_key(report.started_at, report.takedown_id)
    return report
