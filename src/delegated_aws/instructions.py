"""The instructions a customer's AWS administrator follows to create the role.

This module owns the documents written to ``status.instructions``: the trust
policy (the operator's principal, guarded by the External ID), the
least-privilege permissions policy for ``spec.resources``, the KMS key-policy
statement, the numbered steps and the equivalent AWS CLI snippet. Pure: the
spec and the operator's identity in, an ``Instructions`` model out.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from delegated_aws.arns import (
    ecr_repository_arn,
    parse_role_arn,
    role_name_suggestion,
    s3_bucket_arn,
    s3_objects_arn,
)
from delegated_aws.models import Instructions, Spec, TrustedPrincipal

POLICY_VERSION = "2012-10-17"
MAX_SESSION_DURATION = 43200
"""The recommended role maximum, 12 h, so any ``spec.sessionDuration`` fits."""
INLINE_POLICY_NAME = "delegated-aws-access"
# IAM quotas, counted without whitespace: all inline policies of one role
# together, and one customer managed policy.
INLINE_POLICIES_LIMIT = 10_240
MANAGED_POLICY_LIMIT = 6_144
ACCOUNT_PLACEHOLDER = "ACCOUNT_ID"
KIND = "delegatedawssecret"

_S3_BUCKET_ACTIONS = ["s3:GetBucketLocation", "s3:ListBucket"]
_S3_OBJECT_ACTIONS = ["s3:GetObject"]
_KMS_ACTIONS = ["kms:Decrypt", "kms:DescribeKey"]
_ECR_TOKEN_ACTIONS = ["ecr:GetAuthorizationToken"]
_ECR_PULL_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
]

Document = dict[str, Any]


@dataclass(frozen=True)
class _Target:
    """The resource, and the role its steps and commands are about."""

    namespace: str
    name: str
    role_name: str
    role_path: str
    role_arn: str
    role_account: str | None


def build_instructions(
    *,
    spec: Spec,
    namespace: str,
    name: str,
    external_id: str,
    trusted: TrustedPrincipal,
    region: str,
) -> Instructions:
    """Everything needed to create the role for one resource, ready to paste."""
    partition = _partition(spec, trusted)
    target = _target(spec, namespace=namespace, name=name, partition=partition)
    trust = trust_policy(trusted.trust_principal, external_id)
    permissions = permissions_policy(spec, partition=partition, region=region)
    kms = kms_key_statement(spec, partition=partition, role_name=target.role_name)
    return Instructions(
        role_name=target.role_name,
        trust_policy=_pretty(trust),
        permissions_policy=_pretty(permissions) if permissions else None,
        kms_key_policy_statement=_pretty(kms) if kms else None,
        max_session_duration=MAX_SESSION_DURATION,
        steps=_steps(spec, target, external_id=external_id, permissions=permissions),
        aws_cli=_aws_cli(
            target,
            trust,
            permissions=permissions,
            kms_keys=spec.resources.kms_key_arns,
        ),
    )


def trust_policy(principal: str, external_id: str) -> Document:
    """Let ``principal`` assume the role, but only with the External ID."""
    statement = {
        "Sid": "AllowDelegatedAwsOperator",
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
    }
    return _document([statement])


def permissions_policy(spec: Spec, *, partition: str, region: str) -> Document | None:
    """Read-only access to the listed resources; None when none are listed."""
    resources = spec.resources
    account = parse_role_arn(spec.role_arn).account_id if spec.role_arn else None
    statements = [
        *_s3_statements(resources.s3_buckets, partition=partition),
        *_kms_statements(resources.kms_key_arns),
        *_ecr_statements(
            resources.ecr_repositories,
            partition=partition,
            region=region,
            account=account,
        ),
    ]
    return _document(statements) if statements else None


def kms_key_statement(spec: Spec, *, partition: str, role_name: str) -> Document | None:
    """The statement each listed key's policy needs so the role can decrypt."""
    keys = spec.resources.kms_key_arns
    if not keys:
        return None

    # Without a role ARN, the role is taken to live beside the first key.
    principal = spec.role_arn or (
        f"arn:{partition}:iam::{_account_of(keys[0])}:role/{role_name}"
    )
    return {
        "Sid": "AllowDelegatedRoleToDecrypt",
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": _KMS_ACTIONS,
        # In a key policy, "*" means the key the policy is attached to.
        "Resource": "*",
    }


