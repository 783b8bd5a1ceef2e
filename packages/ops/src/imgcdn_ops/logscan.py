"""`imgcdn logs scan`: the probe monitor's parser over S3 server access logs a user downloaded.

    imgcdn logs scan FILE_OR_DIR... [--json] [--top N] [--account ID]... [--fail-on-findings]

Files may be plain or gzip; a directory is walked (every file below it, in name order). The
result says how many requests came through CloudFront, from the stack's own roles, and direct,
and for the direct ones the statuses, operations, top keys (as logged: URL-encoded) and top
sources (remote IP and requester), then every flagged line and the lines that did not parse.

Exit status: 0 when the scan completed; with `--fail-on-findings`, 1 when there were direct
requests or flagged lines (for CI or cron); 2 for a usage error or a file that cannot be read
or holds no S3 access log line at all.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from imgcdn_ops.accesslogs import Classifier, ScanSummary, decode_log_bytes, scan_lines
from imgcore import ImgcoreError
from imgcore.cli import Subparsers, emit

__all__ = ["configure_logs", "log_files", "scan_files"]

PROGRESS_FROM = 2
"""Files from which a progress bar is drawn (on a terminal, when rich is installed)."""
_SHOWN_ERRORS = 5
_ACCOUNT_DIGITS = 12


def log_files(paths: Sequence[str]) -> list[Path]:
    """The files to scan: each file given, and every file below each directory, in order.

    Raises:
        ImgcoreError: A path does not exist, or a directory holds no file.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            below = sorted(p for p in path.rglob("*") if p.is_file())
            if not below:
                msg = f"{raw}: the directory holds no file; expected S3 access log files"
                raise ImgcoreError(msg)
            found.extend(below)
        elif path.is_file():
            found.append(path)
        else:
            msg = f"{raw}: no such file or directory; expected S3 access log files or folders"
            raise ImgcoreError(msg)
    return found


def _read(path: Path) -> str:
    try:
        return decode_log_bytes(path.read_bytes())
    except OSError as exc:
        reason = exc.strerror or str(exc)
        msg = f"{path}: cannot be read ({reason}); expected an S3 access log file, plain or gzip"
        raise ImgcoreError(msg) from None


def scan_files(
    files: Sequence[Path],
    *,
    classifier: Classifier,
    on_file: Callable[[Path], None] | None = None,
) -> ScanSummary:
    """Scan every file into one summary.

    Raises:
        ImgcoreError: A file cannot be read, or none of its lines is an S3 access log line.
    """
    summary = ScanSummary()
    for path in files:
        records_before, errors_before = summary.records, summary.error_count
        scan_lines(
            _read(path).splitlines(), where=str(path), summary=summary, classifier=classifier
        )
        if summary.records == records_before and summary.error_count > errors_before:
            kept = summary.errors[errors_before : errors_before + 1]
            detail = f" (line {kept[0]['line']}: {kept[0]['error']})" if kept else ""
            msg = (
                f"{path}: no line is an S3 server access log line{detail}; expected the "
                "space-separated format S3 delivers"
            )
            raise ImgcoreError(msg)
        if on_file is not None:
            on_file(path)
    return summary


