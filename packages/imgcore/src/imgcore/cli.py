"""The `imgcdn` command line: a host for subcommands that each package registers as an entry point.

A package adds a subcommand by declaring, in its `pyproject.toml`,

    [project.entry-points."imgcdn.commands"]
    name = "package.module:configure"

where `configure(subparsers)` adds one parser and sets its `run` default to a function taking the
parsed arguments and returning an exit status. This module owns only imgcore's commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from imgcore.errors import ImgcoreError
from imgcore.keys import ContentClass
from imgcore.keyspace import key_space
from imgcore.params import canonicalize
from imgcore.policy import DEFAULT_POLICY
from imgcore.signing import SigningKey, sign_url
from imgcore.urls import build_url, srcset

__all__ = ["main"]

Subparsers = Any  # argparse's _SubParsersAction is private; the entry-point contract is duck-typed.
ENTRY_POINT_GROUP = "imgcdn.commands"


def emit(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    """Print a command's result: readable text, or JSON with `--json`."""
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, sort_keys=True, default=str))  # noqa: T201 - CLI output
    else:
        print(text)  # noqa: T201 - CLI output


_SUFFIX_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp", ".avif": "avif"}
"""Output file name endings that name a format: `-o x.png` without `--fmt` renders PNG."""


def _format_named_by(output: str | None) -> str | None:
    """The format an output file name's ending names, or None (a folder, no or another ending)."""
    if output is None or output.endswith(("/", os.sep)) or Path(output).is_dir():
        return None
    return _SUFFIX_FORMATS.get(Path(output).suffix.lower())


def _run_render(args: argparse.Namespace) -> int:
    from imgcore import pixels  # noqa: PLC0415 - libvips loads only for commands that need it

    named = _format_named_by(args.output)
    if named is not None and args.fmt is None:
        args.fmt = named
    # Encoded, so each option is one value: `--fmt 'webp&q=5'` is the format "webp&q=5" (a 400),
    # never a smuggled second parameter.
    query = urlencode(
        [
            (name, value)
            for name, value in (("w", args.w), ("h", args.h), ("fmt", args.fmt), ("q", args.q))
            if value is not None
        ]
    )
    params = canonicalize(query, accept=args.accept)
    if named is not None and params.fmt.value != named:
        msg = (
            f"-o {args.output} names a {named} file but --fmt {args.fmt} renders "
            f"{params.fmt.value}; allowed: --fmt {named}, or an output name ending "
            f".{params.fmt.value}, or a folder"
        )
        raise ImgcoreError(msg)
    source = Path(args.source)
    data = source.read_bytes()
    started = time.perf_counter()
    rendered = pixels.transform(data, params)
    elapsed_ms = (time.perf_counter() - started) * 1000
    out = _output_path(args.output, source, params.variant)
    out.write_bytes(rendered.data)
    result = {
        "source": str(source),
        "source_bytes": len(data),
        "output": str(out),
        "params": params.query(),
        "variant": params.variant,
        "media_type": rendered.media_type,
        "width": rendered.width,
        "height": rendered.height,
        "bytes": len(rendered.data),
        "ms": round(elapsed_ms, 1),
    }
    emit(
        args,
        result,
        f"{out}: {rendered.width}x{rendered.height} {rendered.media_type}, "
        f"{len(rendered.data):,} bytes ({params.query()}) in {elapsed_ms:.0f} ms",
    )
    return 0


def _output_path(output: str | None, source: Path, variant: str) -> Path:
    """Where `render` writes: a file as given, or SOURCE-stem.VARIANT inside a folder.

    A folder is an existing directory or any path written with a trailing `/` (created, with
    its parents, when missing); no `-o` means the source's own folder.
    """
    if output is None:
        return source.parent / f"{source.stem}.{variant}"
    out = Path(output)
    if output.endswith(("/", os.sep)) or out.is_dir():
        out.mkdir(parents=True, exist_ok=True)
        return out / f"{source.stem}.{variant}"
    return out