def _s3_statements(buckets: tuple[str, ...], *, partition: str) -> list[Document]:
    if not buckets:
        return []
    bucket_arns = _unique(s3_bucket_arn(b, partition=partition) for b in buckets)
    object_arns = _unique(s3_objects_arn(b, partition=partition) for b in buckets)
    return [
        _allow("ListS3Buckets", _S3_BUCKET_ACTIONS, resources=bucket_arns),
        _allow("ReadS3Objects", _S3_OBJECT_ACTIONS, resources=object_arns),
    ]


def _kms_statements(keys: tuple[str, ...]) -> list[Document]:
    if not keys:
        return []
    return [_allow("DecryptWithKmsKeys", _KMS_ACTIONS, resources=_unique(keys))]


def _ecr_statements(
    repositories: tuple[str, ...],
    *,
    partition: str,
    region: str,
    account: str | None,
) -> list[Document]:
    if not repositories:
        return []
    arns = _unique(
        ecr_repository_arn(r, partition=partition, region=region, account=account)
        for r in repositories
    )
    return [
        # AWS defines no resource for this action: it can only be granted on "*".
        _allow("GetEcrAuthorizationToken", _ECR_TOKEN_ACTIONS, resources=["*"]),
        _allow("PullEcrImages", _ECR_PULL_ACTIONS, resources=arns),
    ]


def _steps(
    spec: Spec, target: _Target, *, external_id: str, permissions: Document | None
) -> tuple[str, ...]:
    steps = [
        f"In {_account_text(target)}, create an IAM role named "
        f"{target.role_name}{_path_text(target)} with the trust policy in "
        "status.instructions.trustPolicy (console: IAM > Roles > Create role > "
        "Custom trust policy).",
        f"Keep the sts:ExternalId condition with the value {external_id}: the "
        "operator refuses a role that also accepts a wrong External ID.",
        "Set the role's maximum session duration to 12 hours "
        f"({MAX_SESSION_DURATION} seconds) so that any spec.sessionDuration up "
        "to 12h is granted.",
        _permissions_step(target.role_name, permissions),
    ]
    if spec.resources.kms_key_arns:
        keys = ", ".join(_unique(spec.resources.kms_key_arns))
        steps.append(
            "After the role exists, add the statement in "
            "status.instructions.kmsKeyPolicyStatement to the key policy of "
            f"each of these keys: {keys}."
        )
    steps.append(_role_arn_step(target))
    return tuple(f"{number}. {text}" for number, text in enumerate(steps, 1))


def _permissions_step(role_name: str, permissions: Document | None) -> str:
    if permissions is not None:
        size = len(_compact(permissions))
        if size > INLINE_POLICIES_LIMIT:
            return (
                "The policy in status.instructions.permissionsPolicy is "
                f"{size:,} characters without whitespace, more than the "
                f"{INLINE_POLICIES_LIMIT:,} AWS allows for all inline policies "
                f"of a role together: split its statements into customer "
                f"managed policies of at most {MANAGED_POLICY_LIMIT:,} "
                f"characters each and attach those to the role {role_name}, "
                "or list fewer resources in spec.resources."
            )
        return (
            "Attach the policy in status.instructions.permissionsPolicy to the "
            f"role {role_name} as an inline policy named {INLINE_POLICY_NAME}."
        )
    return (
        f"Attach to the role {role_name} the permissions your service needs: "
        "spec.resources lists nothing, so no policy was generated (list "
        "s3Buckets, kmsKeyArns or ecrRepositories to get a least-privilege one)."
    )


