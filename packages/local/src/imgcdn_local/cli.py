"""`imgcdn dev` (run the local stack) and `imgcdn upload` (send originals to a running one)."""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from imgcdn_local.state import STATE_FILE, find_stack
from imgcore import ContentClass, ImageRef, ImgcoreError
from imgcore.cli import Subparsers, emit
from imgcore.percent import encode_path

__all__ = ["UploadNotStored", "configure_dev", "configure_upload", "connection_failure"]

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_DATA = ".imgcdn"


def _port(text: str) -> int:
    """A TCP port for `--port`: 0-65535 (0: any free port)."""
    if not text.isdigit() or int(text) > 65535:
        msg = f"{text!r}; allowed: 1-65535, or 0 for any free port"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        msg = f"{text!r}; allowed: 1-64 worker threads"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def _endpoint(text: str) -> str:
    from imgcdn_aws.config import ConfigError, parse_endpoint  # noqa: PLC0415 - dev only

    try:
        return parse_endpoint(text, "--s3-endpoint")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run_dev(args: argparse.Namespace) -> int:
    from imgcdn_local.server import serve  # noqa: PLC0415 - the server stack loads only here
    from imgcdn_local.signed import key_groups  # noqa: PLC0415 - loads with the server

    groups = key_groups(args.signed_tenant)  # a bad value is a one-line error, before serving
    return serve(
        host=args.host,
        port=args.port,
        data_dir=Path(args.data),
        s3_endpoint=args.s3_endpoint,
        workers=args.render_workers,
        log_json=args.log_json,
        key_groups=groups,
    )


def configure_dev(subparsers: Subparsers) -> None:
    """Add `imgcdn dev`: the whole pipeline on this machine, like the distribution."""
    parser = subparsers.add_parser(
        "dev",
        help="run the local stack (edge cache, origin group, fallback, precompute)",
        description=(
            "Serve the distribution's URL space on HOST:PORT: the viewer-request rewrite, a "
            "cache with the behaviours' TTLs, the derivatives store with the fallback behind "
            "it, and the precompute worker fed by uploads. Ctrl-C stops it cleanly."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=8080, help="port, 0-65535 (default 8080; 0: any free)"
    )
    parser.add_argument(
        "--data",
        default=DEFAULT_DATA,
        help=f"data folder (default ./{DEFAULT_DATA}); its {STATE_FILE} tells `imgcdn upload` "
        "where the stack listens",
    )
    parser.add_argument(
        "--s3-endpoint",
        type=_endpoint,
        help="use this S3-compatible server (http(s)://host[:port]) for originals and "
        "derivatives instead of --data",
    )
    parser.add_argument(
        "--render-workers", type=_workers, default=1, help="precompute worker threads (default 1)"
    )
    parser.add_argument(
        "--log-json",
        action="store_true",
        default=None,
        help="log one JSON object per line on stdout (default when stderr is not a terminal)",
    )
    parser.add_argument(
        "--signed-tenant",
        action="append",
        default=[],
        metavar="TENANT=KEY_ID:PEM",
        help=(
            "require CloudFront signed URLs for TENANT's paths, trusting the PEM public key file "
            "as KEY_ID (the Key-Pair-Id); repeat for more keys or tenants"
        ),
    )
    parser.set_defaults(run=_run_dev)


class UploadNotStored(ImgcoreError):
    """One file of an `imgcdn upload` could not be stored (see `connection_failure`).

    Attributes:
        maybe_stored: The request may have reached the stack (the connection broke before its
            answer), so the file may be stored; False when it certainly is not.
    """

    def __init__(self, message: str, *, maybe_stored: bool) -> None:
        """Carry `message` and whether the file may be stored all the same."""
        super().__init__(message)
        self.maybe_stored = maybe_stored


def connection_failure(exc: BaseException) -> str:
    """What went wrong on a connection, in words, whatever shape the exception has.

    urllib, http.client and socket errors carry their words in different places: `reason` (a
    string or another exception), `strerror` (None unless the OS gave a code), or only their
    type (`RemoteDisconnected`, `IncompleteRead`). Formatting one from its parts without
    looking printed "None: None".
    """
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        return connection_failure(reason) if isinstance(reason, BaseException) else str(reason)
    if isinstance(exc, http.client.IncompleteRead):
        return f"the answer stopped after {len(exc.partial):,} bytes"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    name = type(exc).__name__
    if all(arg is None for arg in exc.args):  # OSError(None, None) prints "[Errno None] None"
        return name
    text = str(exc).strip()
    return f"{name}: {text}" if text else name


def _upload_one(url: str, path: Path, image: ImageRef, wait: bool) -> dict[str, Any]:
    target = f"{url.rstrip('/')}/_admin/originals/{encode_path(image.source_key)}"
    if wait:
        target += "?wait=1"
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"{path}: cannot be read ({connection_failure(exc)})"
        raise UploadNotStored(msg, maybe_stored=False) from None
    request = urllib.request.Request(target, data=data, method="PUT")  # noqa: S310 - the user's own stack URL
    request.add_header("content-type", "application/octet-stream")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310
            result: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip()
        msg = f"{path}: the stack answered {exc.code}: {detail}"
        raise UploadNotStored(msg, maybe_stored=False) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # URLError (refused, reset), a connection dropped mid-answer, or a garbled answer.
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, ConnectionRefusedError):
            msg = (
                f"cannot reach the local stack at {url} ({connection_failure(reason)}); "
                "start it with: imgcdn dev"
            )
            raise UploadNotStored(msg, maybe_stored=False) from None
        msg = f"{path}: no answer from the local stack at {url} ({connection_failure(exc)})"
        raise UploadNotStored(msg, maybe_stored=True) from None
    return result