def configure_render(subparsers: Subparsers) -> None:
    """Add `imgcdn render`: one derivative of a local file, through the same rules as the edge."""
    parser = subparsers.add_parser(
        "render",
        help="render one derivative of a local image file",
        description="Render SOURCE as the edge would for ?w=&h=&fmt=&q= (values snap).",
    )
    parser.add_argument("source", help="path of the original image")
    parser.add_argument("--w", help="width in pixels (snapped up to a breakpoint)")
    parser.add_argument("--h", help="height in pixels (with --w: cover crop)")
    parser.add_argument(
        "--fmt",
        help="jpeg, png, webp, avif or auto (default: the format -o's ending names, else auto)",
    )
    parser.add_argument("--q", help="quality 1-100 (snapped up to the ladder)")
    parser.add_argument("--accept", default=None, help="Accept header used to resolve fmt=auto")
    parser.add_argument(
        "-o",
        "--output",
        help="output file, or a folder (an existing one, or any path ending in '/', created) "
        "for SOURCE-name.VARIANT (default: beside SOURCE)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=_run_render)


def _run_probe(args: argparse.Namespace) -> int:
    from imgcore import pixels  # noqa: PLC0415 - libvips loads only for commands that need it

    info = pixels.probe(Path(args.source).read_bytes())
    result = {
        "format": info.format.value,
        "width": info.width,
        "height": info.height,
        "display_size": list(info.display_size),
        "frames": info.frames,
        "orientation": info.orientation,
        "has_alpha": info.has_alpha,
        "interpretation": info.interpretation,
    }
    dw, dh = info.display_size
    emit(args, result, f"{args.source}: {info.format.value} {dw}x{dh}, {info.frames} frame(s)")
    return 0


def configure_probe(subparsers: Subparsers) -> None:
    """Add `imgcdn probe`: what admission sees in a file's header."""
    parser = subparsers.add_parser("probe", help="read an image's header and check admission")
    parser.add_argument("source", help="path of the image")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=_run_probe)


def _run_policy(args: argparse.Namespace) -> int:
    if args.keys:
        space = key_space(DEFAULT_POLICY)
        data = {"keys_per_image": space.keys, "boxes": space.boxes, "encodings": space.encodings}
        text = (
            f"one image version has at most {space.keys:,} distinct cache keys: "
            f"{space.boxes} boxes (full, each width, each height, each width x ratio x fit "
            f"and gravity) x {space.encodings} encodings (each lossy format x quality, PNG)"
        )
        emit(args, data, text)
        return 0
    # The policy is JSON either way; --json is accepted as on every other command.
    text = DEFAULT_POLICY.to_json() if args.compact else DEFAULT_POLICY.model_dump_json(indent=2)
    print(text)  # noqa: T201 - CLI output
    return 0


def configure_policy(subparsers: Subparsers) -> None:
    """Add `imgcdn policy`: the policy JSON the Function and the CDK app are generated from."""
    parser = subparsers.add_parser("policy", help="print the default policy as JSON")
    parser.add_argument("--compact", action="store_true", help="canonical one-line JSON")
    parser.add_argument(
        "--json", action="store_true", help="print JSON (the default: the policy is JSON)"
    )
    parser.add_argument(
        "--keys",
        action="store_true",
        help="print instead how many distinct cache keys one image version can have",
    )
    parser.set_defaults(run=_run_policy)


def _run_url(args: argparse.Namespace) -> int:
    common: dict[str, Any] = {
        "base_url": args.base_url,
        "content_class": args.content_class,
        "fmt": args.fmt,
        "q": args.q,
    }
    url = build_url(args.tenant, args.image_id, args.version, w=args.w, h=args.h, **common)
    result: dict[str, Any] = {"url": url}
    if args.srcset:
        result["srcset"] = srcset(args.tenant, args.image_id, args.version, **common)
    if args.key_id:
        if not args.private_key:
            msg = "--key-id needs --private-key (a PEM file)"
            raise ImgcoreError(msg)
        key = SigningKey(args.key_id, Path(args.private_key).read_bytes())
        result["signed_url"] = sign_url(url, key, expires=int(time.time()) + args.expires_in)
    emit(args, result, "\n".join(str(v) for v in result.values()))
    return 0


