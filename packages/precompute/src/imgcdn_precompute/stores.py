"""Stores the worker and the backfill open: S3 (with streaming reads), local stores, plain folders.

`open_store(spec)` understands:

- `s3://bucket`: an `S3Store` (which also streams, to hash an oversize original);
- a directory laid out as imgcore's `LocalStore` (it has `objects/` and `meta/`): that store,
  e.g. the persistent store of the local stack;
- any other directory: a read-only `FileTreeStore` whose keys are the files' relative paths,
  e.g. an existing catalogue `img/{tenant}/{id}` on disk (originals only).
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from imgcdn_aws.s3 import S3Store
from imgcore.errors import InputTooLarge
from imgcore.storage import LocalStore, NotFound, ObjectInfo, ObjectStore, StoredObject

__all__ = ["FileTreeStore", "open_store"]

_CHUNK = 1 << 20


class FileTreeStore:
    """A read-only `ObjectStore` over a plain directory: keys are `/`-joined relative paths.

    Hidden files and folders (a leading `.`) are not objects. Writing raises: it is a source.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Read objects under `root`."""
        self.root = Path(root)
        if not self.root.is_dir():
            msg = f"{self.root} is not a directory"
            raise NotADirectoryError(msg)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            raise NotFound(f"no object {key!r}")
        return self.root.joinpath(*parts)

    def get(
        self, key: str, *, max_bytes: int | None = None, version_id: str | None = None
    ) -> StoredObject:
        """Read a whole file (see `ObjectStore`); versions do not exist here."""
        if version_id is not None:
            raise NotFound(f"no object {key!r} version {version_id} (a folder has no versions)")
        try:
            with self._path(key).open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if max_bytes is not None and size > max_bytes:
                    msg = f"object {key!r} is {size:,} bytes; allowed: at most {max_bytes:,}"
                    raise InputTooLarge(msg)
                data = handle.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"no object {key!r}") from None
        return StoredObject(ObjectInfo(key, len(data)), data)

    def stream(
        self, key: str, *, version_id: str | None = None
    ) -> tuple[ObjectInfo, Iterator[bytes]]:
        """The file's info and its bytes in chunks (`imgcore.storage.SupportsStream`)."""
        if version_id is not None:
            raise NotFound(f"no object {key!r} version {version_id} (a folder has no versions)")
        path = self._path(key)
        try:
            size = path.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no object {key!r}") from None

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    yield chunk

        return ObjectInfo(key, size), chunks()

    def head(self, key: str) -> ObjectInfo | None:
        """Describe a file, or None (see `ObjectStore`)."""
        try:
            path = self._path(key)
            if not path.is_file():
                return None
            return ObjectInfo(key, path.stat().st_size)
        except (NotFound, FileNotFoundError, NotADirectoryError):
            return None

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
        """Refused: a folder of originals is read only."""
        msg = f"{self.root} is a read-only folder of originals; write derivatives elsewhere"
        raise PermissionError(msg)

    def delete(self, key: str, *, version_id: str | None = None) -> None:
        """Refused: a folder of originals is read only."""
        msg = f"{self.root} is a read-only folder of originals"
        raise PermissionError(msg)

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        """Refused: a folder of originals is read only (and its files carry no tags)."""
        msg = f"{self.root} is a read-only folder of originals; it cannot tag {key!r}"
        raise PermissionError(msg)

    def get_tags(self, key: str) -> dict[str, str]:
        """A file has no tags: {} (see `ObjectStore`)."""
        if self.head(key) is None:
            raise NotFound(f"no object {key!r}")
        return {}

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The files under `prefix`, in key order (see `ObjectStore`)."""
        keys: builtins.list[tuple[str, int]] = []
        for directory, folders, files in os.walk(self.root):
            folders[:] = [f for f in folders if not f.startswith(".")]
            for name in files:
                if name.startswith("."):
                    continue
                path = Path(directory, name)
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append((key, path.stat().st_size))
        for key, size in sorted(keys):
            yield ObjectInfo(key, size)


def _is_local_store(path: Path) -> bool:
    return (path / "objects").is_dir() and (path / "meta").is_dir()


def open_store(spec: str, *, endpoint_url: str | None = None, create: bool = False) -> ObjectStore:
    """Open the store a command-line argument names (see the module docstring).

    Args:
        spec: `s3://bucket` or a directory.
        endpoint_url: An S3-compatible endpoint for `s3://` specs.
        create: Make a missing directory a new `LocalStore` (for derivatives).

    Raises:
        ValueError: An `s3://` spec with a path after the bucket, or a missing directory.
    """
    if spec.startswith("s3://"):
        bucket, _, rest = spec.removeprefix("s3://").partition("/")
        if rest or not bucket:
            msg = f"{spec!r}: name a whole bucket, s3://BUCKET (keys follow the layout in it)"
            raise ValueError(msg)
        return S3Store(bucket, endpoint_url=endpoint_url)
    path = Path(spec).expanduser()
    if _is_local_store(path) or (create and (not path.exists() or not any(path.iterdir()))):
        return LocalStore(path)
    if path.is_dir():
        if create:
            msg = (
                f"{spec}: not an imgcdn store (no objects/ and meta/ inside) and not empty; "
                "derivatives go to an empty or new directory, or an existing store"
            )
            raise ValueError(msg)
        return FileTreeStore(path)
    msg = f"{spec}: no such directory"
    raise ValueError(msg)