def _account_text(target: _Target) -> str:
    if target.role_account:
        return f"AWS account {target.role_account}"
    return "the AWS account that owns the resources"


def _path_text(target: _Target) -> str:
    return f" under the path {target.role_path}" if target.role_path != "/" else ""


def _role_arn_step(target: _Target) -> str:
    if target.role_account:
        return (
            f"spec.roleArn already names {target.role_arn}; if the role you "
            f"created has another ARN, set it: {_patch_command(target)}"
        )
    return (
        f"Put the role's ARN into spec.roleArn, replacing {ACCOUNT_PLACEHOLDER} "
        f"with the 12-digit ID of the role's account: {_patch_command(target)}"
    )


def _aws_cli(
    target: _Target,
    trust: Document,
    *,
    permissions: Document | None,
    kms_keys: tuple[str, ...],
) -> str:
    role = shlex.quote(target.role_name)
    # A role under a path has that path in its ARN; create it there.
    path = f" --path {shlex.quote(target.role_path)}" if target.role_path != "/" else ""
    lines = [
        "# In the customer's AWS account, as an IAM administrator:",
        f"aws iam create-role --role-name {role}{path}"
        f" --assume-role-policy-document {shlex.quote(_compact(trust))}"
        f" --max-session-duration {MAX_SESSION_DURATION}"
        " --query Role.Arn --output text",
    ]
    if permissions is not None:
        lines.append(
            f"aws iam put-role-policy --role-name {role}"
            f" --policy-name {INLINE_POLICY_NAME}"
            f" --policy-document {shlex.quote(_compact(permissions))}"
        )
    if kms_keys:
        # Key policies are whole documents; merging one statement into them
        # is an edit a person should review, so it stays a comment.
        lines.append(
            "# Add status.instructions.kmsKeyPolicyStatement to the policy of "
            "each listed key (aws kms get-key-policy, then aws kms "
            "put-key-policy --policy-name default)."
        )
    lines += [
        "# In the cluster, with the role ARN that create-role printed:",
        _patch_command(target),
    ]
    return "\n".join(lines) + "\n"


def _patch_command(target: _Target) -> str:
    patch = _compact({"spec": {"roleArn": target.role_arn}})
    return (
        f"kubectl patch {KIND} {shlex.quote(target.name)}"
        f" -n {shlex.quote(target.namespace)}"
        f" --type merge -p {shlex.quote(patch)}"
    )


def _target(spec: Spec, *, namespace: str, name: str, partition: str) -> _Target:
    if spec.role_arn:
        parts = parse_role_arn(spec.role_arn)
        return _Target(
            namespace=namespace,
            name=name,
            role_name=parts.name,
            role_path=parts.path,
            role_arn=spec.role_arn,
            role_account=parts.account_id,
        )
    role_name = role_name_suggestion(namespace, name)
    return _Target(
        namespace=namespace,
        name=name,
        role_name=role_name,
        role_path="/",
        role_arn=f"arn:{partition}:iam::{ACCOUNT_PLACEHOLDER}:role/{role_name}",
        role_account=None,
    )


def _partition(spec: Spec, trusted: TrustedPrincipal) -> str:
    # AssumeRole never crosses partitions, so the role's partition is the
    # operator's; a role ARN that says otherwise fails at STS and is reported
    # there, so the policy follows the ARN the user gave.
    if spec.role_arn:
        return parse_role_arn(spec.role_arn).partition
    return trusted.partition


def _account_of(arn: str) -> str:
    return arn.split(":")[4]


def _allow(sid: str, actions: list[str], *, resources: list[str]) -> Document:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def _document(statements: list[Document]) -> Document:
    return {"Version": POLICY_VERSION, "Statement": statements}


def _unique(items: Iterable[str]) -> list[str]:
    # Two prefixes of one bucket give the same ARN; keep the first occurrence.
    return list(dict.fromkeys(items))


def _pretty(document: Document) -> str:
    return json.dumps(document, indent=2)


def _compact(document: Document) -> str:
    return json.dumps(document, separators=(",", ":"))
