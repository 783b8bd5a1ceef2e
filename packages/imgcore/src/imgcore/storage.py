"""The object-store port every service writes through, with in-memory and local-directory stores.

`ObjectStore` is the narrow contract precompute, the fallback and the local stack share:

- `get(key, max_bytes=, version_id=)` returns the whole object or raises `NotFound`; an object
  larger than `max_bytes` raises `InputTooLarge` without being read whole.
- `head(key)` returns the object's info, or None.
- `put(key, data, ...)` is atomic: readers see the old object, or the whole new one, never a part.
  With `if_absent=True` it writes only when no object exists and says whether it wrote.
- `delete(key, version_id=)` is idempotent; `list(prefix)` yields current objects in key order.
- `set_tags(key, tags)` replaces the object's tags (S3 object tagging: what lifecycle rules
  select on); `get_tags(key)` reads them. Both raise `NotFound` when there is no object. A `put`
  makes an object with no tags, as an S3 PUT without tagging does.
- Faults that a retry may cure (timeouts, throttling, 5xx) raise `StorageFault`.

`VersionListing` is the wider contract takedown needs (every store here has it): `list_versions
(prefix)` yields every stored version of every key under `prefix`, noncurrent ones and S3 delete
markers included, so that deleting each by its version id leaves nothing behind. A store that
keeps no versions yields its current objects with `version_id=None`.

The S3 implementation lives with the AWS adapters (imgcore never imports an AWS SDK).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from imgcore.errors import ImgcoreError, InputTooLarge, InvalidKey

__all__ = [
    "LocalStore",
    "MemoryStore",
    "NotFound",
    "ObjectInfo",
    "ObjectStore",
    "ObjectVersion",
    "StorageFault",
    "StoredObject",
    "SupportsStream",
    "VersionListing",
    "write_atomic",
]


class NotFound(ImgcoreError):
    """No object (or no such version of it) exists under the key."""

    http_status = 404
    permanent = True


class StorageFault(ImgcoreError):
    """The store failed in a way a retry may cure: timeout, throttling, a 5xx."""

    http_status = 503
    permanent = False


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a store knows about an object without reading it."""

    key: str
    size: int
    content_type: str | None = None
    cache_control: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """One stored version of a key: what a versioned listing names and a delete removes."""

    key: str
    version_id: str | None
    """None for a store (or an S3 bucket) that keeps no versions."""
    size: int = 0
    delete_marker: bool = False
    """An S3 delete marker: no bytes, but a version of its own until it is deleted."""
    current: bool = False


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object's bytes and its info."""

    info: ObjectInfo
    data: bytes = field(repr=False)


@runtime_checkable
class ObjectStore(Protocol):
    """The storage port (see the module docstring for the contract)."""

    def get(
        self, key: str, *, max_bytes: int | None = None, version_id: str | None = None
    ) -> StoredObject:
        """Read a whole object."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Describe an object, or None when there is none."""
        ...

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        cache_control: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> bool:
        """Write an object atomically; False only when `if_absent` found one already."""
        ...

    def delete(self, key: str, *, version_id: str | None = None) -> None:
        """Remove an object (or one version of it); absent is not an error."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The current objects under `prefix`, in key order."""
        ...

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        """Replace the current object's tags."""
        ...

    def get_tags(self, key: str) -> dict[str, str]:
        """The current object's tags."""
        ...


@runtime_checkable
class VersionListing(Protocol):
    """A store that can name every stored version under a prefix (see the module docstring)."""

    def list_versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version and delete marker of every key under `prefix`, in key order."""
        ...

    def delete(self, key: str, *, version_id: str | None = None) -> None:
        """Remove one version for good (or the object, when `version_id` is None)."""
        ...


@runtime_checkable
class SupportsStream(Protocol):
    """A store that can hand over an object in chunks, so it can be hashed without holding it.

    `stream(key, version_id=)` returns the object's info and an iterator over its bytes, or
    raises `NotFound`; a fault while iterating raises `StorageFault`. An iterator that is not
    exhausted may be closed (`close()`, when it has one) to release the connection.
    """

    def stream(
        self, key: str, *, version_id: str | None = None
    ) -> tuple[ObjectInfo, Iterator[bytes]]:
        """The object's info and an iterator over its bytes; raises `NotFound`."""
        ...


