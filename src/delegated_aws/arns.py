"""ARNs and IAM names: partitions, role ARNs, resource ARNs, session and role names.

This module owns every string the operator builds or takes apart that AWS will
parse: which partition a region belongs to, the parts of a role ARN, the IAM
principal behind an STS caller ARN, the ARNs of S3 buckets, S3 objects and ECR
repositories, and the names it invents (role session names, suggested role
names) within IAM's character set and length limits. Pure: no I/O, no AWS SDK.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

# Longest prefixes first, so ``us-isob-`` is never read as ``us-iso-``.
_PARTITION_PREFIXES = (
    ("us-isob-", "aws-iso-b"),
    ("us-isof-", "aws-iso-f"),
    ("us-iso-", "aws-iso"),
    ("eu-isoe-", "aws-iso-e"),
    ("us-gov-", "aws-us-gov"),
    ("eusc-", "aws-eusc"),
    ("cn-", "aws-cn"),
)

# NB: re.ASCII everywhere: IAM's ``\w`` is ASCII, Python's is Unicode.
_ROLE_ARN = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z]+)*):iam::(?P<account>[0-9]{12}):"
    r"role(?P<path>/(?:[\w+=,.@-]+/)*)(?P<name>[\w+=,.@-]{1,64})",
    re.ASCII,
)
_ASSUMED_ROLE = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z]+)*):sts::(?P<account>[0-9]{12}):"
    r"assumed-role/(?P<name>[\w+=,.@-]+)/(?P<session>[\w+=,.@-]+)",
    re.ASCII,
)
_NOT_IAM_NAME_CHAR = re.compile(r"[^\w+=,.@-]", re.ASCII)

IAM_NAME_LIMIT = 64
"""Longest role session name and role name IAM accepts."""
_HASH_LENGTH = 10
# ``ns.name`` reads well in CloudTrail; Kubernetes namespaces never hold a dot,
# so the first dot separates the two parts unambiguously.
_SEPARATOR = "."
ROLE_NAME_PREFIX = "delegated-aws-"


@dataclass(frozen=True)
class RoleArnParts:
    """An IAM role ARN taken apart; ``path`` is ``/`` when the role has none."""

    partition: str
    account_id: str
    path: str
    name: str


def partition_of_region(region: str) -> str:
    """The AWS partition a region belongs to (``aws`` for commercial regions)."""
    for prefix, partition in _PARTITION_PREFIXES:
        if region.startswith(prefix):
            return partition
    return "aws"


def parse_role_arn(arn: str) -> RoleArnParts:
    """Split ``arn:PARTITION:iam::ACCOUNT:role/PATH/NAME``; ValueError otherwise."""
    match = _ROLE_ARN.fullmatch(arn)
    if match is None:
        raise ValueError(f"{arn!r} is not an IAM role ARN")
    return RoleArnParts(
        partition=match["partition"],
        account_id=match["account"],
        path=match["path"],
        name=match["name"],
    )


def iam_principal_of(caller_arn: str) -> str:
    """The IAM principal a trust policy can name for an STS caller ARN.

    An assumed-role session ARN becomes its role's ARN; user, role and root
    ARNs are returned unchanged.
    """
    match = _ASSUMED_ROLE.fullmatch(caller_arn)
    if match is None:
        return caller_arn
    # NB: a session ARN does not carry the role's path, so for a role under a
    # path (``/service-role/``) this ARN lacks it and IAM will not accept it
    # as a principal. The default trust in the account root is unaffected.
    partition, account, name = match["partition"], match["account"], match["name"]
    return f"arn:{partition}:iam::{account}:role/{name}"


def account_root_arn(partition: str, account: str) -> str:
    """The principal that stands for every IAM identity of an account."""
    return f"arn:{partition}:iam::{account}:root"


def bucket_name(bucket: str) -> str:
    """``s3://bucket/prefix`` and ``bucket`` both name ``bucket``."""
    return bucket.removeprefix("s3://").split("/", 1)[0]


def s3_bucket_arn(bucket: str, *, partition: str) -> str:
    """``arn:PARTITION:s3:::bucket``: the resource of bucket-level actions."""
    return f"arn:{partition}:s3:::{bucket_name(bucket)}"


def s3_objects_arn(bucket: str, *, partition: str) -> str:
    """``arn:PARTITION:s3:::bucket/*``: the resource of object-level actions."""
    return f"{s3_bucket_arn(bucket, partition=partition)}/*"


def ecr_repository_arn(
    repository: str, *, partition: str, region: str, account: str | None
) -> str:
    """The ARN of an ECR repository given by ARN or by name.

    A bare name lives in ``account``; when the customer's account is not known
    yet (no ``spec.roleArn``), the account is ``*`` so the policy still works
    once pasted, and tightens when the role ARN arrives.
    """
    if repository.startswith("arn:"):
        return repository
    return f"arn:{partition}:ecr:{region}:{account or '*'}:repository/{repository}"


def session_name(namespace: str, name: str, override: str | None = None) -> str:
    """The role session name for a resource: the override, else derived.

    The derived name is ``namespace.name`` within IAM's ``[\\w+=,.@-]{2,64}``.
    When characters had to be replaced or the text cut, a hash of the original
    pair is appended, so distinct resources never share a session name. The
    override was validated at admission and is used as given.
    """
    if override:
        return override
    return _iam_name(namespace, name, prefix="")


def role_name_suggestion(namespace: str, name: str) -> str:
    """A role name for the customer to create, unique per resource."""
    return _iam_name(namespace, name, prefix=ROLE_NAME_PREFIX)


def _iam_name(namespace: str, name: str, *, prefix: str) -> str:
    wanted = f"{prefix}{namespace}{_SEPARATOR}{name}"
    clean = _NOT_IAM_NAME_CHAR.sub("-", wanted)
    exact = (
        clean == wanted
        and _SEPARATOR not in namespace
        and 2 <= len(clean) <= IAM_NAME_LIMIT
    )
    if exact:
        return clean

    # The hash keeps names distinct that sanitising or cutting made equal.
    room = IAM_NAME_LIMIT - _HASH_LENGTH - 1
    return f"{clean[:room]}-{_digest(namespace, name)}"


def _digest(namespace: str, name: str) -> str:
    # JSON encodes the pair unambiguously, whatever characters it holds.
    encoded = json.dumps([namespace, name]).encode()
    return hashlib.sha256(encoded).hexdigest()[:_HASH_LENGTH]
