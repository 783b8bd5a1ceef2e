"""Takedown and erasure: one image gone from every layer, with an audit record as proof (R8-R10).

For `TENANT/IMAGE_ID` in one or both content classes, `take_down`:

1. deletes the original: every object version and every delete marker of exactly its key in the
   (versioned) originals bucket, and nothing of a neighbour whose id shares a prefix (`shoe` vs
   `shoe2`, `shoes/red` vs `shoes/red-2`, `shoes/red` vs `shoes/red/2`); with cross-Region
   replication, in the replica bucket too (S3 replicates delete markers but never the deletion
   of a version, so the replica's versions are deleted here; the sweep covers a version whose
   replication was still in flight);
2. deletes every version of every derivative and manifest of every content version of that
   image (`{class}/{tenant}/{id}/{version}/{variant}`; the derivatives bucket is versioned too,
   so deleting only the current object would leave its bytes in a noncurrent version);
3. invalidates `/{class}/{tenant}/{id}/*` at CloudFront: the viewer URI and the rewritten URI
   of every version and variant share that prefix (R8), so one wildcard path covers both, and it
   also covers ids that extend this one (`shoes/red/2`): over-invalidating is harmless;
4. waits out the render window (the longest a render that read the original before step 1 can
   still run: the fallback's timeout plus a margin), then sweeps the image's keys again. A
   render in flight during steps 1-2 may store a derivative after them, and the sweep deletes
   it; for the standard class, whose responses are cached for a year, the sweep always
   invalidates a second time, because such a render's answer may have reached CloudFront's
   cache after the first invalidation. (`ugc` answers live at most 60 s anywhere, R9.) The
   precompute worker needs no sweep of its own: it checks after writing that the original still
   exists and rolls its version back otherwise; the sweep would catch it all the same;
5. verifies: every deleted version answers 404 from storage and no version of the image's keys
   is left; with `wait`, every invalidation reached `Completed`;
6. writes the audit record (what was deleted, by version id; every invalidation id and its
   status; actor, reason, times; the bound that applies per class) to the audit store, which
   the stack keeps apart from the data (its own bucket, versioned, under Object Lock).

A GDPR erasure is the same flow with its reason recorded; the audit record is the proof. The
bulk runner (`imgcdn_ops.bulk`) drives the same steps for thousands of ids with one queue.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from imgcdn_ops.invalidation import COMPLETED, Invalidation, InvalidationQueue
from imgcore.errors import ImgcoreError, InvalidKey
from imgcore.keys import ContentClass, ImageRef, validate_tenant
from imgcore.policy import DEFAULT_POLICY, Policy
from imgcore.storage import NotFound, ObjectStore, ObjectVersion, VersionListing

__all__ = [
    "AUDIT_CONTENT_TYPE",
    "AUDIT_PREFIX",
    "DEFAULT_RENDER_WINDOW_S",
    "Removal",
    "TakedownError",
    "TakedownReport",
    "TakedownService",
    "Target",
    "audit_key",
    "bound_for",
    "parse_target",
    "take_down",
]

AUDIT_PREFIX = "takedowns/"
AUDIT_CONTENT_TYPE = "application/json"
AUDIT_SCHEMA = "imgcdn-takedown/1"
DEFAULT_RENDER_WINDOW_S = 35.0
"""The fallback's default timeout (30 s) plus 5 s for its answer to reach CloudFront."""


class TakedownError(ImgcoreError):
    """A takedown request cannot be carried out as asked; the message says what is allowed."""

    http_status = 400
    permanent = True


@dataclass(frozen=True, slots=True)
class Target:
    """What one takedown names: a tenant's image id, in one content class or in both."""

    tenant: str
    image_id: str
    classes: tuple[ContentClass, ...] = (ContentClass.STANDARD, ContentClass.TAKEDOWN)

    @property
    def images(self) -> tuple[ImageRef, ...]:
        return tuple(ImageRef(self.tenant, self.image_id, c) for c in self.classes)

    @property
    def name(self) -> str:
        return f"{self.tenant}/{self.image_id}"

    @property
    def paths(self) -> tuple[str, ...]:
        """The invalidation paths: one wildcard per class (viewer and rewritten URIs, R8)."""
        return tuple(image.invalidation_path for image in self.images)