def _printable(text: str) -> str:
    """`text` with anything a terminal would interpret shown as an escape."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _table(title: str, rows: Sequence[tuple[str, int]]) -> list[str]:
    if not rows:
        return []
    width = max(len(f"{n:,}") for _, n in rows)
    return ["", title, *(f"  {n:>{width},}  {_printable(label)}" for label, n in rows)]


def summary_text(summary: ScanSummary, files: int, *, top: int) -> str:
    """The readable report of a scan."""
    sources = summary.by_source
    lines = [
        f"scanned {files} file(s): {summary.lines:,} lines, {summary.records:,} requests, "
        f"{summary.error_count:,} unparsed",
        f"  through CloudFront {sources['cloudfront']:,}   internal {sources['internal']:,}   "
        f"direct {summary.direct:,} ({summary.direct_errors:,} answered 4xx/5xx)   "
        f"flagged {summary.flagged_count:,}",
    ]
    lines += _table("direct requests by status", sorted(summary.direct_by_status.items()))
    lines += _table("direct requests by operation", summary.direct_by_operation.most_common())
    lines += _table("direct requests by bucket", sorted(summary.direct_by_bucket.items()))
    lines += _table(
        "top direct keys (as logged, URL-encoded)", summary.direct_keys.most_common(top)
    )
    lines += _table(
        "top direct sources (remote IP, requester)", summary.direct_sources.most_common(top)
    )
    if summary.flagged:
        lines += ["", f"flagged requests ({summary.flagged_count:,})"]
        for f in summary.flagged:
            r = f.record
            lines.append(
                f"  {_printable(f.where)}:{f.line}  {r.http_status or '-'} {f.source} "
                f"{r.remote_ip or '-'} {r.operation or '-'} {_printable(r.key or '-')}  "
                f"[{', '.join(f.reasons)}]"
            )
        if summary.flagged_count > len(summary.flagged):
            lines.append(f"  ... {summary.flagged_count - len(summary.flagged):,} more")
    if summary.errors:
        lines += ["", f"unparsed lines ({summary.error_count:,}; first {_SHOWN_ERRORS})"]
        lines += [
            f"  {_printable(e['where'])}:{e['line']}: {e['error']}"
            for e in summary.errors[:_SHOWN_ERRORS]
        ]
    if not summary.direct and not summary.flagged_count:
        lines += ["", "no direct or flagged requests"]
    return "\n".join(lines)


def _progress(count: int) -> tuple[AbstractContextManager[Any], Callable[[Path], None] | None]:
    """A progress bar on stderr for many files (a terminal and rich needed), else nothing."""
    if count < PROGRESS_FROM or not sys.stderr.isatty():
        return nullcontext(), None
    try:
        from rich.console import Console  # noqa: PLC0415 - only a terminal run draws it
        from rich.progress import Progress  # noqa: PLC0415
    except ImportError:  # rich is the optional `cli` extra
        return nullcontext(), None
    progress = Progress(console=Console(stderr=True), transient=True)
    task = progress.add_task("scanning logs", total=count)
    return progress, lambda _path: progress.advance(task)


def _run_scan(args: argparse.Namespace) -> int:
    if args.top < 1:
        msg = f"--top is {args.top}; allowed: 1 or more"
        raise ImgcoreError(msg)
    bad = [a for a in args.account if not (a.isdigit() and len(a) == _ACCOUNT_DIGITS)]
    if bad:
        msg = f"--account {bad[0]!r} is not an AWS account id; allowed: 12 digits"
        raise ImgcoreError(msg)
    files = log_files(args.paths)
    classifier = Classifier(accounts=frozenset(args.account))
    progress, on_file = _progress(len(files))
    with progress:
        summary = scan_files(files, classifier=classifier, on_file=on_file)
    result = {"files": len(files), **summary.as_dict(top=args.top)}
    emit(args, result, summary_text(summary, len(files), top=args.top))
    findings = summary.direct > 0 or summary.flagged_count > 0
    return 1 if args.fail_on_findings and findings else 0


def configure_logs(subparsers: Subparsers) -> None:
    """Add `imgcdn logs scan`: summarize downloaded S3 server access logs."""
    parser = subparsers.add_parser(
        "logs",
        help="read S3 server access logs (direct requests, probes)",
        description="Commands over S3 server access logs.",
    )
    commands = parser.add_subparsers(dest="logs_command", metavar="SUBCOMMAND", required=True)
    scan = commands.add_parser(
        "scan",
        help="summarize S3 server access logs: direct requests, probes, statuses",
        description=(
            "Parse S3 server access log files (plain or gzip; a directory is walked) and "
            "report the requests that did not come through CloudFront or the stack's own "
            "roles: statuses, operations, top keys and sources, and flagged keys (path "
            "traversal, encoded separators, control characters). Exit status: 0 scanned; 1 "
            "with --fail-on-findings when direct or flagged requests were found; 2 usage error "
            "or unreadable file."
        ),
    )
    scan.add_argument("paths", nargs="+", metavar="FILE", help="log files or folders of them")
    scan.add_argument("--json", action="store_true", help="print the result as JSON")
    scan.add_argument("--top", type=int, default=10, help="keys and sources listed (default 10)")
    scan.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="ID",
        help="the deployment's AWS account id (repeatable): IAM principals of other accounts "
        "count as direct (default: every IAM principal signing with a header is internal)",
    )
    scan.add_argument(
        "--fail-on-findings",
        action="store_true",
        help="exit 1 when any direct or flagged request was found",
    )
    scan.set_defaults(run=_run_scan)