_META_WAIT_ROUNDS = 50
_META_WAIT_S = 0.002
"""A reader re-reads for up to ~0.1 s until an object file and its metadata match (a writer
takes microseconds between the two; only one that crashed between them makes a reader wait that
long, and then the latest metadata written for the key is the best there is)."""


def _too_large(key: str, size: int, max_bytes: int) -> InputTooLarge:
    return InputTooLarge(f"object {key!r} is {size:,} bytes; allowed: at most {max_bytes:,}")


class MemoryStore:
    """An `ObjectStore` in a dict, thread-safe; keeps old versions when `versioned`."""

    def __init__(self, *, versioned: bool = False) -> None:
        """Create an empty store."""
        self._lock = threading.Lock()
        self._objects: dict[str, StoredObject] = {}
        self._versions: dict[tuple[str, str], StoredObject] = {}
        self._tags: dict[str, dict[str, str]] = {}
        self._versioned = versioned

    def get(
        self, key: str, *, max_bytes: int | None = None, version_id: str | None = None
    ) -> StoredObject:
        """Read a whole object (see `ObjectStore`)."""
        with self._lock:
            found = (
                self._versions.get((key, version_id))
                if version_id is not None
                else self._objects.get(key)
            )
        if found is None:
            raise NotFound(f"no object {key!r}" + (f" version {version_id}" if version_id else ""))
        if max_bytes is not None and found.info.size > max_bytes:
            raise _too_large(key, found.info.size, max_bytes)
        return found

    def head(self, key: str) -> ObjectInfo | None:
        """Describe an object (see `ObjectStore`)."""
        with self._lock:
            found = self._objects.get(key)
        return None if found is None else found.info

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        cache_control: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> bool:
        """Write an object atomically (see `ObjectStore`)."""
        version_id = uuid.uuid4().hex if self._versioned else None
        info = ObjectInfo(
            key, len(data), content_type, cache_control, dict(metadata or {}), version_id
        )
        stored = StoredObject(info, bytes(data))
        with self._lock:
            if if_absent and key in self._objects:
                return False
            self._objects[key] = stored
            self._tags.pop(key, None)
            if version_id is not None:
                self._versions[(key, version_id)] = stored
        return True

    def delete(self, key: str, *, version_id: str | None = None) -> None:
        """Remove an object or one version (see `ObjectStore`)."""
        with self._lock:
            if version_id is None:
                self._objects.pop(key, None)
                self._tags.pop(key, None)
                return
            self._versions.pop((key, version_id), None)
            current = self._objects.get(key)
            if current is not None and current.info.version_id == version_id:
                del self._objects[key]
                self._tags.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The current objects under `prefix` (see `ObjectStore`)."""
        with self._lock:
            infos = [o.info for k, o in self._objects.items() if k.startswith(prefix)]
        yield from sorted(infos, key=lambda i: i.key)

    def versions(self, key: str) -> builtins.list[ObjectInfo]:
        """Every stored version of `key`, oldest first (versioned stores only)."""
        with self._lock:
            return [o.info for (k, _), o in self._versions.items() if k == key]

    def list_versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every stored version under `prefix`, current objects of an unversioned store too."""
        with self._lock:
            current = {k: o.info.version_id for k, o in self._objects.items()}
            found = [
                ObjectVersion(k, v, o.info.size, current=current.get(k) == v)
                for (k, v), o in self._versions.items()
                if k.startswith(prefix)
            ]
            found += [
                ObjectVersion(k, None, o.info.size, current=True)
                for k, o in self._objects.items()
                if k.startswith(prefix) and o.info.version_id is None
            ]
        yield from sorted(found, key=lambda v: (v.key, v.version_id or ""))

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        """Replace the current object's tags (see `ObjectStore`)."""
        with self._lock:
            if key not in self._objects:
                raise NotFound(f"no object {key!r} to tag")
            self._tags[key] = dict(tags)

    def get_tags(self, key: str) -> dict[str, str]:
        """The current object's tags (see `ObjectStore`)."""
        with self._lock:
            if key not in self._objects:
                raise NotFound(f"no object {key!r}")
            return dict(self._tags.get(key, {}))


