"""The storage port's contract, held against every implementation imgcore ships."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from imgcore import InputTooLarge
from imgcore.storage import LocalStore, MemoryStore, NotFound, ObjectStore


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "memory":
        return MemoryStore(versioned=True)
    return LocalStore(tmp_path / "store", versioned=True)


def test_put_get_head_list_delete(store: ObjectStore) -> None:
    key = "img/acme/red shoe+1 %/caf\u00e9.jpg"
    assert store.put(
        key, b"abc", content_type="image/jpeg", cache_control="public", metadata={"a": "1"}
    )
    got = store.get(key)
    assert got.data == b"abc"
    assert (got.info.content_type, got.info.cache_control, dict(got.info.metadata)) == (
        "image/jpeg",
        "public",
        {"a": "1"},
    )
    info = store.head(key)
    assert info is not None
    assert info.size == 3
    store.put("img/acme/other", b"x")
    assert [i.key for i in store.list("img/acme/")] == ["img/acme/other", key]
    assert [i.key for i in store.list("img/acme/red")] == [key]
    store.delete(key)
    store.delete(key)  # idempotent
    assert store.head(key) is None
    with pytest.raises(NotFound):
        store.get(key)


def test_size_bound_refuses_before_reading_whole(store: ObjectStore) -> None:
    store.put("k", b"x" * 100)
    assert store.get("k", max_bytes=100).data == b"x" * 100
    with pytest.raises(InputTooLarge, match="at most 99"):
        store.get("k", max_bytes=99)


def test_if_absent_writes_once(store: ObjectStore) -> None:
    assert store.put("m", b"first", if_absent=True)
    assert not store.put("m", b"second", if_absent=True)
    assert store.get("m").data == b"first"


def test_old_versions_stay_readable(store: ObjectStore) -> None:
    store.put("o", b"v1")
    v1 = store.head("o")
    assert v1 is not None
    assert v1.version_id
    store.put("o", b"v2")
    assert store.get("o").data == b"v2"
    assert store.get("o", version_id=v1.version_id).data == b"v1"
    with pytest.raises(NotFound):
        store.get("o", version_id="nope")


def test_concurrent_if_absent_has_one_winner(store: ObjectStore) -> None:
    results: list[bool] = []
    threads = [
        threading.Thread(
            target=lambda i=i: results.append(store.put("race", str(i).encode(), if_absent=True))
        )
        for i in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1


def test_local_store_refuses_traversal_and_survives_restart(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for bad in ("../x", "a/../../x", "/abs", "a//b", ""):
        with pytest.raises(ValueError, match="cannot be stored"):
            store.put(bad, b"x")
    store.put("a/b.jpg", b"data", content_type="image/jpeg")
    again = LocalStore(tmp_path)
    assert again.get("a/b.jpg").data == b"data"
    assert again.get("a/b.jpg").info.content_type == "image/jpeg"


def test_local_store_never_shows_a_torn_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    store.put("k", b"old")

    def crash(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.put("k", b"new" * 1000)
    monkeypatch.undo()
    assert store.get("k").data == b"old"
    assert [i.key for i in store.list()] == ["k"]  # no temporary file shows up as an object
