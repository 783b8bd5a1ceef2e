"""What the local stack reads from an ASGI request: its raw path and whether it is loopback.

Every path a request names is read from the ASGI scope's `raw_path`, percent-encoded as the
client sent it and as CloudFront hands it to the Function: `scope["path"]` is already decoded,
and decoding it a second time would turn `a%2541.jpg` into `aA.jpg`.
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request
from starlette.types import Scope

from imgcore.percent import encode_path

__all__ = ["is_loopback", "raw_path"]


def raw_path(scope: Scope) -> str:
    """The request's path exactly as sent: percent-encoded, never decoded.

    Bytes outside ASCII (a client that sent raw UTF-8) are percent-encoded, as a browser would
    have; a server that gives no `raw_path` (it is optional in ASGI) gets its decoded path
    re-encoded canonically.
    """
    raw = scope.get("raw_path")
    if raw is None:
        return encode_path(scope["path"])
    raw = bytes(raw).partition(b"?")[0]
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw)


def is_loopback(request: Request) -> bool:
    """Whether the client is on this machine (the admin and console write APIs answer only it)."""
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