def parse_target(
    text: str,
    content_class: ContentClass | str | None = None,
    *,
    tenants: Iterable[str] | None = None,
) -> Target:
    """Parse `TENANT/IMAGE_ID` (the image id may hold further `/`).

    Args:
        text: The target as typed.
        content_class: `img` or `ugc`; None takes the image down in both classes.
        tenants: The deployment's tenants; None accepts any valid tenant id.

    Raises:
        TakedownError: Not `TENANT/IMAGE_ID`, an invalid id, or a tenant not in `tenants`.
    """
    tenant, sep, image_id = text.strip().partition("/")
    if not sep or not tenant or not image_id:
        msg = f"{text!r} does not name an image; allowed: TENANT/IMAGE_ID (e.g. acme/shoes/red)"
        raise TakedownError(msg)
    try:
        validate_tenant(tenant)
        classes = (
            (ContentClass(str(content_class)),)
            if content_class is not None
            else (ContentClass.STANDARD, ContentClass.TAKEDOWN)
        )
        target = Target(tenant, image_id, classes)
        target.images  # noqa: B018 - validates the image id in every class
    except InvalidKey as exc:
        raise TakedownError(str(exc)) from None
    except ValueError:
        allowed = ", ".join(c.value for c in ContentClass)
        msg = f"content class {content_class!r} is not valid; allowed: {allowed}"
        raise TakedownError(msg) from None
    if tenants is not None:
        known = sorted(set(tenants))
        if tenant not in known:
            msg = (
                f"tenant {tenant!r} is not a tenant of this deployment; allowed: {', '.join(known)}"
            )
            raise TakedownError(msg)
    return target


def bound_for(content_class: ContentClass, policy: Policy = DEFAULT_POLICY) -> str:
    """What the takedown guarantees for cached copies of one class, in a sentence."""
    if content_class is ContentClass.TAKEDOWN:
        return (
            f"ugc: every cached copy, at CloudFront and in browsers, expires within "
            f"{policy.ttl.takedown} s (the behaviour's max TTL and the responses' max-age), even "
            "if an invalidation lags"
        )
    return (
        "img: CloudFront's copies are removed by the invalidations listed; a browser that "
        f"fetched the image before may keep its copy for up to max-age={policy.ttl.immutable} s, "
        "which no server can reach: content that may ever need taking down belongs in the ugc "
        "class (upload it takedown-eligible)"
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _version_record(v: ObjectVersion) -> dict[str, Any]:
    record: dict[str, Any] = {"key": v.key, "version_id": v.version_id}
    if v.delete_marker:
        record["delete_marker"] = True
    else:
        record["bytes"] = v.size
    return record


@dataclass(slots=True)
class Removal:
    """What was (or, in a dry run, would be) deleted for one image."""

    image: ImageRef
    originals: list[ObjectVersion] = field(default_factory=list)
    derivatives: list[ObjectVersion] = field(default_factory=list)
    gone_at: float = 0.0
    """Wall-clock seconds when the original's last version was gone (the render window starts)."""

    replica: list[ObjectVersion] = field(default_factory=list)
    """Versions of the original in the replica bucket (cross-Region replication)."""

    @property
    def count(self) -> int:
        return len(self.originals) + len(self.derivatives) + len(self.replica)

    def as_dict(self) -> dict[str, Any]:
        record = {
            "class": self.image.content_class.value,
            "originals": [_version_record(v) for v in self.originals],
            "derivatives": [_version_record(v) for v in self.derivatives],
        }
        if self.replica:
            record["replica"] = [_version_record(v) for v in self.replica]
        return record


class TakedownService:
    """The storage half of a takedown, per image: plan, remove, sweep, verify, audit.

    Args:
        originals: The originals store (versioned in production).
        derivatives: The derivatives store.
        audit: Where audit records are written (kept apart from the data).
        policy: The policy whose TTLs the report quotes.
        workers: Deletes in flight at once.
        replica: The originals' replica in another Region, when replication is on.
    """

    def __init__(
        self,
        originals: VersionListing,
        derivatives: VersionListing,
        audit: ObjectStore,
        *,
        policy: Policy = DEFAULT_POLICY,
        workers: int = 8,
        wall_clock: Callable[[], float] = time.time,
        replica: VersionListing | None = None,
    ) -> None:
        """Bind the service to its stores."""
        self.replica = replica
        self.originals = originals
        self.derivatives = derivatives
        self.audit = audit
        self.policy = policy
        self.workers = workers
        self.wall_clock = wall_clock

    def plan(self, image: ImageRef) -> Removal:
        """Every stored version that a takedown of `image` deletes (nothing is deleted)."""
        key = image.source_key
        return Removal(
            image,
            [v for v in self.originals.list_versions(key) if v.key == key],
            [v for v in self.derivatives.list_versions(image.prefix) if image.owns(v.key)],
            replica=[]
            if self.replica is None
            else [v for v in self.replica.list_versions(key) if v.key == key],
        )

    def _delete(self, store: VersionListing, versions: Sequence[ObjectVersion]) -> None:
        if not versions:
            return
        with ThreadPoolExecutor(max(1, self.workers), "imgcdn-takedown") as pool:
            for _ in pool.map(lambda v: store.delete(v.key, version_id=v.version_id), versions):
                pass  # map re-raises the first failure: the takedown stops, the journal resumes

    def remove(self, image: ImageRef) -> Removal:
        """Delete the original's versions, then every derivative version; what was deleted.

        The original goes first: from then on no new render can start (the fallback and
        precompute find nothing to read), so only renders already in flight can still write,
        which is what the sweep after the render window is for.
        """
        removal = self.plan(image)
        self._delete(self.originals, removal.originals)
        # A version uploaded between the listing and the deletes: list again until none is left.
        for _ in range(3):
            late = self.plan(image).originals
            if not late:
                break
            self._delete(self.originals, late)
            removal.originals.extend(late)
        if self.replica is not None:
            self._delete(self.replica, removal.replica)
        removal.gone_at = self.wall_clock()
        self._delete(self.derivatives, removal.derivatives)
        return removal

    def sweep(self, image: ImageRef) -> Removal:
        """Delete whatever is stored for `image` now (after the render window): the stragglers."""
        return self.remove(image)

    def verify(self, removal: Removal) -> list[str]:
        """What is not gone: versions left under the image's keys, or a deleted version that
        still answers. Empty when every deleted key answers 404 from storage."""
        image = removal.image
        problems: list[str] = []
        left = self.plan(image)
        problems += [f"{v.key} version {v.version_id} is still stored" for v in left.originals]
        problems += [f"{v.key} version {v.version_id} is still stored" for v in left.derivatives]
        problems += [
            f"{v.key} version {v.version_id} is still stored in the replica" for v in left.replica
        ]
        for store, versions in (
            (self.originals, removal.originals),
            (self.derivatives, removal.derivatives),
        ):
            getter = getattr(store, "get", None)
            head = getattr(store, "head", None)
            for key in sorted({v.key for v in versions}):
                if head is not None and head(key) is not None:
                    problems.append(f"{key} still answers (HEAD found an object)")
            for v in versions:
                if v.delete_marker or v.version_id is None or getter is None:
                    continue
                try:
                    getter(v.key, version_id=v.version_id)
                except NotFound:
                    continue
                problems.append(f"{v.key} version {v.version_id} still answers")
        return problems

    def write_audit(self, record: Mapping[str, Any]) -> str:
        """Store one audit record (never over another); its key."""
        key = audit_key(str(record["started_at"]), str(record["takedown_id"]))
        body = json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")
        self.audit.put(key, body, content_type=AUDIT_CONTENT_TYPE, if_absent=True)
        return key


def new_takedown_id(now: datetime | None = None) -> str:
    """A sortable, unique id: UTC time to the second and 8 random hex digits."""
    stamp = (now or _now()).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(4)}"


