"""A running local stack in a subprocess, over HTTP on loopback, as a user starts it."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / ".cache" / "photos"


@dataclass
class Answer:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes


class RunningStack:
    """`imgcdn dev` in a subprocess on a free loopback port."""

    def __init__(self, data: Path, *extra: str) -> None:
        self.data = data
        env = {**os.environ, "VIPS_CONCURRENCY": "1", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imgcore.cli",
                "dev",
                "--port",
                "0",
                "--data",
                str(data),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        self.base_url = ""
        self.lines: list[str] = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            found = re.search(r"serving (http://127\.0\.0\.1:\d+)/", line)
            if found:
                self.base_url = found.group(1)
                break
        assert self.base_url, "".join(self.lines)
        self.port = int(urlsplit(self.base_url).port or 0)
        # Drained all along: a full pipe would block the stack's next log line, and its requests.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self._wait_ready()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.get("/").status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail("the stack did not answer GET / within 30 s")

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            response = conn.getresponse()
            return Answer(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            conn.close()

    def get(self, target: str, accept: str | None = None) -> Answer:
        return self.request("GET", target, headers={"accept": accept} if accept else {})

    def upload(
        self, data: bytes, tenant: str, image_id: str, cls: str = "img", *, wait: bool = True
    ) -> dict[str, object]:
        target = f"/_admin/originals/{cls}/{tenant}/{quote(image_id)}" + ("?wait=1" if wait else "")
        answer = self.request("PUT", target, data)
        assert answer.status == 201, answer.body
        result: dict[str, object] = json.loads(answer.body)
        return result

    def health(self) -> dict[str, object]:
        result: dict[str, object] = json.loads(self.get("/_health").body)
        return result

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return self.process.returncode

    def json_logs(self) -> list[dict[str, object]]:
        """The JSON log lines written so far (--log-json, or any run whose stderr is a pipe)."""
        found = []
        for line in list(self.lines):
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found


@pytest.fixture
def start_stack(tmp_path: Path) -> Iterator[object]:
    """A factory: `start_stack(data_dir=None)` -> RunningStack; all are stopped afterwards."""
    running: list[RunningStack] = []

    def start(data: Path | None = None, *extra: str) -> RunningStack:
        stack = RunningStack(data or tmp_path / "data", *extra)
        running.append(stack)
        return stack

    yield start
    for stack in running:
        stack.stop()


@pytest.fixture(scope="session")
def real_photo() -> bytes:
    """A real 6.3 MP JPEG from Debian's wallpapers (fetched by scripts/photos.sh in set-up)."""
    path = PHOTOS / "friends_by_Aitzol_Berasategi.jpg"
    if not path.exists():  # tests never fetch: the set-up does (./test runs scripts/photos.sh)
        pytest.fail(f"{path} is missing: run scripts/photos.sh first")
    return path.read_bytes()
