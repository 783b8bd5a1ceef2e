"""Where a running local stack is: `stack.json` in its data folder, for `imgcdn upload`.

`imgcdn dev` writes the file once it listens (its URL and process id) and removes it when it
stops; a client reads it to find the stack without `--url`. A file left by a stack that died
without cleaning up names a process that is gone, and is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from imgcore.storage import write_atomic

__all__ = ["STATE_FILE", "find_stack", "forget_stack", "record_stack"]

STATE_FILE = "stack.json"


def record_stack(data_dir: Path, url: str) -> Path:
    """Note that this process serves `url` with its data in `data_dir`; returns the file."""
    path = data_dir / STATE_FILE
    write_atomic(path, json.dumps({"url": url, "pid": os.getpid()}).encode())
    return path


def forget_stack(data_dir: Path) -> None:
    """Remove the note, if it is this process's (a second stack on the folder may own it)."""
    path = data_dir / STATE_FILE
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def find_stack(data_dir: Path) -> str | None:
    """The URL of the stack running on `data_dir`, or None when none is noted or it is gone."""
    try:
        noted = json.loads((data_dir / STATE_FILE).read_text())
        url, pid = str(noted["url"]), int(noted["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return url
