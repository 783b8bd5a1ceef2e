"""`imgcdn takedown`: one image, or thousands from a file, gone from every layer, with proof.

Where it acts, in this order: `--submit` puts the request on the deployed takedown queue (the
stack's Lambda runs it); `--stack NAME` reads the buckets and distribution from that stack's
outputs; `--originals-bucket` & co. (or their `IMGCDN_*` variables) name them directly;
otherwise the local stack at `--url` (`imgcdn dev`, default http://127.0.0.1:8080).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from imgcdn_ops.takedown import TakedownError
from imgcore.cli import Subparsers, emit

__all__ = ["configure_takedown"]

DEFAULT_URL = "http://127.0.0.1:8080"
_STACK_OUTPUTS = {
    "OriginalsBucket": "originals_bucket",
    "DerivativesBucket": "derivatives_bucket",
    "AuditBucket": "audit_bucket",
    "DistributionId": "distribution_id",
    "TakedownQueue": "queue_url",
}
_OPTIONAL_OUTPUTS = {"ReplicaBucket": "replica_bucket"}


def _stack_outputs(name: str, region: str | None) -> dict[str, str]:
    import boto3  # noqa: PLC0415 - only for --stack
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        client = boto3.session.Session().client("cloudformation", region_name=region)
        stacks = client.describe_stacks(StackName=name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        msg = f"cannot read stack {name!r}: {exc}; allowed: the name of a deployed imgcdn stack"
        raise TakedownError(msg) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", ())}
    found = {
        field: outputs[key]
        for key, field in {**_STACK_OUTPUTS, **_OPTIONAL_OUTPUTS}.items()
        if key in outputs
    }
    missing = [k for k in _STACK_OUTPUTS if k not in outputs]
    if missing:
        msg = f"stack {name!r} has no output {', '.join(missing)}; allowed: an imgcdn stack"
        raise TakedownError(msg)
    return found


def _aws_named(args: argparse.Namespace) -> bool:
    return bool(
        args.stack
        or args.originals_bucket
        or args.distribution_id
        or os.environ.get("IMGCDN_ORIGINALS_BUCKET")
    )


def _submit(args: argparse.Namespace) -> int:
    """Put each request on the deployed takedown queue."""
    import boto3  # noqa: PLC0415 - only for --submit
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from imgcdn_ops.handler import parse_message  # noqa: PLC0415

    queue_url = args.queue_url or os.environ.get("IMGCDN_TAKEDOWN_QUEUE")
    if not queue_url and args.stack:
        queue_url = _stack_outputs(args.stack, args.region)["queue_url"]
    if not queue_url:
        msg = "--submit needs the queue: --queue-url, IMGCDN_TAKEDOWN_QUEUE or --stack NAME"
        raise TakedownError(msg)
    targets = _requests(args)
    client = boto3.session.Session().client("sqs", region_name=args.region)
    sent = []
    for target, reason in targets:
        body = json.dumps(
            {"target": target, "class": args.content_class, "reason": reason, "actor": args.actor}
        )
        parse_message(body)  # the Lambda's own check: refuse here what it would drop there
        try:
            answer = client.send_message(QueueUrl=queue_url, MessageBody=body)
        except (ClientError, BotoCoreError) as exc:
            msg = f"cannot send to {queue_url}: {exc}"
            raise TakedownError(msg) from None
        sent.append({"target": target, "message_id": answer["MessageId"]})
    lines = [f"queued {s['target']} (message {s['message_id']})" for s in sent]
    emit(args, {"queue_url": queue_url, "submitted": sent}, "\n".join(lines))
    return 0


def _requests(args: argparse.Namespace) -> list[tuple[str, str]]:
    if args.target:
        return [(args.target, args.reason or "")]
    from imgcdn_ops.bulk import read_requests  # noqa: PLC0415

    requests, _ = read_requests(
        Path(args.from_file), reason=args.reason, content_class=args.content_class, tenants=None
    )
    return [(r.target.name, r.reason) for r in requests]


def _deployment(args: argparse.Namespace) -> Any:
    from imgcdn_aws.config import ConfigError  # noqa: PLC0415
    from imgcdn_ops.deployment import (  # noqa: PLC0415
        LocalStackError,
        aws_deployment,
        local_deployment,
    )

    try:
        if not _aws_named(args):
            return local_deployment(args.url, render_window_s=args.render_window)
        named: dict[str, Any] = {}
        if args.stack:
            named = _stack_outputs(args.stack, args.region)
            named.pop("queue_url", None)
        return aws_deployment(
            originals_bucket=args.originals_bucket or named.get("originals_bucket"),
            derivatives_bucket=args.derivatives_bucket or named.get("derivatives_bucket"),
            audit_bucket=args.audit_bucket or named.get("audit_bucket"),
            replica_bucket=args.replica_bucket or named.get("replica_bucket"),
            distribution_id=args.distribution_id or named.get("distribution_id"),
            tenants=args.tenants.split(",") if args.tenants else None,
            render_window_s=args.render_window,
        )
    except (ConfigError, LocalStackError) as exc:
        raise TakedownError(str(exc)) from None


def _run_takedown(args: argparse.Namespace) -> int:
    if bool(args.target) == bool(args.from_file):
        msg = "name one image (TENANT/IMAGE_ID) or give --from-file FILE, not both or neither"
        raise TakedownError(msg)
    if not (args.actor or "").strip():
        msg = "--actor is required: who asks for the takedown (it goes into the audit record)"
        raise TakedownError(msg)
    if args.submit:
        return _submit(args)
    if args.from_file:
        return _run_bulk(args)
    if not (args.reason or "").strip():
        msg = "--reason is required (a notice id, 'GDPR erasure request 123'): it is recorded"
        raise TakedownError(msg)
    return _run_one(args)


def _faults() -> tuple[type[Exception], ...]:
    from imgcdn_aws.cloudfront import CloudFrontError  # noqa: PLC0415
    from imgcdn_ops.deployment import LocalStackError  # noqa: PLC0415

    return (CloudFrontError, LocalStackError)


def _run_one(args: argparse.Namespace) -> int:
    from imgcdn_ops.invalidation import InvalidationQueue  # noqa: PLC0415
    from imgcdn_ops.takedown import parse_target, take_down  # noqa: PLC0415

    ports = _deployment(args)
    target = parse_target(args.target, args.content_class, tenants=ports.tenants)
    _check_tenant(ports, target.tenant)
    try:
        report = take_down(
            target,
            reason=args.reason,
            actor=args.actor,
            service=ports.service,
            queue=InvalidationQueue(
                ports.invalidator, poll_interval=args.poll_interval or ports.poll_interval_s
            ),
            dry_run=args.dry_run,
            wait=args.wait,
            render_window_s=ports.render_window_s,
        )
    except _faults() as exc:
        raise TakedownError(str(exc)) from None
    emit(args, report.as_dict(), report.summary())
    return 0 if report.complete else 1


def _check_tenant(ports: Any, tenant: str) -> None:
    """Without a tenant list, a tenant with nothing stored in any class is unknown."""
    if ports.tenants is not None:
        return
    service = ports.service
    for cls in ("img", "ugc"):
        prefix = f"{cls}/{tenant}/"
        for store in (service.originals, service.derivatives):
            if next(iter(store.list_versions(prefix)), None) is not None:
                return
    msg = (
        f"tenant {tenant!r} has nothing stored in {ports.where}; allowed: a tenant of this "
        "deployment (check the spelling; --tenants lists them for a deployment without objects)"
    )
    raise TakedownError(msg)


def _run_bulk(args: argparse.Namespace) -> int:
    from imgcdn_ops.bulk import Journal, Skipped, read_requests, run_bulk  # noqa: PLC0415
    from imgcdn_ops.invalidation import InvalidationQueue  # noqa: PLC0415

    ports = _deployment(args)
    source = Path(args.from_file)
    requests, skipped = read_requests(
        source, reason=args.reason, content_class=args.content_class, tenants=ports.tenants
    )
    unknown: dict[str, str] = {}
    for tenant in sorted({r.target.tenant for r in requests}):
        try:
            _check_tenant(ports, tenant)
        except TakedownError as exc:
            unknown[tenant] = str(exc)
    skipped += [
        Skipped(r.line, r.target.name, unknown[r.target.tenant])
        for r in requests
        if r.target.tenant in unknown
    ]
    skipped.sort(key=lambda s: s.line)
    requests = [r for r in requests if r.target.tenant not in unknown]
    if not requests:
        msg = f"{source} names no image of a known tenant: {'; '.join(unknown.values())}"
        raise TakedownError(msg)
    if args.dry_run:
        plans = [
            {"line": r.line, "target": r.target.name, "paths": list(r.target.paths)}
            for r in requests
        ]
        text = "\n".join(f"would take down {p['target']}" for p in plans)
        text += "".join(f"\nskipped line {s.line}: {s.why}" for s in skipped)
        emit(args, {"dry_run": True, "requests": plans, "skipped": len(skipped)}, text)
        return 0
    journal_path = (
        Path(args.journal) if args.journal else source.with_name(source.name + ".journal")
    )
    journal = Journal(journal_path)
    run_id = next((e.get("run_id") for e in journal.of("start")), None)
    if run_id is None:
        from imgcdn_ops.takedown import new_takedown_id  # noqa: PLC0415

        run_id = new_takedown_id()
        journal.write("start", run_id=run_id, input=str(source), actor=args.actor)
    try:
        report = run_bulk(
            requests,
            actor=args.actor,
            service=ports.service,
            queue=InvalidationQueue(
                ports.invalidator,
                salt=run_id,
                poll_interval=args.poll_interval or ports.poll_interval_s,
            ),
            journal=journal,
            skipped=skipped,
            wait_for_cdn=args.wait,
            render_window_s=ports.render_window_s,
            workers=args.workers,
            progress=sys.stderr,
        )
    except _faults() as exc:
        raise TakedownError(f"{exc}; rerun the same command to resume") from None
    finally:
        journal.close()
    emit(args, report.as_dict(), report.summary())
    return 1 if report.failed or any(d["problems"] for d in report.done) else 0


def configure_takedown(subparsers: Subparsers) -> None:
    """Add `imgcdn takedown`."""
    parser = subparsers.add_parser(
        "takedown",
        help="take an image down from every layer (storage, CDN) with an audit record",
        description=(
            "Delete every version of the original and of every derivative of TENANT/IMAGE_ID, "
            "invalidate it at CloudFront within its quotas, sweep again after the render "
            "window, verify, and write an audit record. A GDPR erasure is the same, with its "
            "reason recorded."
        ),
    )
    parser.add_argument("target", nargs="?", metavar="TENANT/IMAGE_ID", help="the image")
    parser.add_argument("--reason", help="why (recorded in the audit record)")
    parser.add_argument("--actor", help="who asks (recorded in the audit record)")
    parser.add_argument(
        "--class",
        dest="content_class",
        choices=["img", "ugc"],
        help="only this content class (default: both)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would go; change nothing")
    parser.add_argument(
        "--wait", action="store_true", help="wait until every invalidation is Completed"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--from-file",
        metavar="FILE",
        help="one TENANT/IMAGE_ID a line, optionally TAB and a reason; resumable",
    )
    parser.add_argument("--journal", help="the bulk run's journal (default FILE.journal)")
    parser.add_argument("--workers", type=int, default=8, help="images in flight (default 8)")
    parser.add_argument(
        "--submit", action="store_true", help="queue the request for the deployed Lambda"
    )
    parser.add_argument("--queue-url", help="the takedown queue (the stack's TakedownQueue)")
    parser.add_argument("--stack", help="a deployed imgcdn stack: read its outputs")
    parser.add_argument("--region", help="the stack's Region (default: the environment's)")
    parser.add_argument("--originals-bucket", help="default: IMGCDN_ORIGINALS_BUCKET")
    parser.add_argument("--derivatives-bucket", help="default: IMGCDN_DERIVATIVES_BUCKET")
    parser.add_argument("--audit-bucket", help="default: IMGCDN_AUDIT_BUCKET")
    parser.add_argument(
        "--replica-bucket", help="the originals' replica, if replicated (IMGCDN_REPLICA_BUCKET)"
    )
    parser.add_argument("--distribution-id", help="default: IMGCDN_DISTRIBUTION_ID")
    parser.add_argument("--tenants", help="the deployment's tenants, comma-separated")
    parser.add_argument(
        "--render-window",
        type=float,
        help="seconds a render in flight may still write (default: the target's; 35 on AWS)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        help="seconds between status reads (default 5 on AWS, 0.25 on a local stack)",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"a local stack (default {DEFAULT_URL})")
    parser.set_defaults(run=_run_takedown)
