"""Least privilege, written out: each Lambda's role and every S3 statement it holds (R17).

Statements name bucket ARNs and `{class}/{tenant}/` prefixes explicitly instead of using CDK's
`grant_*` helpers, so a reader (and a test) sees exactly what each function may do. Listing is
allowed only under the same prefixes; note that S3 therefore answers a read of a missing key with
403 AccessDenied rather than 404 (the handlers treat both as "not there").
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

__all__ = [
    "fallback_statements",
    "lambda_role",
    "precompute_statements",
    "queue_consumer_statements",
    "takedown_statements",
]

CONSUME_ACTIONS = (
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
)
"""What Lambda's SQS event source needs of the function's role (CDK's grant_consume_messages)."""
ERASE_ACTIONS = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:GetObject",
    "s3:GetObjectVersion",
)
"""A takedown deletes every version and delete marker of a key, then reads to prove it gone."""
LIST_VERSIONS_ACTIONS = ("s3:ListBucket", "s3:ListBucketVersions")
INVALIDATION_ACTIONS = ("cloudfront:CreateInvalidation", "cloudfront:GetInvalidation")


def _objects(bucket: s3.IBucket, prefixes: Sequence[str], suffix: str = "*") -> list[str]:
    return [bucket.arn_for_objects(f"{prefix}{suffix}") for prefix in prefixes]


def _list(sid: str, bucket: s3.IBucket, prefixes: Sequence[str]) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid=sid,
        actions=["s3:ListBucket"],
        resources=[bucket.bucket_arn],
        conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
    )


def precompute_statements(
    originals: s3.IBucket, derivatives: s3.IBucket, prefixes: Sequence[str]
) -> list[iam.PolicyStatement]:
    """The worker reads originals and owns derivatives, under the tenants' prefixes only."""
    return [
        iam.PolicyStatement(
            sid="ReadOriginals",
            actions=["s3:GetObject", "s3:GetObjectVersion"],
            resources=_objects(originals, prefixes),
        ),
        _list("ListOriginals", originals, prefixes),
        iam.PolicyStatement(
            sid="ReadWriteDeleteDerivatives",
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            resources=_objects(derivatives, prefixes),
        ),
        _list("ListDerivatives", derivatives, prefixes),
        # Marks an image's older versions' derivatives for the bucket's lifecycle rule
        # (`imgcdn-superseded=true`), and clears the mark from a version made current again
        # (read first, so only a marked set is rewritten).
        iam.PolicyStatement(
            sid="TagSupersededDerivatives",
            actions=["s3:GetObjectTagging", "s3:PutObjectTagging", "s3:DeleteObjectTagging"],
            resources=_objects(derivatives, prefixes),
        ),
    ]


def queue_consumer_statements(
    queue: sqs.IQueue, *, sid: str = "ConsumeUploads"
) -> list[iam.PolicyStatement]:
    """Receive, extend and delete messages of `queue` (and nothing of any other queue).

    The queue is SQS-managed encrypted (SSE-SQS), so no KMS permission is needed.
    """
    return [
        iam.PolicyStatement(sid=sid, actions=list(CONSUME_ACTIONS), resources=[queue.queue_arn])
    ]


def fallback_statements(
    originals: s3.IBucket, derivatives: s3.IBucket, prefixes: Sequence[str]
) -> list[iam.PolicyStatement]:
    """The fallback reads originals (any version) and manifests, and writes derivatives only."""
    return [
        iam.PolicyStatement(
            sid="ReadOriginals",
            actions=["s3:GetObject", "s3:GetObjectVersion"],
            resources=_objects(originals, prefixes),
        ),
        iam.PolicyStatement(
            sid="ReadManifests",
            actions=["s3:GetObject"],
            resources=_objects(derivatives, prefixes, "*/manifest.json"),
        ),
        iam.PolicyStatement(
            sid="WriteDerivatives",
            actions=["s3:PutObject"],
            resources=_objects(derivatives, prefixes),
        ),
    ]


def lambda_role(
    scope: Construct,
    construct_id: str,
    *,
    log_group: logs.ILogGroup,
    statements: Sequence[iam.PolicyStatement],
    description: str,
) -> iam.Role:
    """A role for one function: its own log group and `statements`, no managed policies."""
    return iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=description,
        inline_policies={
            "least-privilege": iam.PolicyDocument(
                statements=[
                    iam.PolicyStatement(
                        sid="WriteOwnLogs",
                        actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                        resources=[log_group.log_group_arn],
                    ),
                    *statements,
                ]
            )
        },
    )


def takedown_statements(
    *,
    originals: s3.IBucket,
    derivatives: s3.IBucket,
    prefixes: Sequence[str],
    audit: s3.IBucket,
    audit_prefix: str,
    distribution_arn: str,
    replica: s3.IBucket | None = None,
) -> list[iam.PolicyStatement]:
    """Erase under the tenants' prefixes, invalidate this distribution, append audit records.

    With cross-Region replication the originals' replica is erased under the same prefixes.

    No `s3:PutObject` on the data buckets (a takedown never writes an image) and no read of the
    audit bucket: records are written once, with `If-None-Match`, and never read back here.
    """
    # One statement per action set, naming both buckets: the same grants as one per bucket, in
    # fewer characters of IAM's 10,240 per role (config._iam_policy_chars budgets this role).
    return [
        iam.PolicyStatement(
            sid="EraseImages",
            actions=list(ERASE_ACTIONS),
            resources=[
                *_objects(originals, prefixes),
                *_objects(derivatives, prefixes),
                *(_objects(replica, prefixes) if replica is not None else []),
            ],
        ),
        iam.PolicyStatement(
            sid="ListImageVersions",
            actions=list(LIST_VERSIONS_ACTIONS),
            resources=[
                originals.bucket_arn,
                derivatives.bucket_arn,
                *([replica.bucket_arn] if replica is not None else []),
            ],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
        ),
        iam.PolicyStatement(
            sid="WriteAuditRecords",
            actions=["s3:PutObject"],
            resources=[audit.arn_for_objects(f"{audit_prefix}*")],
        ),
        iam.PolicyStatement(
            sid="InvalidateDistribution",
            actions=list(INVALIDATION_ACTIONS),
            resources=[distribution_arn],
        ),
    ]
