"""LocalStore holds every key S3 can hold, lists in S3's order, and reads first-layout folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgcore.errors import InvalidKey
from imgcore.storage import LocalStore, decode_local_key, encode_local_key

AWKWARD = [
    "a",
    "a/b",
    "a/b/c",
    "a/",
    "a//b",
    "/a",
    ".",
    "..",
    "a/./b",
    "a/../b",
    "%",
    "a%",
    "a%25",
    "a%00",
    "%2E",
    "a/%2E%2E",
    "a.json",
    "a%.json",
    "img/acme/caf\u00e9/\u5199\u771f.jpg",
    "\U0001f600",
    "\uffff",
]


def s3_order(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda key: key.encode("utf-8"))


@pytest.mark.parametrize("versioned", [False, True])
def test_a_key_that_is_another_keys_folder_is_held_both_ways(
    tmp_path: Path, versioned: bool
) -> None:
    for order in (["a", "a/b"], ["a/b", "a"]):
        store = LocalStore(tmp_path / "-".join(order).replace("/", "_"), versioned=versioned)
        for key in order:
            assert store.put(key, key.encode(), content_type="text/plain")
        for key in order:
            assert store.get(key).data == key.encode()
            assert store.head(key) is not None
        assert [i.key for i in store.list()] == ["a", "a/b"]
        store.delete("a")
        assert store.get("a/b").data == b"a/b"
        assert [i.key for i in store.list()] == ["a/b"]


def test_every_awkward_key_round_trips_and_lists_in_s3_order(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s", versioned=True)
    for key in AWKWARD:
        store.put(key, key.encode(), metadata={"k": "v"})
        store.set_tags(key, {"t": key})
    for key in AWKWARD:
        got = store.get(key)
        assert got.data == key.encode()
        assert got.info.metadata == {"k": "v"}
        assert store.get_tags(key) == {"t": key}
        (version,) = store.versions(key)
        assert store.get(key, version_id=version.version_id).data == key.encode()
    assert [i.key for i in store.list()] == s3_order(AWKWARD)
    assert [i.key for i in store.list("a/")] == s3_order([k for k in AWKWARD if k.startswith("a/")])
    listed = [v.key for v in store.list_versions()]
    assert listed == s3_order(AWKWARD)
    # Nothing was written outside the store's own folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


@pytest.mark.parametrize("key", ["", "a\x00b"])
def test_a_key_s3_cannot_hold_is_a_typed_error(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidKey, match="cannot be stored"):
        LocalStore(tmp_path).put(key, b"x")


KEYS = st.lists(
    st.text(st.sampled_from("ab/.%\u00e9\U0001f600"), min_size=1, max_size=6), max_size=8
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(keys=KEYS)
def test_any_keys_are_held_together(tmp_path: Path, keys: list[str]) -> None:
    for key in keys:
        assert decode_local_key(encode_local_key(key)) == key
    store = LocalStore(tmp_path / str(len(list(tmp_path.iterdir()))))
    for key in keys:
        store.put(key, key.encode())
    assert [i.key for i in store.list()] == s3_order(list(set(keys)))
    assert all(store.get(key).data == key.encode() for key in keys)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_a_folder_of_the_first_layout_is_migrated_when_opened(tmp_path: Path) -> None:
    root = tmp_path / "old"
    key, vid = "img/acme/x%41.jpg/0123456789abcdef/manifest.json", "f" * 32
    _write(root / "objects" / key, b"current")
    inode = (root / "objects" / key).stat().st_ino
    meta = {"content_type": "application/json", "cache_control": "no-store", "metadata": {},
            "version_id": vid, "inode": inode}  # fmt: skip
    _write(root / "meta" / f"{key}.json", json.dumps(meta).encode())
    _write(root / "tags" / f"{key}.json", b'{"state": "kept"}')
    _write(root / "versions" / key / vid, b"current")
    _write(root / "versions" / key / ("e" * 32), b"older")
    _write(root / "objects" / "img" / ".tmp-abc.part", b"torn")

    store = LocalStore(root, versioned=True)

    got = store.get(key)
    assert (got.data, got.info.content_type, got.info.version_id) == (
        b"current",
        "application/json",
        vid,
    )
    assert store.get_tags(key) == {"state": "kept"}
    assert sorted(v.version_id or "" for v in store.versions(key)) == ["e" * 32, vid]
    assert [i.key for i in store.list()] == [key]
    assert (root / "layout").is_file()
    assert not any(p.name.endswith(".plain") for p in root.iterdir())
    # A second open finds the new layout and changes nothing.
    before = sorted(str(p) for p in root.rglob("*"))
    LocalStore(root, versioned=True)
    assert sorted(str(p) for p in root.rglob("*")) == before


def test_a_migration_interrupted_part_way_resumes(tmp_path: Path) -> None:
    root = tmp_path / "old"
    for key in ("a/b", "a/c", "d"):
        _write(root / "objects" / key, key.encode())
    (root / "objects").rename(root / "objects.plain")  # a crash right after the first step
    (root / "objects").mkdir()
    store = LocalStore(root)
    assert [i.key for i in store.list()] == ["a/b", "a/c", "d"]
