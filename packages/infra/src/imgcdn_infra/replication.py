"""Region loss: the originals replicated to a bucket in a second Region (opt-in).

Derivatives can always be rendered again; originals cannot. With `replication.region` set, a
`ReplicaStack` in that Region holds a versioned, encrypted, private replica bucket, and the
originals bucket replicates every new object version to it through a role that may read
versions for replication from the source and replicate into the replica, nothing else.

Delete markers are replicated, on purpose: a plain delete at the source (a tenant removing an
image) then hides the object in the replica too, so a failover does not bring deleted images
back, while every version stays recoverable there. What S3 never replicates is the deletion of
a *version*, and that is what a takedown does (R10): a takedown must also delete every version
in the replica (`imgcdn takedown` is pointed at it with the `ReplicaBucket` output). Lifecycle
actions are not replicated either, so the replica gets the originals' own lifecycle rules.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from imgcdn_infra.config import InfraConfig
from imgcdn_infra.nag import acknowledge, wildcard_findings
from imgcdn_infra.storage import _guarded, originals_lifecycle_rules

__all__ = ["OriginalsReplication", "ReplicaStack", "replica_bucket_name"]

REPLICA_OBJECTS = (
    "S3 replication reads every object version of the originals bucket and writes every one "
    "into the replica: object ARNs end in /* because the whole bucket is replicated, and the "
    "role can touch these two buckets only."
)


_NAME_PREFIX_CHARS = 24
"""Bucket names have 63 characters: prefix, 6 of hash, a 12-digit account, a Region (<= 14)."""


def replica_bucket_name(config: InfraConfig) -> str:
    """The replica bucket's name, the same token in both stacks: no lookup across Regions.

    `{stack name, lower case, cut}-{hash of the stack name}-{account}-{replica Region}`: bucket
    names are global, so the account and Region keep two deployments apart, and the hash two
    stack names that share their first characters. The account is each stack's own
    `AWS::AccountId`, so the originals' stack reads the name without a cross-Region reference.
    """
    if config.replication is None:  # pragma: no cover - only called when replication is set
        msg = "replication is not configured"
        raise ValueError(msg)
    name = config.stack_name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    prefix = name.lower()[:_NAME_PREFIX_CHARS]
    return Fn.join("-", [prefix, digest, Aws.ACCOUNT_ID, config.replication.region])


class ReplicaStack(Stack):
    """The replica of the originals bucket, in `replication.region`."""

    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig, **kwargs: Any):
        super().__init__(scope, construct_id, **kwargs)
        self.log_bucket = _guarded(
            self,
            "LogBucket",
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(config.retention.access_log_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
        )
        self.bucket = _guarded(
            self,
            "OriginalsReplica",
            bucket_name=replica_bucket_name(config),
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="s3/originals-replica/",
            lifecycle_rules=originals_lifecycle_rules(config),
        )
        acknowledge(
            self.log_bucket,
            ["AwsSolutions-S1"],
            "This bucket receives the replica bucket's server access logs; logging the log "
            "bucket into itself would loop.",
        )
        CfnOutput(self, "ReplicaBucket", value=self.bucket.bucket_name)


class OriginalsReplication(Construct):
    """The originals bucket's replication rule and the role S3 replicates with."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        originals: s3.Bucket,
        replica: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        if config.replication is None:  # pragma: no cover - the app builds this only when set
            msg = "replication is not configured"
            raise ValueError(msg)
        self.replica = replica
        statements = [
            iam.PolicyStatement(
                actions=["s3:GetReplicationConfiguration", "s3:ListBucket"],
                resources=[originals.bucket_arn],
            ),
            iam.PolicyStatement(
                actions=[
                    "s3:GetObjectVersionForReplication",
                    "s3:GetObjectVersionAcl",
                    "s3:GetObjectVersionTagging",
                ],
                resources=[originals.arn_for_objects("*")],
            ),
            iam.PolicyStatement(
                actions=["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
                resources=[replica.arn_for_objects("*")],
            ),
        ]
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("s3.amazonaws.com"),
            description="imgcdn: S3 replicates the originals into their replica bucket",
        )
        # A policy of its own, not inline: the bucket names the role and the policy names the
        # bucket, which inline would make a cycle.
        policy = iam.Policy(
            self, "Policy", document=iam.PolicyDocument(statements=statements), roles=[self.role]
        )
        acknowledge(
            policy,
            wildcard_findings(Stack.of(self), iam.PolicyDocument(statements=statements)),
            REPLICA_OBJECTS,
        )
        bucket = originals.node.default_child
        if not isinstance(bucket, s3.CfnBucket):  # pragma: no cover - an s3.Bucket's own child
            msg = "the originals bucket has no CfnBucket"
            raise TypeError(msg)
        bucket.replication_configuration = s3.CfnBucket.ReplicationConfigurationProperty(
            role=self.role.role_arn,
            rules=[
                s3.CfnBucket.ReplicationRuleProperty(
                    id="originals-to-replica",
                    status="Enabled",
                    priority=0,
                    # An empty prefix: every object. A filter selects the current rule schema,
                    # which delete-marker replication needs.
                    filter=s3.CfnBucket.ReplicationRuleFilterProperty(prefix=""),
                    delete_marker_replication=s3.CfnBucket.DeleteMarkerReplicationProperty(
                        status="Enabled"
                    ),
                    destination=s3.CfnBucket.ReplicationDestinationProperty(
                        bucket=replica.bucket_arn,
                        storage_class=config.replication.storage_class,
                    ),
                )
            ],
        )
