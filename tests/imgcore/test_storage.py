"""The storage port's contract, held against every implementation imgcore ships."""

from __future__ import annotations

import importlib
import multiprocessing
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


def test_local_store_holds_traversal_keys_inside_itself_and_survives_restart(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    odd = ("../x", "a/../../x", "/abs", "a//b")  # S3 holds each of them as a plain key
    for key in odd:
        store.put(key, key.encode())
    assert [store.get(key).data for key in odd] == [key.encode() for key in odd]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # nothing escaped
    with pytest.raises(ValueError, match="cannot be stored"):
        store.put("", b"x")
    store.put("a/b.jpg", b"data", content_type="image/jpeg")
    again = LocalStore(tmp_path / "store")
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


def test_tags_are_replaced_read_and_cleared_by_a_new_put(store: ObjectStore) -> None:
    store.put("img/acme/a/0123456789abcdef/w160.jpeg", b"x")
    key = "img/acme/a/0123456789abcdef/w160.jpeg"
    assert store.get_tags(key) == {}
    store.set_tags(key, {"imgcdn-superseded": "true", "b": "2"})
    assert store.get_tags(key) == {"imgcdn-superseded": "true", "b": "2"}
    store.set_tags(key, {"imgcdn-superseded": "true"})  # replaced, not merged (as S3 does)
    assert store.get_tags(key) == {"imgcdn-superseded": "true"}
    assert [i.key for i in store.list()] == [key]  # the tags are no object
    store.put(key, b"y")  # a PUT without tagging makes an untagged object
    assert store.get_tags(key) == {}
    store.set_tags(key, {"t": "1"})
    store.delete(key)
    store.put(key, b"z")
    assert store.get_tags(key) == {}
    with pytest.raises(NotFound):
        store.set_tags("img/acme/missing", {"t": "1"})
    with pytest.raises(NotFound):
        store.get_tags("img/acme/missing")


def test_local_store_tags_survive_a_restart_and_a_crash_mid_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    store.put("k", b"data")
    store.set_tags("k", {"imgcdn-superseded": "true"})
    assert LocalStore(tmp_path).get_tags("k") == {"imgcdn-superseded": "true"}

    def crash(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.set_tags("k", {"other": "x"})
    monkeypatch.undo()
    assert store.get_tags("k") == {"imgcdn-superseded": "true"}
    assert [p.name for p in (tmp_path / "tags").iterdir()] == ["k%.json"]  # no temporary left


RACER = """
from imgcore.storage import LocalStore


def race(root, index, start, results):
    store = LocalStore(root)
    start.wait(30)
    results.put((index, store.put("race/key", f"writer {index}".encode(), if_absent=True)))
"""


def test_local_store_if_absent_has_one_winner_across_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Spawned processes share no lock with this one; they import the racer from a module file
    # (the tests themselves are not importable in a child: pytest imports them by path).
    (tmp_path / "racer").mkdir()
    (tmp_path / "racer" / "imgcdn_test_racer.py").write_text(RACER, "utf-8")
    monkeypatch.syspath_prepend(tmp_path / "racer")
    racer = importlib.import_module("imgcdn_test_racer")
    context = multiprocessing.get_context("spawn")
    root = tmp_path / "store"
    start, results = context.Barrier(8), context.Queue()
    workers = [
        context.Process(target=racer.race, args=(str(root), i, start, results)) for i in range(8)
    ]
    for worker in workers:
        worker.start()
    outcomes = dict(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    winners = [i for i, wrote in outcomes.items() if wrote]
    assert len(winners) == 1, outcomes
    stored = LocalStore(root).get("race/key")
    assert stored.data == f"writer {winners[0]}".encode()
    assert [i.key for i in LocalStore(root).list()] == ["race/key"]
    assert list((root / "objects").rglob(".tmp-*")) == []


def test_local_store_metadata_always_describes_the_bytes(tmp_path: Path) -> None:
    """A reader between a writer's object and its metadata waits for the matching metadata."""
    store = LocalStore(tmp_path)
    stop = threading.Event()
    seen: list[tuple[bytes, str | None]] = []

    def writer() -> None:
        for i in range(200):
            store.put("k", f"type {i % 2}".encode(), content_type=f"type/{i % 2}")
        stop.set()

    store.put("k", b"type 1", content_type="type/1")
    thread = threading.Thread(target=writer)
    thread.start()
    while not stop.is_set():
        got = LocalStore(tmp_path).get("k")  # another instance: no shared lock
        seen.append((got.data, got.info.content_type))
    thread.join()
    assert seen
    for data, content_type in seen:
        assert content_type == "type/" + data.decode()[-1], (data, content_type)