def _stack_url(args: argparse.Namespace) -> str:
    """`--url`, else the stack noted in the data folder, else the default address."""
    if args.url:
        return str(args.url)
    return find_stack(Path(args.data)) or DEFAULT_URL


def _unreachable(args: argparse.Namespace, url: str, reason: object) -> ImgcoreError:
    if args.url:
        msg = f"cannot reach the local stack at {url} ({reason}); check --url, or start: imgcdn dev"
    else:
        msg = (
            f"no local stack answers at {url} ({reason}) and {Path(args.data) / STATE_FILE} "
            "names none running; start one with: imgcdn dev, or pass --url with the address "
            "`imgcdn dev` printed (or --data with its data folder)"
        )
    return ImgcoreError(msg)


def _check_reachable(args: argparse.Namespace, url: str) -> None:
    """Fail in one line before the first upload when nothing answers at `url`."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_health", timeout=10):  # noqa: S310 - the user's own stack URL
            return
    except urllib.error.HTTPError:
        return  # something answers: the upload's own answer will say more
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(args, url, getattr(exc, "reason", exc)) from None


def _describe(r: dict[str, Any]) -> str:
    lines = [f"{r['tenant']}/{r['image_id']}  version {r['version']}  ({r['bytes']:,} bytes)"]
    if "status" in r:
        detail = f"{r['variants']} variants" if r["status"] == "complete" else r.get("failure")
        lines.append(f"  status   {r['status']}: {detail}")
    lines += [f"  url      {r['url']}", f"  example  {r['example']}", f"  page     {r['page']}"]
    return "\n".join(lines)


def _run_upload(args: argparse.Namespace) -> int:
    from rich.console import Console  # noqa: PLC0415 - only this command draws progress
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    paths = [Path(p) for p in args.paths]
    if args.id and len(paths) > 1:
        msg = "--id names one image; give one PATH with it"
        raise ImgcoreError(msg)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        msg = f"not a file: {', '.join(missing)}; allowed: paths of image files"
        raise ImgcoreError(msg)
    cls = ContentClass.TAKEDOWN if args.takedown_eligible else ContentClass.STANDARD
    images = [ImageRef(args.tenant, args.id or path.name, cls) for path in paths]  # checks ids
    url = _stack_url(args)
    _check_reachable(args, url)
    console = Console(stderr=True)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=True,
        redirect_stdout=False,
    )
    results: list[dict[str, Any]] = []
    failure: UploadNotStored | None = None
    not_sent: list[str] = []
    with progress:
        task = progress.add_task("uploading", total=len(paths))
        for number, (path, image) in enumerate(zip(paths, images, strict=True)):
            doing = "rendering" if args.wait else "uploading"
            progress.update(task, description=f"{doing} {path.name}")
            try:
                result = _upload_one(url, path, image, args.wait)
            except UploadNotStored as exc:
                failure = exc
                not_sent = [str(p) for p in paths[number + 1 :]]
                break
            results.append(result)
            if not args.json and console.is_terminal and sys.stdout.isatty():
                # One screen: the line goes above the bar, which rich redraws below it.
                progress.console.print(_describe(result), highlight=False, soft_wrap=True)
            elif not args.json:  # a line per file as it completes, on stdout
                print(_describe(result), flush=True)  # noqa: T201 - CLI output
            progress.advance(task)
    if failure is None:
        if args.json:
            emit(args, {"url": url, "uploads": results}, "")
        failed = [r for r in results if r.get("status") == "failed"]
        return 1 if failed else 0
    return _report_failure(args, paths, results, failure, not_sent)


def _report_failure(
    args: argparse.Namespace,
    paths: list[Path],
    results: list[dict[str, Any]],
    failure: UploadNotStored,
    not_sent: list[str],
) -> int:
    """Say which files were stored before the stack failed, which is in doubt, which unsent."""
    in_flight = str(paths[len(results)])
    fate = (
        "not confirmed (the stack may or may not have stored it: upload it again)"
        if failure.maybe_stored
        else "not stored"
    )
    summary = (
        f"stored before the failure: {len(results)} of {len(paths)} files"
        f"{' (listed above)' if results else ''}; {in_flight}: {fate}; not sent: "
        f"{', '.join(not_sent) if not_sent else 'none'}"
    )
    emit(
        args,
        {
            "uploads": results,
            "error": str(failure),
            "failed": {"path": in_flight, "maybe_stored": failure.maybe_stored},
            "not_sent": not_sent,
        },
        summary,
    )
    print(f"imgcdn upload: {failure}", file=sys.stderr)  # noqa: T201 - CLI output
    return 2


def configure_upload(subparsers: Subparsers) -> None:
    """Add `imgcdn upload`: put originals into a running local stack."""
    parser = subparsers.add_parser(
        "upload",
        help="upload originals to a running local stack and print their URLs",
        description=(
            "Upload each PATH as {class}/{tenant}/{id}; prints a line per file as it completes "
            "(its version, status and URLs), with a progress bar on a terminal."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files")
    parser.add_argument("--tenant", required=True, help="tenant id (a-z, 0-9, '-')")
    parser.add_argument("--id", help="image id (default: the file name)")
    parser.add_argument(
        "--takedown-eligible",
        action="store_true",
        help="serve under /ugc/ with a 60 s TTL, so a takedown takes effect within a minute",
    )
    parser.add_argument(
        "--url",
        help=f"the stack (default: the one running on --data, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--data",
        default=DEFAULT_DATA,
        help=f"the data folder of the `imgcdn dev` to use (default ./{DEFAULT_DATA})",
    )
    parser.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="return as soon as the original is stored (default: wait for the standard set)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=_run_upload)