@dataclass(slots=True)
class TakedownReport:
    """The outcome of one takedown: what the audit record holds, and whether it is done."""

    takedown_id: str
    target: Target
    reason: str
    actor: str
    dry_run: bool
    started_at: str
    finished_at: str = ""
    removals: list[Removal] = field(default_factory=list)
    swept: list[Removal] = field(default_factory=list)
    invalidations: list[Invalidation] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    waited: bool = False
    audit_key: str | None = None
    render_window_s: float = DEFAULT_RENDER_WINDOW_S
    policy: Policy = DEFAULT_POLICY

    @property
    def complete(self) -> bool:
        """Storage verified empty, and (when waited for) every invalidation completed."""
        if self.problems:
            return False
        return not self.waited or all(i.status == COMPLETED for i in self.invalidations)

    def as_dict(self) -> dict[str, Any]:
        """The audit record (JSON-ready)."""
        return {
            "schema": AUDIT_SCHEMA,
            "takedown_id": self.takedown_id,
            "tenant": self.target.tenant,
            "image_id": self.target.image_id,
            "classes": [c.value for c in self.target.classes],
            "reason": self.reason,
            "actor": self.actor,
            "dry_run": self.dry_run,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "deleted": [r.as_dict() for r in self.removals],
            "swept_after_render_window": [r.as_dict() for r in self.swept if r.count],
            "render_window_seconds": self.render_window_s,
            "invalidations": [
                {
                    "id": i.id,
                    "paths": list(i.paths),
                    "status": i.status,
                }
                for i in self.invalidations
            ],
            "invalidation_paths": list(self.target.paths),
            "verified": {
                "storage_404": not self.problems,
                "problems": self.problems,
                "invalidations_completed": self.waited
                and all(i.status == COMPLETED for i in self.invalidations),
            },
            "bounds": {c.value: bound_for(c, self.policy) for c in self.target.classes},
            "complete": self.complete,
            "audit_key": self.audit_key,
        }

    def summary(self) -> str:
        """A few lines for a person."""
        deleted = sum(r.count for r in self.removals) + sum(r.count for r in self.swept)
        verb = "would delete" if self.dry_run else "deleted"
        lines = [
            f"takedown {self.takedown_id}: {self.target.name} "
            f"({', '.join(c.value for c in self.target.classes)})",
            f"  {verb}     {deleted} object version(s)"
            + (
                f" ({sum(r.count for r in self.swept)} found by the sweep after the render window)"
                if any(r.count for r in self.swept)
                else ""
            ),
        ]
        for inv in self.invalidations:
            lines.append(f"  invalidation {inv.id} {inv.status}: {', '.join(inv.paths)}")
        if self.dry_run:
            lines.append(f"  would invalidate {', '.join(self.target.paths)}")
        for c in self.target.classes:
            lines.append(f"  bound   {bound_for(c, self.policy)}")
        if self.problems:
            lines += [f"  NOT GONE {p}" for p in self.problems]
        elif not self.dry_run:
            lines.append("  verified every deleted version answers 404 from storage")
        if self.audit_key:
            lines.append(f"  audit   {self.audit_key}")
        return "\n".join(lines)


