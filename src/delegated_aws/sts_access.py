"""Access checks: with the new credentials, do the listed resources answer?

Part of the AWS seam (with ``sts`` and ``sts_errors``). Per resource and
action: S3 ``s3:ListBucket`` and, when an object is listed, ``s3:GetObject``
of its first byte; KMS ``kms:DescribeKey``; ECR ``ecr:GetAuthorizationToken``
once per region and ``ecr:BatchGetImage`` per repository. Every failure
becomes a ``Failed`` check naming the action and the resource ARN; nothing
here raises. A denied GetObject where KMS is involved says that a
customer-managed key is the likely cause and names ``kms:Decrypt`` and the key
policy.

Everything here blocks; ``StsGateway.check_access`` runs it in a worker
thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from delegated_aws import arns
from delegated_aws.models import AccessCheck, Resources
from delegated_aws.sts_errors import (
    DENIED_CODES,
    NOT_FOUND_CODES,
    error_code,
    error_text,
    sanitise,
)

ClientFactory = Callable[[str, str], Any]
"""Makes a client of (service, region) acting with the new credentials."""

# A tag no one pushes: BatchGetImage answers "ImageNotFound" when allowed, so the
# check proves the permission without pulling a manifest.
_ECR_PROBE_TAG = "delegated-aws-access-check"


def run_access_checks(
    make_client: ClientFactory,
    *,
    assumed_role_arn: str,
    resources: Resources,
    region: str,
) -> list[AccessCheck]:
    """The checks of every listed resource, in spec order; never raises."""
    checker = _AccessChecker(
        make_client, assumed_role_arn=assumed_role_arn, region=region
    )
    return checker.run(resources)


class _AccessChecker:
    """One pass of access checks; runs in a worker thread, never raises."""

    def __init__(
        self, make_client: ClientFactory, *, assumed_role_arn: str, region: str
    ) -> None:
        self._make_client = make_client
        self._region = region
        arn = assumed_role_arn.split(":")
        self._partition = arn[1] if len(arn) > 4 else "aws"
        self._account = arn[4] if len(arn) > 4 else ""
        self._clients: dict[tuple[str, str], Any] = {}

    def run(self, resources: Resources) -> list[AccessCheck]:
        kms_listed = bool(resources.kms_key_arns)
        checks: list[AccessCheck] = []
        for bucket in resources.s3_buckets:
            checks += self._s3(bucket, kms_listed=kms_listed)
        checks += [self._kms(key_arn) for key_arn in resources.kms_key_arns]
        if resources.ecr_repositories:
            checks += self._ecr(resources.ecr_repositories)
        return checks

    def _client(self, service: str, region: str) -> Any:
        if (service, region) not in self._clients:
            self._clients[service, region] = self._make_client(service, region)
        return self._clients[service, region]

    def _check(
        self, action: str, resource: str, call: Callable[[], object]
    ) -> AccessCheck:
        # The answer is dropped: an ECR authorisation token is a credential.
        try:
            call()
        except (ClientError, BotoCoreError) as error:
            return _failed(action, resource, _failure_reason(action, resource, error))
        return AccessCheck(resource=resource, action=action, result="Passed")

    def _s3(self, bucket: str, *, kms_listed: bool) -> list[AccessCheck]:
        bucket_arn = arns.s3_bucket_arn(bucket, partition=self._partition)
        listing: dict[str, Any] = {}

        def list_one() -> None:
            s3 = self._client("s3", self._region)
            listing.update(s3.list_objects_v2(Bucket=bucket, MaxKeys=1))

        listed = self._check("s3:ListBucket", bucket_arn, list_one)
        contents = listing.get("Contents") or []
        if listed.result == "Failed" or not contents:
            return [listed]
        return [listed, self._s3_read(bucket, contents[0], kms_listed=kms_listed)]

    def _s3_read(
        self, bucket: str, item: dict[str, Any], *, kms_listed: bool
    ) -> AccessCheck:
        bucket_arn = arns.s3_bucket_arn(bucket, partition=self._partition)
        object_arn = f"{bucket_arn}/{item['Key']}"
        s3 = self._client("s3", self._region)  # made by the listing, cached
        try:
            _read_first_byte(s3, bucket, item)
        except (ClientError, BotoCoreError) as error:
            reason = _read_failure(
                s3,
                bucket,
                item["Key"],
                error,
                object_arn=object_arn,
                kms_listed=kms_listed,
            )
            return _failed("s3:GetObject", object_arn, reason)
        return AccessCheck(resource=object_arn, action="s3:GetObject", result="Passed")

    def _kms(self, key_arn: str) -> AccessCheck:
        region = key_arn.split(":")[3]
        return self._check(
            "kms:DescribeKey",
            key_arn,
            lambda: self._client("kms", region).describe_key(KeyId=key_arn),
        )

    def _ecr(self, repositories: tuple[str, ...]) -> list[AccessCheck]:
        targets = [self._ecr_target(repository) for repository in repositories]
        checks: list[AccessCheck] = []
        for region in dict.fromkeys(region for region, _, _ in targets):
            checks.append(self._ecr_login(region))
        for region, account, name in targets:
            checks.append(self._ecr_pull(region, account, name))
        return checks

    def _ecr_login(self, region: str) -> AccessCheck:
        # Not resource-scoped; the "ARN" names the region and the role's account.
        resource = f"arn:{self._partition}:ecr:{region}:{self._account}:*"
        return self._check(
            "ecr:GetAuthorizationToken",
            resource,
            lambda: self._client("ecr", region).get_authorization_token(),
        )

    def _ecr_target(self, repository: str) -> tuple[str, str, str]:
        """(region, registry account, name) of a plain name or a repository ARN."""
        if not repository.startswith("arn:"):
            return self._region, self._account, repository
        _, _, _, region, account, resource = repository.split(":", 5)
        return region, account, resource.removeprefix("repository/")

    def _ecr_pull(self, region: str, account: str, name: str) -> AccessCheck:
        arn = arns.ecr_repository_arn(
            name, partition=self._partition, region=region, account=account
        )
        return self._check(
            "ecr:BatchGetImage",
            arn,
            lambda: self._client("ecr", region).batch_get_image(
                registryId=account,
                repositoryName=name,
                imageIds=[{"imageTag": _ECR_PROBE_TAG}],
            ),
        )


def _read_first_byte(s3: Any, bucket: str, item: dict[str, Any]) -> None:
    request: dict[str, Any] = {"Bucket": bucket, "Key": item["Key"]}
    # A range on an empty object is InvalidRange, so ask for it whole.
    if item.get("Size", 1):
        request["Range"] = "bytes=0-0"
    with contextlib.closing(s3.get_object(**request)["Body"]) as body:
        body.read()


def _sse_kms_key(s3: Any, bucket: str, key: str) -> str | None:
    """The KMS key of an SSE-KMS object ("" if unnamed); None if not SSE-KMS.

    HeadObject needs s3:GetObject but no kms:Decrypt, so it can still answer
    when the key refused the read.
    """
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError):
        return None
    if str(head.get("ServerSideEncryption", "")).startswith("aws:kms"):
        return str(head.get("SSEKMSKeyId") or "")
    return None


def _read_failure(
    s3: Any,
    bucket: str,
    key: str,
    error: ClientError | BotoCoreError,
    *,
    object_arn: str,
    kms_listed: bool,
) -> str:
    """Why GetObject failed, pointing at KMS when a key is the likely cause."""
    code = error_code(error)
    if code not in DENIED_CODES and not code.startswith("KMS."):
        return _failure_reason("s3:GetObject", object_arn, error)
    sse_key = _sse_kms_key(s3, bucket, key)
    if (
        code.startswith("KMS.")
        or sse_key is not None
        or kms_listed
        or "kms" in error_text(error).lower()
    ):
        return _kms_hint(object_arn, sse_key)
    return _failure_reason("s3:GetObject", object_arn, error)


def _kms_hint(object_arn: str, key: str | None) -> str:
    which = f"the KMS key {key}" if key else "a customer-managed KMS key"
    return (
        f"s3:GetObject on {object_arn} was denied, most likely by {which} "
        "encrypting the object: allow kms:Decrypt for the role in the key policy "
        "(see status.instructions.kmsKeyPolicyStatement) and in its permissions "
        "policy."
    )


def _failed(action: str, resource: str, reason: str) -> AccessCheck:
    return AccessCheck(resource=resource, action=action, result="Failed", reason=reason)


def _failure_reason(
    action: str, resource: str, error: ClientError | BotoCoreError
) -> str:
    code = error_code(error)
    if code in DENIED_CODES:
        return (
            f"{action} on {resource} was denied ({code}): allow it in the role's "
            "permissions policy and in any resource or key policy."
        )
    if code in NOT_FOUND_CODES:
        return f"{action} on {resource} failed: it does not exist ({code})."
    return f"{action} on {resource} failed ({code}): {sanitise(error_text(error))}"
