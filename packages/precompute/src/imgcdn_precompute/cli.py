"""`imgcdn backfill`: render what is missing for an existing catalogue, from the shell."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from imgcdn_aws.config import POLICY, S3_ENDPOINT, ConfigError, parse_endpoint, parse_policy
from imgcdn_aws.logs import configure_logging
from imgcdn_precompute.backfill import Backfill, Summary, TaskResult
from imgcdn_precompute.stores import open_store
from imgcore.cli import emit
from imgcore.errors import ImgcoreError
from imgcore.keys import validate_tenant
from imgcore.policy import DEFAULT_POLICY

__all__ = ["configure_backfill"]

EXIT_ERRORS = 1
"""Something was not rendered: an original failed or was rejected, or a store faulted."""
EXIT_INTERRUPTED = 130  # the shell's convention for SIGINT


class BackfillError(ImgcoreError):
    """A backfill argument is wrong; the message says what is allowed."""

    http_status = 400
    permanent = True


def _backfill_from_args(args: argparse.Namespace) -> Backfill:
    try:
        endpoint = args.s3_endpoint or os.environ.get(S3_ENDPOINT) or None
        if endpoint:
            endpoint = parse_endpoint(endpoint, "--s3-endpoint")
        if args.policy:
            policy = parse_policy(Path(args.policy).read_text("utf-8"), f"--policy {args.policy}")
        elif os.environ.get(POLICY):
            policy = parse_policy(os.environ[POLICY], POLICY)
        else:
            policy = DEFAULT_POLICY
    except ConfigError as exc:
        raise BackfillError(str(exc)) from None
    if args.tenant is not None:
        validate_tenant(args.tenant)
    if args.workers < 0:
        msg = f"--workers {args.workers}: allowed: 0 (in this process) or more"
        raise BackfillError(msg)
    backfill = Backfill(args.originals, args.derivatives, endpoint, policy.to_json())
    for spec, create in ((backfill.originals, False), (backfill.derivatives, True)):
        try:
            open_store(spec, endpoint_url=endpoint, create=create)
        except (ValueError, NotADirectoryError) as exc:
            raise BackfillError(str(exc)) from None
    return backfill


def _summary_text(summary: Summary) -> str:
    lines = [
        f"backfill: {summary.total} original(s) in {summary.seconds:.1f} s"
        + (" (interrupted: run again to resume)" if summary.interrupted else ""),
        f"  rendered  {summary.rendered}",
        f"  skipped   {summary.skipped} (already done)",
        f"  failed    {summary.failed} (cannot be rendered; reason recorded in its manifest)",
    ]
    if summary.rejected:
        lines.append(f"  rejected  {summary.rejected} (key outside {{class}}/{{tenant}}/{{id}})")
    if summary.gone:
        lines.append(f"  gone      {summary.gone} (removed while the backfill ran)")
    if summary.errors:
        lines.append(f"  errors    {summary.errors} (storage faults: run again to retry)")
    if summary.total > summary.done:
        lines.append(f"  not reached {summary.total - summary.done}")
    lines.extend(f"  {p['action']}: {p['key']}: {p['reason']}" for p in summary.problems[:20])
    return "\n".join(lines)


def _run_backfill(args: argparse.Namespace) -> int:
    try:
        import rich  # noqa: F401, PLC0415
    except ImportError:
        msg = "imgcdn backfill: the progress bar needs rich; install imgcdn-precompute[cli]"
        raise SystemExit(msg) from None
    from rich.console import Console  # noqa: PLC0415 - only this command draws progress
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    backfill = _backfill_from_args(args)
    log_level = logging.INFO if args.verbose else logging.WARNING
    configure_logging(json=False, level=log_level)  # stderr: stdout is the result
    console = Console(stderr=True)
    counts: dict[str, int] = {}
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    )
    task = progress.add_task("listing originals", total=None, counts="")

    def on_total(total: int) -> None:
        progress.update(task, total=total, description="backfill")

    def on_result(result: TaskResult) -> None:
        counts[result.action] = counts.get(result.action, 0) + 1
        text = " ".join(f"{name} {n}" for name, n in sorted(counts.items()))
        progress.update(task, advance=1, counts=text)

    with progress:
        summary = backfill.run(
            tenant=args.tenant,
            workers=args.workers,
            on_total=on_total,
            on_result=on_result,
            log_level=log_level,
        )
    result: dict[str, Any] = {
        "originals": backfill.originals,
        "derivatives": backfill.derivatives,
        "tenant": args.tenant,
        "workers": args.workers,
        **summary.as_dict(),
    }
    emit(args, result, _summary_text(summary))
    if summary.interrupted:
        return EXIT_INTERRUPTED
    # A script must see that the catalogue is not all rendered, not only that nothing crashed.
    return EXIT_ERRORS if summary.errors or summary.failed or summary.rejected else 0


def configure_backfill(subparsers: Any) -> None:
    """Add `imgcdn backfill` (entry point of the `imgcdn.commands` group)."""
    parser = subparsers.add_parser(
        "backfill",
        help="render the missing standard variants of an existing catalogue",
        description=(
            "Render the standard variant set and manifest of every original that has none yet. "
            "Safe to interrupt (Ctrl-C) and run again: it resumes where it stopped. Beyond one "
            "machine, the CDK app runs the same service on Step Functions Distributed Map. "
            "A catalogue is two stores, so a single --store is two options here: --originals "
            "(what is read) and --derivatives (what is written)."
        ),
        epilog=(
            "Exit status: 0 when every original is rendered or was already; 1 when any failed, "
            "was rejected or met a storage fault (the summary lists them); 130 when interrupted."
        ),
    )
    parser.add_argument(
        "--originals",
        required=True,
        metavar="DIR|s3://BUCKET",
        help="where the originals are: a bucket, an imgcdn local store, or a folder "
        "laid out as {class}/{tenant}/{id}",
    )
    parser.add_argument(
        "--derivatives",
        required=True,
        metavar="DIR|s3://BUCKET",
        help="where derivatives and manifests go: a bucket or a local store directory "
        "(created when missing)",
    )
    parser.add_argument("--tenant", help="only this tenant's originals")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes, one libvips thread each (default: the CPU count; "
        "0: in this process)",
    )
    parser.add_argument(
        "--s3-endpoint", help=f"S3-compatible endpoint URL (default: ${S3_ENDPOINT} or AWS)"
    )
    parser.add_argument(
        "--policy", metavar="FILE", help=f"policy JSON file (default: ${POLICY} or the default)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every original and variant to stderr"
    )
    parser.set_defaults(run=_run_backfill)
