"""R15: no code path from a request to a network address; only boto3's S3 client talks."""

from __future__ import annotations

import ast
import importlib.util
import socket
from pathlib import Path
from typing import Any

import pytest
from tests.edge.conftest import Deployment, LambdaContext, function_url_event, jpeg

import imgcdn_aws
import imgcdn_edge
from imgcore import ImageRef

PACKAGE = Path(imgcdn_edge.__file__).resolve().parent
ADAPTERS = Path(imgcdn_aws.__file__).resolve().parent
# The imgcore modules the fallback runs: parse, decode/encode, read and write, manifests.
BORROWED = (
    "imgcore.keys",
    "imgcore.params",
    "imgcore.percent",
    "imgcore.pixels",
    "imgcore.storage",
    "imgcore.manifest",
    "imgcore.responses",
    "imgcore.policy",
    "imgcore.errors",
)
# What only boto3 itself may bring in: its HTTP stack talks to S3 and nothing else (R15).
CLIENTS = ("http.client", "urllib3", "requests", "httpx", "aiohttp")
BANNED = (
    "socket", "ssl", "http", "urllib.request", "urllib3", "requests", "httpx", "aiohttp",
    "ftplib", "smtplib", "telnetlib", "xmlrpc", "asyncio", "websocket", "websockets", "pycurl",
    "subprocess", "multiprocessing.connection", "botocore.httpsession", "webbrowser",
)  # fmt: skip


def _modules() -> list[Path]:
    borrowed = []
    for name in BORROWED:
        spec = importlib.util.find_spec(name)
        assert spec is not None
        assert spec.origin is not None
        borrowed.append(Path(spec.origin))
    # imgcdn_aws whole: the fallback runs its S3 store, config, logs and metrics.
    return sorted(PACKAGE.rglob("*.py")) + sorted(ADAPTERS.rglob("*.py")) + borrowed


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in ("import_module", "__import__")
        ):
            found.update(
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            )
            found.add("<dynamic import>")
    return found


def _banned(name: str) -> bool:
    return any(name == b or name.startswith(b + ".") for b in BANNED)


def test_the_scan_sees_what_it_must() -> None:
    assert _banned("urllib.request")
    assert _banned("http.client")
    assert not _banned("urllib.parse")
    assert not _banned("httpx_like")
    paths = _modules()
    assert {p.name for p in paths} >= {
        "handler.py", "service.py", "function.py", "s3.py", "emf.py", "logs.py", "config.py",
        "pixels.py", "storage.py", "manifest.py", "keys.py", "params.py", "observe.py",
    }  # fmt: skip


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_no_module_imports_a_network_client(path: Path) -> None:
    imports = _imports(path)
    assert "<dynamic import>" not in imports, path
    assert not [name for name in imports if _banned(name)], path


def test_a_render_opens_no_socket(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    image = ImageRef("acme", "photo.jpg")
    version, _ = deployment.upload(image, jpeg(400, 300, (200, 30, 30)))
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        msg = "the fallback must not open a socket"
        raise OSError(msg)

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    event = function_url_event("get.json", image.public_path(version) + "/w320-q80.webp")
    response = deployment.handler(event, LambdaContext())
    assert response["statusCode"] == 200
    assert attempts == []


_FRESH_RENDER = """
import io, json, sys
from PIL import Image
from imgcdn_edge.handler import build_handler
from imgcore import ImageRef, content_version
from imgcore.storage import MemoryStore

out = io.BytesIO()
Image.new("RGB", (400, 300), (200, 30, 30)).save(out, "JPEG")
image = ImageRef("acme", "photo.jpg")
originals, derivatives = MemoryStore(), MemoryStore()
originals.put(image.source_key, out.getvalue())
before = set(sys.modules)
handler = build_handler(originals=originals, derivatives=derivatives)
uri = image.public_path(content_version(out.getvalue())) + "/w320-q80.webp"
event = {"rawPath": uri, "requestContext": {"http": {"method": "GET"}, "requestId": "r"}}
response = handler(event)
print(json.dumps({
    "status": response["statusCode"],
    "stored": [info.key for info in derivatives.list()],
    "loaded": sorted(set(sys.modules) - before),
    "all": sorted(sys.modules),
}))
"""


def test_a_fresh_render_over_memory_stores_loads_no_http_client() -> None:
    """Rendering through the fallback without S3 loads no HTTP client at all (nor boto3)."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _FRESH_RENDER], capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["status"] == 200
    [stored] = result["stored"]
    assert stored.startswith("img/acme/photo.jpg/")
    assert stored.endswith("/w320-q80.webp")
    assert "imgcore.pixels" in result["loaded"]  # it really rendered in this interpreter
    loaded = result["all"]
    assert [m for m in loaded if m.split(".")[0] in ("boto3", "botocore")] == []
    assert [m for m in loaded if any(m == c or m.startswith(c + ".") for c in CLIENTS)] == []
