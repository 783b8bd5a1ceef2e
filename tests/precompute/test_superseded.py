"""Superseded versions are tagged for the derivatives bucket's lifecycle rule to expire, and
only ever by the worker of the original's current version (R7, R18)."""

from __future__ import annotations

from typing import Any

from imgcdn_precompute.service import SUPERSEDED_TAG, Action, PrecomputeService
from imgcore.keys import content_version, parse_source_key
from imgcore.policy import Policy
from imgcore.storage import MemoryStore

KEY = "img/acme/summer sale/red shoe+1.jpg"
NEIGHBOUR = "img/acme/summer sale/red shoe+1.jpg/b"  # an id that extends this one
IMAGE = parse_source_key(KEY)
SUPERSEDED = {SUPERSEDED_TAG: "true"}


def _tags(stores: Any, version: str) -> dict[str, dict[str, str]]:
    return {
        k: stores.derivatives.get_tags(k) for k in stores.listing(IMAGE.version_prefix(version))
    }


def test_a_new_version_tags_every_object_of_the_older_ones(
    stores: Any, policy: Policy, photo_factory: Any
) -> None:
    svc = PrecomputeService(stores.originals, stores.derivatives, policy=policy)
    old, new = content_version(photo_factory(1)), content_version(photo_factory(2))
    # The neighbour's original comes from elsewhere: a directory cannot hold both `x` and `x/b`.
    elsewhere = MemoryStore()
    elsewhere.put(NEIGHBOUR, photo_factory(3))
    neighbours = PrecomputeService(elsewhere, stores.derivatives, policy=policy)
    assert neighbours.created(NEIGHBOUR).action is Action.RENDERED
    stores.originals.put(KEY, photo_factory(1))
    assert svc.created(KEY).action is Action.RENDERED
    assert all(t == {} for t in _tags(stores, old).values())  # nothing older to tag yet

    stores.originals.put(KEY, photo_factory(2))
    assert svc.created(KEY).action is Action.RENDERED

    old_tags = _tags(stores, old)
    assert len(old_tags) == 7  # six variants and the manifest
    assert all(t == SUPERSEDED for t in old_tags.values()), old_tags
    assert all(t == {} for t in _tags(stores, new).values())
    neighbour = parse_source_key(NEIGHBOUR)
    assert all(stores.derivatives.get_tags(k) == {} for k in stores.listing(neighbour.prefix))


def test_a_late_event_for_an_older_version_never_tags_the_newer_one(
    versioned_stores: Any, policy: Policy, photo_factory: Any
) -> None:
    stores = versioned_stores
    svc = PrecomputeService(stores.originals, stores.derivatives, policy=policy)
    stores.originals.put(KEY, photo_factory(1))
    first_id = stores.originals.head(KEY).version_id
    stores.originals.put(KEY, photo_factory(2))
    second_id = stores.originals.head(KEY).version_id
    old, new = content_version(photo_factory(1)), content_version(photo_factory(2))

    # The second upload's event arrives first, the first upload's event late.
    assert svc.created(KEY, version_id=second_id).action is Action.RENDERED
    assert svc.created(KEY, version_id=first_id).action is Action.RENDERED

    assert all(t == {} for t in _tags(stores, new).values())
    # The current version's redelivered event (or its retry) tags what arrived late.
    assert svc.created(KEY, version_id=second_id).action is Action.SKIPPED
    assert all(t == SUPERSEDED for t in _tags(stores, old).values())
    assert all(t == {} for t in _tags(stores, new).values())


def test_an_identical_re_upload_is_still_the_current_version(
    versioned_stores: Any, policy: Policy, photo_factory: Any
) -> None:
    """Another S3 version id with the same bytes: compared by content, not by id."""
    stores = versioned_stores
    svc = PrecomputeService(stores.originals, stores.derivatives, policy=policy)
    stores.originals.put(KEY, photo_factory(1))
    assert svc.created(KEY).action is Action.RENDERED
    stores.originals.put(KEY, photo_factory(2))
    second_id = stores.originals.head(KEY).version_id
    stores.originals.put(KEY, photo_factory(2))  # the same bytes again: a new S3 version id

    assert svc.created(KEY, version_id=second_id).action is Action.RENDERED

    assert all(t == SUPERSEDED for t in _tags(stores, content_version(photo_factory(1))).values())


def test_a_version_made_current_again_loses_the_tag(
    stores: Any, policy: Policy, photo_factory: Any
) -> None:
    # A, then B, then A again (a revert): A's set is live again and must not expire.
    svc = PrecomputeService(stores.originals, stores.derivatives, policy=policy)
    a, b = content_version(photo_factory(1)), content_version(photo_factory(2))
    stores.originals.put(KEY, photo_factory(1))
    assert svc.created(KEY).action is Action.RENDERED
    stores.originals.put(KEY, photo_factory(2))
    assert svc.created(KEY).action is Action.RENDERED
    assert all(t == SUPERSEDED for t in _tags(stores, a).values())

    stores.originals.put(KEY, photo_factory(1))
    assert svc.created(KEY).action is Action.SKIPPED  # A's set is complete: nothing to render
    assert all(t == {} for t in _tags(stores, a).values()), _tags(stores, a)
    assert all(t == SUPERSEDED for t in _tags(stores, b).values())