def take_down(
    target: Target,
    *,
    reason: str,
    actor: str,
    service: TakedownService,
    queue: InvalidationQueue,
    dry_run: bool = False,
    wait: bool = False,
    render_window_s: float = DEFAULT_RENDER_WINDOW_S,
    sleep: Callable[[float], None] = time.sleep,
    wait_timeout_s: float = 900.0,
) -> TakedownReport:
    """Take one image down (see the module docstring); the report is also the audit record.

    Args:
        target: Which image, in which classes.
        reason: Why (a DMCA notice id, "GDPR erasure request #123"); recorded.
        actor: Who asked; recorded.
        service: The stores and the audit store.
        queue: The CDN invalidation queue.
        dry_run: List what would be deleted and invalidated; change nothing, write no record.
        wait: Wait until every invalidation is `Completed` before answering.
        render_window_s: How long after the original is gone a render in flight may still write.
        sleep: Injected for tests.
        wait_timeout_s: How long `wait` waits for CloudFront at most.

    Raises:
        TakedownError: `reason` or `actor` is empty.
        StorageFault: A store failed; running the same takedown again finishes it.
    """
    if not reason.strip() or not actor.strip():
        msg = "a takedown needs a reason and an actor; allowed: non-empty --reason and --actor"
        raise TakedownError(msg)
    started = _now()
    report = TakedownReport(
        new_takedown_id(started),
        target,
        reason.strip(),
        actor.strip(),
        dry_run,
        started.isoformat(),
        render_window_s=render_window_s,
        policy=service.policy,
    )
    if not queue.salt:
        # CloudFront answers a reused CallerReference with the old invalidation: a second
        # takedown of the same image must make new ones, so each takedown salts its own.
        queue.salt = report.takedown_id
    if dry_run:
        report.removals = [service.plan(image) for image in target.images]
        report.finished_at = _now().isoformat()
        return report
    report.removals = [service.remove(image) for image in target.images]
    queue.submit(target.paths)
    queue.flush()
    settle_at = max(r.gone_at for r in report.removals) + render_window_s
    delay = settle_at - service.wall_clock()
    if delay > 0:
        sleep(delay)
    report.swept = [service.sweep(image) for image in target.images]
    again = [
        s.image.invalidation_path
        for s in report.swept
        if s.count or s.image.content_class is ContentClass.STANDARD
    ]
    queue.submit(again, wave=2)
    queue.flush()
    report.problems = [p for r in (*report.removals, *report.swept) for p in service.verify(r)]
    if wait:
        report.waited = True
        deadline = queue.clock() + wait_timeout_s
        try:
            queue.wait(deadline=deadline)
        except TimeoutError as exc:
            report.problems.append(f"CloudFront: {exc} after {wait_timeout_s:.0f} s")
    report.invalidations = list(queue.created)
    report.finished_at = _now().isoformat()
    report.audit_key = audit_key(report.started_at, report.takedown_id)
    service.write_audit(report.as_dict())
    return report


def audit_key(started_at: str, takedown_id: str) -> str:
    """Where one takedown's audit record is stored: `takedowns/YYYY/MM/DD/{id}.json`."""
    return f"{AUDIT_PREFIX}{started_at[:4]}/{started_at[5:7]}/{started_at[8:10]}/{takedown_id}.json"