def configure_url(subparsers: Subparsers) -> None:
    """Add `imgcdn url`: canonical, optionally signed, URLs and srcsets from the shell."""
    parser = subparsers.add_parser("url", help="print a canonical (optionally signed) image URL")
    parser.add_argument("tenant", help="tenant id (a-z, 0-9, '-')")
    parser.add_argument("image_id", help="image id, as uploaded (may hold '/')")
    parser.add_argument("version", help="the original's version (16 hex digits)")
    parser.add_argument("--w", type=int, help="width in pixels (snapped up to a breakpoint)")
    parser.add_argument("--h", type=int, help="height in pixels (with --w: cover crop)")
    parser.add_argument("--fmt", help="jpeg, png, webp, avif or auto (default: auto, omitted)")
    parser.add_argument("--q", type=int, help="quality 1-100 (snapped up to the ladder)")
    parser.add_argument(
        "--base-url",
        default="http://127.0.0.1:8080",
        help="scheme and host to prepend (default http://127.0.0.1:8080)",
    )
    parser.add_argument(
        "--class",
        dest="content_class",
        default=ContentClass.STANDARD.value,
        choices=[c.value for c in ContentClass],
        help="img: standard; ugc: takedown-eligible (short TTL)",
    )
    parser.add_argument("--srcset", action="store_true", help="also print a srcset")
    parser.add_argument("--key-id", help="CloudFront public key id, to sign the URL")
    parser.add_argument("--private-key", help="PEM file of the RSA private key")
    parser.add_argument("--expires-in", type=int, default=3600, help="seconds (default 3600)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=_run_url)


class _Version(argparse.Action):
    """`--version`: the versions on one line (argparse's own action rewraps the text)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(_versions())  # noqa: T201 - CLI output
        parser.exit()


def _versions() -> str:
    """`imgcdn X.Y.Z` and the version of each installed imgcdn package."""
    from importlib.metadata import PackageNotFoundError, distributions, version  # noqa: PLC0415

    try:
        own = version("imgcore")
    except PackageNotFoundError:
        own = "unknown"
    names = sorted(
        {
            d.metadata["Name"]
            for d in distributions()
            if (d.metadata["Name"] or "").lower().startswith("imgcdn-")
        }
    )
    parts = ", ".join(f"{n} {version(n)}" for n in names)
    return f"imgcdn {own}" + (f" ({parts})" if parts else "")


def build_parser() -> argparse.ArgumentParser:
    """The `imgcdn` parser with every installed package's subcommands."""
    parser = argparse.ArgumentParser(
        prog="imgcdn", description="imgcdn: pre-computed, safe image delivery for AWS."
    )
    parser.add_argument("--version", action=_Version, help="print the installed versions")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            configure: Callable[[Subparsers], None] = entry.load()
        except (ImportError, AttributeError) as exc:
            # One broken plugin must not take every other command down with it.
            warning = f"imgcdn: command {entry.name!r} is unavailable: {exc}"
            print(warning, file=sys.stderr)  # noqa: T201 - CLI diagnostics go to stderr
            continue
        configure(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `imgcdn`; returns the exit status (2 for a user error, with what is allowed)."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's shutdown
    except ImgcoreError as exc:
        print(f"imgcdn {args.command}: {exc}", file=sys.stderr)  # noqa: T201 - CLI output
        return 2
    except BrokenPipeError:
        # The reader went away (`imgcdn upload ... | head`): say nothing more, as Unix tools
        # do, and keep Python from complaining about stdout again at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13  # what a shell reports for a command ended by SIGPIPE
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        # An OSError made from a message only (a dropped connection) has no strerror, and one
        # made from nothing prints as nothing: never print "None".
        words = exc.strerror or str(exc).strip() or type(exc).__name__
        failure = f"imgcdn {args.command}: {words}{where}"
        print(failure, file=sys.stderr)  # noqa: T201 - CLI output
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
