"""The three buckets: originals, derivatives and the access-log bucket, with their guards."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from imgcdn_infra.config import InfraConfig

__all__ = ["SUPERSEDED_TAG", "SUPERSEDED_VALUE", "Storage"]

SUPERSEDED_TAG = "imgcdn-superseded"
"""The S3 object tag precompute sets on an image's older versions' derivatives (the same
name precompute writes; infra may not import it)."""
SUPERSEDED_VALUE = "true"


def _guarded(scope: Construct, name: str, **props: Any) -> s3.Bucket:
    """A private, encrypted, TLS-only bucket that outlives the stack (it holds user data)."""
    return s3.Bucket(
        scope,
        name,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        removal_policy=RemovalPolicy.RETAIN,
        **props,
    )


def originals_lifecycle_rules(config: InfraConfig) -> list[s3.LifecycleRule]:
    """What ages out of a bucket of originals (the originals bucket and its replica alike):
    incomplete uploads, and noncurrent versions when `retention.originals_noncurrent_days`."""
    days = config.retention.originals_noncurrent_days
    rules = [
        s3.LifecycleRule(
            id="abort-incomplete-uploads",
            abort_incomplete_multipart_upload_after=Duration.days(7),
        )
    ]
    if days is not None:
        rules.append(
            s3.LifecycleRule(
                id="expire-noncurrent-originals",
                noncurrent_version_expiration=Duration.days(days),
            )
        )
    return rules


class Storage(Construct):
    """Originals (what tenants upload), derivatives (what the edge serves) and their logs."""

    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig) -> None:
        super().__init__(scope, construct_id)
        retention = config.retention
        # CloudFront's standard logs are delivered with ACLs, so this one bucket allows them;
        # S3 server access logs are granted by bucket policy (serverAccessLogsUseBucketPolicy).
        self.log_bucket = _guarded(
            self,
            "LogBucket",
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(retention.access_log_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
        )
        self.originals = _guarded(
            self,
            "Originals",
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="s3/originals/",
            lifecycle_rules=originals_lifecycle_rules(config),
        )
        self.derivatives = _guarded(
            self,
            "Derivatives",
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="s3/derivatives/",
            lifecycle_rules=[
                # A re-upload writes new keys ({class}/{tenant}/{id}/{version}/{variant}), so the
                # old version's derivatives stay *current* objects: only a tag can age them out.
                # Precompute tags them when a newer version becomes current (S3 then counts the
                # days from each object's creation, not from the tagging); expiring a current
                # object in a versioned bucket leaves a noncurrent version, removed below.
                s3.LifecycleRule(
                    id="expire-superseded-version-derivatives",
                    tag_filters={SUPERSEDED_TAG: SUPERSEDED_VALUE},
                    expiration=Duration.days(retention.superseded_derivatives_days),
                ),
                # Overwrites (a re-render of the same key), deletions (removed originals,
                # takedowns) and the expirations above leave noncurrent versions, then bare
                # delete markers, that nothing serves.
                s3.LifecycleRule(
                    id="expire-noncurrent-derivatives",
                    noncurrent_version_expiration=Duration.days(
                        retention.derivatives_noncurrent_days
                    ),
                    expired_object_delete_marker=True,
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
            ],
        )
