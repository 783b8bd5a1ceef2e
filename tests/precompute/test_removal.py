"""ObjectRemoved: what goes, what stays, in every order the events can arrive."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from imgcdn_precompute.service import Action, ConcurrentRemoval, PixelRenderer, PrecomputeService
from imgcore.keys import content_version, parse_source_key
from imgcore.policy import Policy
from imgcore.storage import MemoryStore, ObjectStore

KEY = "img/acme/summer sale/red shoe+1.jpg"
IMAGE = parse_source_key(KEY)


def service(stores: Any, policy: Policy, **kwargs: Any) -> PrecomputeService:
    return PrecomputeService(stores.originals, stores.derivatives, policy=policy, **kwargs)


def test_removing_an_original_removes_every_derivative_and_manifest(
    stores: Any, policy: Policy, photo: bytes
) -> None:
    stores.originals.put(KEY, photo)
    svc = service(stores, policy)
    assert svc.created(KEY).action is Action.RENDERED
    stores.originals.delete(KEY)

    outcome = svc.removed(KEY)

    assert outcome.action is Action.REMOVED
    assert outcome.removed == (content_version(photo),)
    assert stores.listing() == []
    # A redelivered removal is harmless.
    assert svc.removed(KEY).removed == ()


def test_a_neighbour_whose_id_extends_this_one_is_not_touched(
    stores: Any, policy: Policy, photo_factory: Any
) -> None:
    if stores.kind == "local":
        # A directory cannot hold a file `a` and a file `a/...` at once (S3 can): originals
        # live in memory here, the derivatives (directories `a/{version}/`) on disk.
        stores.originals = MemoryStore()
    svc = service(stores, policy)
    parent, child = "img/acme/a", "img/acme/a/0123456789abcdef"
    stores.originals.put(parent, photo_factory(1))
    stores.originals.put(child, photo_factory(2))
    assert svc.created(parent).action is Action.RENDERED
    assert svc.created(child).action is Action.RENDERED
    child_keys = stores.listing(parse_source_key(child).prefix)
    assert len(child_keys) == 7
    stores.originals.delete(parent)

    svc.removed(parent)

    assert stores.listing() == child_keys


def test_a_late_removal_keeps_the_version_uploaded_after_it(
    stores: Any, policy: Policy, photo_factory: Any
) -> None:
    svc = service(stores, policy)
    old, new = photo_factory(1), photo_factory(2)
    stores.originals.put(KEY, old)
    svc.created(KEY)
    stores.originals.delete(KEY)
    stores.originals.put(KEY, new)
    svc.created(KEY)

    # The removal of the first upload is delivered last.
    outcome = svc.removed(KEY)

    assert outcome.removed == (content_version(old),)
    assert {k.split("/")[-2] for k in stores.listing()} == {content_version(new)}
    assert stores.manifest(IMAGE, content_version(new)).status == "complete"


def test_remove_before_create_never_resurrects_the_image(
    stores: Any, policy: Policy, photo: bytes, renderer: Any
) -> None:
    svc = service(stores, policy, renderer=renderer)
    stores.originals.put(KEY, photo)
    stores.originals.delete(KEY)

    removal = svc.removed(KEY)
    creation = svc.created(KEY)  # the create event of the deleted upload, delivered late

    assert (removal.action, creation.action) == (Action.REMOVED, Action.GONE)
    assert stores.listing() == []
    assert renderer.renders == 0


def test_a_removed_object_version_removes_exactly_its_derivatives(
    versioned_stores: Any, policy: Policy, photo_factory: Any
) -> None:
    stores = versioned_stores
    svc = service(stores, policy)
    old, new = photo_factory(1), photo_factory(2)
    stores.originals.put(KEY, old)
    old_id = stores.originals.head(KEY).version_id
    stores.originals.put(KEY, new)
    new_id = stores.originals.head(KEY).version_id
    assert svc.created(KEY, version_id=old_id).action is Action.RENDERED
    assert svc.created(KEY, version_id=new_id).action is Action.RENDERED
    stores.originals.delete(KEY, version_id=old_id)

    outcome = svc.removed(KEY, version_id=old_id)

    assert outcome.removed == (content_version(old),)
    assert {k.split("/")[-2] for k in stores.listing()} == {content_version(new)}
    assert stores.manifest(IMAGE, content_version(new)).source_version_id == new_id


def test_removing_one_of_two_identical_uploads_re_points_the_manifest(
    versioned_stores: Any, policy: Policy, photo: bytes
) -> None:
    stores = versioned_stores
    svc = service(stores, policy)
    stores.originals.put(KEY, photo)
    first_id = stores.originals.head(KEY).version_id
    assert svc.created(KEY, version_id=first_id).action is Action.RENDERED
    stores.originals.put(KEY, photo)  # the same bytes again: a new S3 version, the same version
    second_id = stores.originals.head(KEY).version_id
    assert svc.created(KEY, version_id=second_id).action is Action.SKIPPED
    stores.originals.delete(KEY, version_id=first_id)

    outcome = svc.removed(KEY, version_id=first_id)

    assert outcome.removed == ()
    version = content_version(photo)
    manifest = stores.manifest(IMAGE, version)
    assert manifest.source_version_id == second_id  # the fallback can still read its source
    assert manifest.status == "complete"
    assert len(stores.listing()) == 7
    assert stores.originals.get(KEY, version_id=second_id).data == photo


def test_a_delete_marker_removes_every_version(
    versioned_stores: Any, policy: Policy, photo_factory: Any
) -> None:
    stores = versioned_stores
    svc = service(stores, policy)
    for seed in (1, 2):
        stores.originals.put(KEY, photo_factory(seed))
        assert svc.created(KEY).action is Action.RENDERED
    stores.originals.delete(KEY)  # a versioned bucket keeps the bytes behind a delete marker

    outcome = svc.removed(KEY, version_id="marker-version-id", delete_marker=True)

    assert sorted(outcome.removed) == sorted(content_version(photo_factory(s)) for s in (1, 2))
    assert stores.listing() == []


class _Hooked:
    """A store that runs `hook` once, just before its `after`-th put."""

    def __init__(self, inner: ObjectStore, after: int, hook: Any) -> None:
        self.inner = inner
        self.after = after
        self.hook = hook
        self.puts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, **kwargs: Any) -> bool:
        self.puts += 1
        if self.puts == self.after:
            self.hook()
        return self.inner.put(key, data, **kwargs)


@pytest.mark.parametrize("after", [1, 3, 7], ids=["before-writes", "mid-writes", "at-manifest"])
def test_an_original_removed_while_rendering_leaves_nothing_behind(
    after: int, policy: Policy, photo: bytes
) -> None:
    originals = MemoryStore()
    derivatives = MemoryStore()
    originals.put(KEY, photo)
    remover = PrecomputeService(originals, derivatives, policy=policy)

    def delete_and_process_the_removal() -> None:
        originals.delete(KEY)
        remover.removed(KEY)

    hooked = _Hooked(derivatives, after, delete_and_process_the_removal)
    svc = PrecomputeService(originals, hooked, policy=policy, upload_workers=1)  # type: ignore[arg-type]

    try:
        outcome = svc.created(KEY)
    except ConcurrentRemoval:
        outcome = svc.created(KEY)  # what the retry does
    assert outcome.action is Action.GONE
    assert list(derivatives.list()) == []


def test_a_removal_racing_a_create_to_a_re_upload_converges(
    policy: Policy, photo_factory: Any
) -> None:
    """Deleted and re-uploaded with other bytes while the first upload renders."""
    originals, derivatives = MemoryStore(), MemoryStore()
    old, new = photo_factory(1), photo_factory(2)
    originals.put(KEY, old)
    remover = PrecomputeService(originals, derivatives, policy=policy)

    def delete_reupload_and_remove() -> None:
        originals.delete(KEY)
        originals.put(KEY, new)
        remover.removed(KEY)

    hooked = _Hooked(derivatives, 3, delete_reupload_and_remove)
    svc = PrecomputeService(originals, hooked, policy=policy, upload_workers=1)  # type: ignore[arg-type]
    with pytest.raises(ConcurrentRemoval):
        svc.created(KEY)
    # The retry reads what is there now: the new upload.
    assert svc.created(KEY).version == content_version(new)
    versions = {i.key.split("/")[-2] for i in derivatives.list()}
    assert versions == {content_version(new)}


def test_a_race_loser_finishing_after_a_removal_leaves_no_orphan(
    policy: Policy, photo: bytes
) -> None:
    """The loser writes its derivatives after the removal deleted them but before it deleted
    the manifest, so its manifest write loses: it must still notice the removal."""
    originals, derivatives = MemoryStore(versioned=True), MemoryStore()
    originals.put(KEY, photo)
    version_id = originals.head(KEY).version_id  # type: ignore[union-attr]
    rendered, go = threading.Event(), threading.Event()

    class Paused(PixelRenderer):
        def render(self, *args: Any, **kwargs: Any) -> Any:
            out = super().render(*args, **kwargs)
            rendered.set()
            assert go.wait(60)
            return out

    loser = PrecomputeService(originals, derivatives, policy=policy, renderer=Paused())
    outcomes: list[Any] = []
    thread = threading.Thread(target=lambda: outcomes.append(loser.created(KEY)))
    thread.start()
    assert rendered.wait(60)
    assert service_over(originals, derivatives, policy).created(KEY).action is Action.RENDERED
    originals.delete(KEY, version_id=version_id)
    manifest_key = IMAGE.manifest_key(content_version(photo))

    class LoserFirst(_Hooked):
        """Lets the loser finish just before the removal deletes the manifest."""

        def delete(self, key: str, **kwargs: Any) -> None:
            if key == manifest_key and not go.is_set():
                go.set()
                thread.join(60)
            self.inner.delete(key, **kwargs)

    remover = service_over(originals, LoserFirst(derivatives, 0, None), policy)  # type: ignore[arg-type]
    removal = remover.removed(KEY, version_id=version_id)

    assert removal.removed == (content_version(photo),)
    assert [o.action for o in outcomes] == [Action.GONE]
    assert outcomes[0].bytes_written > 0  # it did write, then cleaned up after itself
    assert list(derivatives.list()) == []


def service_over(originals: Any, derivatives: Any, policy: Policy) -> PrecomputeService:
    return PrecomputeService(originals, derivatives, policy=policy)


def test_a_retry_that_finds_the_original_gone_removes_manifestless_derivatives(
    stores: Any, policy: Policy, photo: bytes
) -> None:
    # An attempt stopped before its manifest (deadline, crash) after the removal had swept:
    # its derivatives are served by key, so the retry that finds the original gone removes them.
    stores.originals.put(KEY, photo)
    svc = service(stores, policy)
    assert svc.created(KEY).action is Action.RENDERED
    version = content_version(photo)
    stores.derivatives.delete(IMAGE.manifest_key(version))
    orphans = stores.listing(IMAGE.version_prefix(version))
    assert orphans  # the standard set, without its manifest
    stores.originals.delete(KEY)

    assert svc.created(KEY).action is Action.GONE
    assert stores.listing() == []


def test_the_orphan_sweep_leaves_a_version_with_a_manifest_alone(
    stores: Any, policy: Policy, photo: bytes
) -> None:
    # Gone is only ever about a missing original: complete versions stay for removed() to take.
    stores.originals.put(KEY, photo)
    svc = service(stores, policy)
    assert svc.created(KEY).action is Action.RENDERED
    before = stores.listing()
    stores.originals.delete(KEY)
    assert svc.created(KEY).action is Action.GONE
    assert stores.listing() == before