class LocalStore:
    """An `ObjectStore` in a directory that survives crashes and restarts.

    Layout under `root`: `objects/{key}` holds the bytes, `meta/{key}.json` the headers and
    metadata, `tags/{key}.json` the tags (a sidecar `list` never returns), and
    `versions/{key}/{version_id}` old versions when `versioned`. Every write goes to a temporary
    file in the target's directory, is flushed to disk, and is renamed into place (the directory
    flushed too), so a crash leaves the old object or the new one, never a torn file under a
    final key.

    `if_absent` is atomic across processes sharing the directory: the object is hard-linked
    into place, which fails when the name exists, so exactly one writer wins. A writer puts the
    object file in place first and its metadata right after; the metadata records the object
    file's inode, and a reader that finds metadata of another inode (a write in flight) waits
    briefly for the matching one, so headers never describe other bytes.
    """

    def __init__(self, root: str | os.PathLike[str], *, versioned: bool = False) -> None:
        """Use (and create) the directory `root`, moving a store of the first layout to this one.

        A directory written before keys were encoded (`objects/{key}` as plain folders and
        files) is migrated in place the first time it is opened: each area is renamed aside,
        each file moved to its encoded name, then a `layout` file records the new layout. A
        crash part-way resumes on the next open; no file is copied, so it costs no space.
        """
        self.root = Path(root)
        self._versioned = versioned
        self._lock = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True)
        _migrate_plain_layout(self.root)
        for sub in _AREAS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def _path(self, area: str, key: str, suffix: str = "") -> Path:
        """Where `key`'s file lives in `area` (see `encode_local_key`)."""
        return self.root.joinpath(area, *encode_local_key(key, suffix))

    def _folder(self, area: str, key: str) -> Path:
        """The folder holding `key`'s per-version files in `area`."""
        *folders, last = encode_local_key(key)
        return self.root.joinpath(area, *folders, last.removesuffix(_FILE_MARK))

    def _meta(self, key: str, inode: int) -> tuple[dict[str, Any], bool]:
        """The key's metadata, and whether it was written for the object file `inode`."""
        try:
            meta: dict[str, Any] = json.loads(self._path("meta", key, ".json").read_text("utf-8"))
        except FileNotFoundError:
            return {}, False
        # No "inode": a store written before inodes were recorded; trust it as before.
        return meta, meta.get("inode", inode) == inode

    def _info(self, key: str, size: int, meta: Mapping[str, Any]) -> ObjectInfo:
        return ObjectInfo(
            key,
            size,
            meta.get("content_type"),
            meta.get("cache_control"),
            meta.get("metadata", {}),
            meta.get("version_id"),
        )

    def get(
        self, key: str, *, max_bytes: int | None = None, version_id: str | None = None
    ) -> StoredObject:
        """Read a whole object (see `ObjectStore`)."""
        path = (
            self._path("objects", key)
            if version_id is None
            else self._version_path(key, version_id)
        )
        for _ in range(_META_WAIT_ROUNDS):
            try:
                with path.open("rb") as handle:
                    stat = os.fstat(handle.fileno())
                    if max_bytes is not None and stat.st_size > max_bytes:
                        raise _too_large(key, stat.st_size, max_bytes)
                    data = handle.read()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise NotFound(f"no object {key!r}") from None
            if version_id is not None:
                return StoredObject(ObjectInfo(key, len(data), None, None, {}, version_id), data)
            meta, matches = self._meta(key, stat.st_ino)
            if matches:
                break
            time.sleep(_META_WAIT_S)  # a writer is between an object and its metadata: re-read
        return StoredObject(self._info(key, len(data), meta), data)

    def head(self, key: str) -> ObjectInfo | None:
        """Describe an object (see `ObjectStore`)."""
        for _ in range(_META_WAIT_ROUNDS):
            try:
                stat = self._path("objects", key).stat()
            except (FileNotFoundError, NotADirectoryError):
                return None
            meta, matches = self._meta(key, stat.st_ino)
            if matches:
                break
            time.sleep(_META_WAIT_S)  # see `get`
        return self._info(key, stat.st_size, meta)

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        cache_control: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> bool:
        """Write an object atomically (see `ObjectStore`)."""
        path = self._path("objects", key)
        if if_absent and path.exists():
            return False  # the cheap answer; the link below is what decides a race
        version_id = uuid.uuid4().hex if self._versioned else None
        tmp = _temporary(path, data)
        meta = {
            "content_type": content_type,
            "cache_control": cache_control,
            "metadata": dict(metadata or {}),
            "version_id": version_id,
            "inode": tmp.stat().st_ino,  # rename and link keep it: it names this object file
        }
        meta_path = self._path("meta", key, ".json")
        # The lock only orders this process's writers (their metadata lands in their order);
        # the link is what makes if_absent safe across processes.
        try:
            with self._lock:
                if if_absent:
                    try:
                        os.link(tmp, path)  # atomic create: fails when a writer got there first
                    except FileExistsError:
                        return False
                else:
                    tmp.replace(path)
                _fsync_directory(path.parent)
                # The bytes first, then what describes them: a reader that sees the new object
                # file before its metadata waits for that inode's (see the class docstring).
                if version_id is not None:
                    write_atomic(self._version_path(key, version_id), data)
                self._clear_tags(key)
                write_atomic(meta_path, json.dumps(meta).encode())
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()  # after a link: the second name; after a failure: the leftover
        return True

    def _version_path(self, key: str, version_id: str) -> Path:
        return self._folder("versions", key) / (_encode_segment(version_id) + _FILE_MARK)

    def _clear_tags(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path("tags", key, ".json").unlink()

    def delete(self, key: str, *, version_id: str | None = None) -> None:
        """Remove an object or one version (see `ObjectStore`)."""
        with self._lock:
            if version_id is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._version_path(key, version_id).unlink()
                info = self.head(key)
                if info is None or info.version_id != version_id:
                    return
            for path in (
                self._path("objects", key),
                self._path("meta", key, ".json"),
                self._path("tags", key, ".json"),
            ):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The current objects under `prefix` (see `ObjectStore`)."""
        base = self.root / "objects"
        found = []
        for path in base.rglob("*"):
            if path.name.endswith(_FILE_MARK) and path.is_file():
                key = decode_local_key(path.relative_to(base).parts)
                if key.startswith(prefix):
                    found.append(key)
        # Code point order is UTF-8 byte order, which is S3's listing order.
        for key in sorted(found):
            info = self.head(key)
            if info is not None:
                yield info

    def versions(self, key: str) -> builtins.list[ObjectInfo]:
        """Every stored version of `key` (versioned stores only)."""
        folder = self._folder("versions", key)
        if not folder.is_dir():
            return []
        return [
            ObjectInfo(key, p.stat().st_size, version_id=_decode_segment(p.name[:-1]))
            for p in folder.iterdir()
            if p.name.endswith(_FILE_MARK) and p.is_file()
        ]

    def list_versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every stored version under `prefix`, and the current objects that have none.

        A version is a file `versions/{key}/{version_id}`, so its key is its folder: a key that
        extends another (`a/b` and `a/b/c`) keeps its versions in a subfolder, never confused.
        """
        found: builtins.list[ObjectVersion] = []
        versions = self.root / "versions"
        for path in versions.rglob("*"):
            if path.name.endswith(_FILE_MARK) and path.is_file():
                *folders, name = path.relative_to(versions).parts
                key = decode_local_key([*folders[:-1], folders[-1] + _FILE_MARK])
                if key.startswith(prefix):
                    version_id = _decode_segment(name[:-1])
                    found.append(ObjectVersion(key, version_id, path.stat().st_size))
        versioned = {v.key for v in found}
        for info in self.list(prefix):
            if info.version_id is None or info.key not in versioned:
                found.append(ObjectVersion(info.key, info.version_id, info.size, current=True))
        current = {i.key: i.version_id for i in self.list(prefix)} if versioned else {}
        found = [
            replace(
                v,
                current=v.current
                or (v.version_id is not None and current.get(v.key) == v.version_id),
            )
            for v in found
        ]
        yield from sorted(found, key=lambda v: (v.key, v.version_id or ""))

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        """Replace the current object's tags, crash-safely (see `ObjectStore`)."""
        if not self._path("objects", key).is_file():
            raise NotFound(f"no object {key!r} to tag")
        write_atomic(self._path("tags", key, ".json"), json.dumps(dict(tags)).encode())

    def get_tags(self, key: str) -> dict[str, str]:
        """The current object's tags (see `ObjectStore`)."""
        if not self._path("objects", key).is_file():
            raise NotFound(f"no object {key!r}")
        try:
            tags: dict[str, str] = json.loads(self._path("tags", key, ".json").read_text("utf-8"))
        except FileNotFoundError:
            return {}
        return tags


# --- the local store's on-disk names ------------------------------------------------------------
#
# Every key S3 can hold must be a file here, even when another key is its folder (`a` and `a/b`)
# or it has empty, `.` or `..` segments. Each segment is escaped (`%` -> `%25`; an empty segment
# -> `%00`, as a key never holds NUL; `.` and `..` -> `%2E`, `%2E%2E`) and a file's name ends in
# a bare `%`, which no escaped segment does: a file never has a folder's name.

_AREAS = ("objects", "meta", "tags", "versions")
_FILE_MARK = "%"
_LAYOUT_FILE = "layout"
_LAYOUT = "2: escaped segments, files end in %\n"
_ESCAPED = re.compile(r"%(25|2E|00)")
_UNESCAPE = {"25": "%", "2E": ".", "00": ""}


def _encode_segment(segment: str) -> str:
    if not segment:
        return "%00"
    escaped = segment.replace("%", "%25")
    return escaped.replace(".", "%2E") if escaped in (".", "..") else escaped


def _decode_segment(name: str) -> str:
    return "" if name == "%00" else _ESCAPED.sub(lambda m: _UNESCAPE[m[1]], name)


def encode_local_key(key: str, suffix: str = "") -> list[str]:
    """The path parts (folders, then the file name) that hold `key` in a `LocalStore` area.

    Raises:
        InvalidKey: The key is empty or holds NUL (S3 cannot hold either).
    """
    if not key or "\x00" in key:
        msg = f"key {key!r} cannot be stored: a key is 1 or more characters, none of them NUL"
        raise InvalidKey(msg)
    *folders, last = (_encode_segment(segment) for segment in key.split("/"))
    return [*folders, last + _FILE_MARK + suffix]


def decode_local_key(parts: Sequence[str]) -> str:
    """The key whose object file has the path parts `parts` (`encode_local_key` reversed)."""
    *folders, last = parts
    return "/".join([*map(_decode_segment, folders), _decode_segment(last[: -len(_FILE_MARK)])])


def _migrate_plain_layout(root: Path) -> None:
    """Move a store of the first layout (keys as plain paths) to the escaped one, resumably."""
    if (root / _LAYOUT_FILE).exists():
        return
    for area in _AREAS:
        current, aside = root / area, root / f"{area}.plain"
        if current.is_dir() and not aside.exists():
            current.rename(aside)  # the whole old area at once: what is left there is old
        if not aside.is_dir():
            continue
        for path in sorted(aside.rglob("*")):
            if not path.is_file():
                continue
            if path.name.startswith(".tmp-"):
                path.unlink()  # a write that never finished
                continue
            parts = path.relative_to(aside).parts
            if area == "versions":  # versions/{key}/{version_id}
                folder = encode_local_key("/".join(parts[:-1]))
                name = _encode_segment(parts[-1]) + _FILE_MARK
                target = root.joinpath(area, *folder[:-1], folder[-1].removesuffix(_FILE_MARK))
                target /= name
            else:
                key = "/".join(parts).removesuffix("" if area == "objects" else ".json")
                target = root.joinpath(
                    area, *encode_local_key(key, "" if area == "objects" else ".json")
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)  # a rename keeps the inode the metadata records
        shutil.rmtree(aside)
    write_atomic(root / _LAYOUT_FILE, _LAYOUT.encode())


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one, whole.

    A flushed temporary file beside `path` is renamed over it, then the directory entry is
    flushed too. Missing parent directories are created.
    """
    tmp = _temporary(path, data)
    try:
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_directory(path.parent)


def _temporary(path: Path, data: bytes) -> Path:
    """`data` in a flushed temporary file beside `path` (same directory: same file system)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise
    return Path(tmp)


def _fsync_directory(path: Path) -> None:
    """Flush a directory entry to disk, so a rename or link survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
